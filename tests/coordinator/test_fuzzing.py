"""Fuzzing: the API from its own OpenAPI document, the webhook endpoint with mutated real
payloads. Nothing may answer 5xx or log a traceback, every answer must be the one documented
for its status, and no delivery the endpoint accepts may make the processor fail."""

from __future__ import annotations

import functools
import json
import logging

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import func, select, text

from cluster_core.states import TaskState
from coordinator_app import tasks
from coordinator_app.app import create_app
from coordinator_app.models import Agent, Base, Task, WebhookDelivery
from tests.coordinator.conftest import signed_delivery
from tests.coordinator.test_api_tasks import claim_next

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
# What links promise: a resource just created can be read, a deleted one cannot.
LINK_CHECKS = [
    schemathesis.checks.ensure_resource_availability,
    schemathesis.checks.use_after_free,
]


def fuzz_settings(examples: int, **more) -> settings:
    """Hypothesis settings for ``examples`` inputs, the same on every run: what fails here
    fails in CI too, and is found again without an example database."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        **more,
    )


@pytest.fixture
def config(config):
    """The coordinator the other tests use, without the rate limits a fuzzer's burst hits."""
    config.api_rate_per_minute = config.webhook_rate_per_minute = 10**9
    return config


def tracebacks(caplog) -> list[str]:
    """What was logged with a traceback, or as an error."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.exc_info or r.levelno >= logging.ERROR
    ]


# The API ------------------------------------------------------------------------------------


class Callers:
    """Whom the fuzzer calls as: the admin for what an admin may call, otherwise an agent that
    holds a task. A generated request may deregister that agent, rotate its key or end its
    task; the next call that needs them makes new ones."""

    def __init__(self, ccc, client, admin_headers, make_agent) -> None:
        self.ccc, self.client, self.admin = ccc, client, admin_headers
        self.make_agent = make_agent
        self.forget()

    def forget(self) -> None:
        """Start again from an empty cluster (but for the admin): no agent, no task."""
        with self.ccc.database.session() as session:
            tables = [t.name for t in Base.metadata.sorted_tables if t.name != "admin_users"]
            session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        self.ccc.redis.flushall()
        self.ccc.queues.ensure()
        self.agent, self.key_hash = None, None
        self.task_id: int | None = None
        self.numbers = iter(range(1000, 10**6))  # issues and agent names not used yet

    def headers(self, case) -> dict:
        """The bearer headers for ``case``. An agent's call is made about itself, and a report
        names the task it holds and its attempt, so that what gets tested is the body."""
        allowed = case.operation.definition.raw.get("x-allowed-callers", [])
        if not allowed or "admin" in allowed:
            return self.admin
        agent = self._agent()
        if "agent_id" in case.path_parameters:
            case.path_parameters["agent_id"] = agent.id
        if "X-Task-Attempt" in (case.headers or {}):
            case.path_parameters["task_id"] = task_id = self._held_task()
            case.headers["X-Task-Attempt"] = agent.attempts[task_id]
        return agent.headers

    def steer(self, case, ids: bool = True) -> None:
        """Half the generated repositories (and ``ids``) are made ones that exist, so requests
        get past "not served" (and "not found") to the code behind."""
        for name in ("task_id", "agent_id") if ids else ():
            value = case.path_parameters.get(name) if case.path_parameters else None
            if isinstance(value, int) and value % 2:
                held = self._held_task() if name == "task_id" else self._agent().id
                case.path_parameters[name] = held
        body = case.body if isinstance(case.body, dict) else {}
        if isinstance(body.get("repository"), str) and len(body["repository"]) % 2:
            body["repository"] = "octo/app"

    def _agent(self):
        with self.ccc.database.session() as session:
            stored = self.agent and session.get(Agent, self.agent.id)
            if stored is not None and stored.key_hash == self.key_hash:
                return self.agent
        self.agent = self.make_agent(f"fuzz-{next(self.numbers)}", ["backend"])
        self.task_id = None
        with self.ccc.database.session() as session:
            self.key_hash = session.get(Agent, self.agent.id).key_hash
        return self.agent

    def _held_task(self) -> int:
        agent = self._agent()
        with self.ccc.database.session() as session:
            task = self.task_id and session.get(Task, self.task_id)
            if task is not None and task.agent_id == agent.id and TaskState(task.state).is_running:
                return self.task_id
            stored = session.get(Agent, agent.id)
            stored.draining, stored.max_tasks = False, 64  # as a generated request may leave it
        # In a repository the generated requests leave alone (they are steered to octo/app).
        created = self.client.post(
            "/api/v1/tasks",
            json={
                "repository": "acme/api",
                "issue_number": next(self.numbers),
                "title": "Fix the health endpoint",
                "body": "api server",
            },
            headers=self.admin,
        )
        assert created.status_code == 201, created.json
        agent.heartbeat()
        claimed = claim_next(self.ccc, self.client, agent)
        assert claimed.status_code == 200, claimed.json
        self.task_id = claimed.json["id"]
        return self.task_id


@pytest.fixture
def callers(ccc, client, admin_headers, make_agent):
    return Callers(ccc, client, admin_headers, make_agent)


def test_every_operation_answers_generated_requests_as_documented(app, callers, caplog):
    """Each operation, with input valid by its schema and input that breaks it."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @fuzz_settings(30)  # 1,500 requests in all: about 25 s
            @given(case=operation.as_strategy(mode))
            def exchange(case):
                callers.steer(case)
                response = case.call(headers=callers.headers(case))
                case.validate_response(response, checks=CHECKS)

            exchange()
    assert tracebacks(caplog) == []


def test_sequences_of_linked_operations_answer_as_documented(app, callers, caplog):
    """Operations chained by the document's links: an id an answer gives is used next."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)

    class Workflow(schema.as_state_machine()):
        def setup(self):
            # Each sequence from the same start, or Hypothesis cannot replay one.
            callers.forget()

        def before_call(self, case):
            callers.steer(case, ids=False)  # the ids come from the answers, through links

        def get_call_kwargs(self, case):
            return {"headers": callers.headers(case)}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS + LINK_CHECKS, transport_kwargs=kwargs)

    Workflow.run(settings=fuzz_settings(100, stateful_step_count=6))  # about 10 s
    assert tracebacks(caplog) == []


def test_the_document_declares_bodies_answers_and_links(client):
    document = client.get("/api/v1/openapi.json").json
    create_task = document["paths"]["/api/v1/tasks"]["post"]
    body = create_task["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["repository", "issue_number", "title"]
    statuses = {"201", "400", "401", "403", "409", "413", "415", "429", "503"}
    assert set(create_task["responses"]) == statuses
    link = create_task["responses"]["201"]["links"]["GetTask"]
    assert link == {"operationId": "get_task", "parameters": {"task_id": "$response.body#/id"}}
    claim = document["paths"]["/api/v1/tasks/{task_id}/claim"]["post"]["responses"]["200"]
    finish = claim["links"]["FinishTask"]["parameters"]
    assert finish["header.X-Task-Attempt"] == "$response.body#/attempt"
    report = document["paths"]["/api/v1/tasks/{task_id}/result"]["post"]
    attempt = next(p for p in report["parameters"] if p["name"] == "X-Task-Attempt")
    assert attempt["in"] == "header" and attempt["required"]


# The webhook endpoint -----------------------------------------------------------------------


class AgreeableGitHub:
    """GitHub as the intake asks it, answered without a network: every issue is open and has
    no labels, every user may write, every comment is posted. Deliveries then reach every rule
    of the intake instead of stopping at GitHub's 404 for an issue that does not exist."""

    login = "cluster-bot"

    def permission(self, repository: str, login: str) -> str:
        return "write"

    def issue_labels(self, repository: str, number: int) -> list[str]:
        return []

    def issue_is_closed(self, repository: str, number: int) -> bool:
        return False

    def comment(self, repository: str, number: int, body: str) -> None:
        pass

    def set_state_label(self, repository: str, number: int, label: str | None) -> None:
        pass

    def paused_seconds(self) -> int:
        return 0

    def close(self) -> None:
        pass


@pytest.fixture
def offline(config):
    """(app, services) of a coordinator whose GitHub is an ``AgreeableGitHub``."""
    app = create_app(config, gateway=AgreeableGitHub())
    ccc = app.extensions["ccc"]
    ccc.queues.ensure()
    yield app, ccc
    ccc.database.dispose()
    ccc.redis.close()


DEEP = functools.reduce(lambda inner, _: [inner], range(40), [])  # beyond json_input.MAX_DEPTH
# What a mutation puts in place of a value: JSON of every type and size, numbers beyond any
# column, strings PostgreSQL cannot store, nesting beyond the limit.
ODD_VALUES = st.one_of(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=8,
    ),
    st.sampled_from([2**31, 2**63, -1, 0, "", "\x00", "\ud800", "x" * 5000, DEEP]),
)
# What a mutation appends to a string: it keeps its type, and reaches the rules that read it.
ODD_ENDINGS = st.sampled_from(
    [
        "\x00",
        "\ud83d",
        " depends on #2147483648",
        " blocked by #" + "9" * 5000,
        " depends on #0",
        " @claude",
        "x" * 300,
    ]
)
# The places the intake and the served-repository rules read, mutated more often than others.
READ = [
    ("action",),
    ("repository", "full_name"),
    ("installation", "id"),
    ("sender", "login"),
    ("sender", "id"),
    ("sender", "type"),
    ("label", "name"),
    ("issue", "number"),
    ("issue", "title"),
    ("issue", "body"),
    ("comment", "body"),
    ("comment", "path"),
    ("comment", "line"),
    ("review", "state"),
    ("review", "body"),
    ("pull_request", "number"),
]
DONE = {"processed", "ignored", "failed"}  # failed: with the reason as its outcome


def _places(value, prefix=()) -> list[tuple]:
    """Every place in a JSON document, as a tuple of keys and indices."""
    places = [prefix] if prefix else []
    if isinstance(value, dict | list):
        for key, child in value.items() if isinstance(value, dict) else enumerate(value):
            places += _places(child, (*prefix, key))
    return places


def _holder(document, place: tuple) -> dict | list | None:
    """The object or array that holds ``place`` in ``document`` now, if any does."""
    try:
        for step in place[:-1]:
            document = document[step]
        document[place[-1]]
    except (KeyError, IndexError, TypeError):
        return None
    return document if isinstance(document, dict | list) else None


class Deliveries(list):
    """(event, payload) of every real delivery in the fixtures, shown short in reports."""

    def __init__(self, folder) -> None:
        super().__init__(
            (path.parent.name, json.loads(path.read_bytes()))
            for path in sorted(folder.glob("*/*.json"))
        )

    def __repr__(self) -> str:
        return f"<{len(self)} real deliveries>"


@st.composite
def mutated(draw, deliveries: Deliveries, repository: str, label: str, phrase: str):
    """(event, payload): a real delivery made to reach the rules half the time (a served
    ``repository``, a new issue, the trigger ``label`` and ``phrase``, odd endings on the
    texts a task is made of), then with one to four places replaced, removed or appended to."""
    event, original = deliveries[draw(st.integers(0, len(deliveries) - 1))]
    payload = json.loads(json.dumps(original))
    if draw(st.booleans()):
        payload.setdefault("repository", {})["full_name"] = repository
        if isinstance(payload.get("label"), dict):
            payload["label"]["name"] = label
        if isinstance(payload.get("comment"), dict):
            payload["comment"]["body"] = f"{phrase} {payload['comment']['body']}"
        if isinstance(payload.get("issue"), dict):  # one live task per issue: a new one
            payload["issue"]["number"] = draw(st.integers(1, 10**6))
        for holder, key in (("issue", "title"), ("issue", "body"), ("comment", "body")):
            if isinstance((payload.get(holder) or {}).get(key), str):
                payload[holder][key] += draw(ODD_ENDINGS | st.just(""))
    places = _places(payload)
    read = [place for place in READ if place in places]
    chosen = st.one_of(st.sampled_from(read), st.sampled_from(read), st.sampled_from(places))
    for place in draw(st.lists(chosen, min_size=1, max_size=4)):
        holder, key = _holder(payload, place), place[-1]
        if holder is None:
            continue  # an earlier mutation removed or replaced what held this place
        how = draw(st.sampled_from(["append", "append", "replace", "remove"]))
        if how == "remove" and isinstance(holder, dict):
            del holder[key]
        elif how == "append" and isinstance(holder[key], str):
            holder[key] += draw(ODD_ENDINGS)
        else:
            holder[key] = draw(ODD_VALUES)
    return event, payload


def test_mutated_real_deliveries_are_refused_or_processed_without_a_crash(
    offline, webhook_fixtures, caplog
):
    app, ccc = offline
    client = app.test_client()
    config = ccc.config
    with ccc.database.session() as session:
        # The cluster's own pull requests #2 and #14 (those of the real review deliveries).
        for number in (2, 14):
            parent = tasks.create_task(
                session,
                config,
                repository=config.repositories[0],
                issue_number=number + 100,
                title="Earlier work",
                body="",
                requested_by="alice",
            )
            parent.pr_number = number
    deliveries = mutated(
        Deliveries(webhook_fixtures),
        config.repositories[0],
        config.trigger_label,
        config.trigger_phrase,
    )
    answers: dict[int, int] = {}

    @fuzz_settings(2000)  # about 15 s, the processing included
    @given(delivery=deliveries)
    def deliver(delivery):
        event, payload = delivery
        body, headers = signed_delivery(json.dumps(payload).encode(), event)
        answer = client.post("/webhooks/github", data=body, headers=headers)
        assert answer.status_code in {202, 400}, (answer.status_code, answer.json, payload)
        answers[answer.status_code] = answers.get(answer.status_code, 0) + 1

    deliver()
    assert answers.get(202, 0) > 100 and answers.get(400, 0) > 10, answers
    while (counts := ccc.processor.run_once())["deliveries"]:
        assert -1 not in counts.values(), counts
    with ccc.database.session() as session:
        stored = session.scalars(select(WebhookDelivery)).all()
        assert all(d.status in DONE and d.outcome for d in stored)
        created = session.scalar(select(func.count()).select_from(Task))
    assert created > 10  # the deliveries reached the rules that make tasks
    assert tracebacks(caplog) == []
