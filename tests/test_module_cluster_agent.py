"""The cluster_agent and cluster_agent_info modules: table-driven against a fake coordinator
(only HTTP is replaced), then against a real coordinator over a socket."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

from ansible_collections.claude_code_cluster.cluster.plugins.module_utils import cluster_api
from ansible_collections.claude_code_cluster.cluster.plugins.modules import (
    cluster_agent,
    cluster_agent_info,
)
from tests.ansible_modules import run_module

PASSWORD = "correct horse battery staple"
URL = "https://coordinator.test:8443"


class FakeCoordinator:
    """The admin API of the coordinator in memory, standing in for the transport function."""

    def __init__(self) -> None:
        self.agents: dict[int, dict[str, Any]] = {}
        self.held: dict[int, list[int]] = {}  # agent id -> ids of tasks it runs
        self.calls: list[tuple[str, str]] = []
        self.fail_with: int | None = None  # answer every API call with this status
        self.unreachable = False
        self.finish_after_polls: int | None = None  # tasks finish after this many GETs
        self.keys: dict[int, str] = {}  # agent id -> its key

    @property
    def changes(self) -> list[tuple[str, str]]:
        """Calls that change something (everything but reads and the two token exchanges)."""
        return [c for c in self.calls if c[0] != "GET" and not c[1].endswith("/token")]

    def add(self, name: str, **settings) -> dict[str, Any]:
        agent_id = len(self.agents) + 1
        self.agents[agent_id] = {
            "id": agent_id,
            "name": name,
            "state": "idle",
            "specialties": ["backend"],
            "capabilities": [],
            "clearance": "standard",
            "max_tasks": 1,
            "draining": False,
            "running_tasks": 0,
            **settings,
        }
        return self.agents[agent_id]

    def hold(self, agent_id: int, *task_ids: int) -> None:
        self.held[agent_id] = list(task_ids)
        self.agents[agent_id]["running_tasks"] = len(task_ids)

    def send(self, method, url, *, body=None, headers=None, **_transport):
        self.calls.append((method, url))
        if self.unreachable:
            raise cluster_api.CoordinatorAPIError(
                f"cannot reach the coordinator at {url}: [Errno 111] Connection refused",
                method=method,
                url=url,
            )
        path, _, query = url.removeprefix(URL + "/api/v1").partition("?")
        if path == "/auth/token":
            if body["password"] != PASSWORD:
                return self._error(401, "unknown user or wrong password")
            return cluster_api.Response(200, {"token": "t0k"})
        if path == "/agents/token":  # the agent's own credentials: no admin token
            agent = next((a for a in self.agents.values() if a["name"] == body["name"]), None)
            if agent is None or self.keys.get(agent["id"]) != body["key"]:
                return self._error(401, "unknown agent or wrong key")
            return cluster_api.Response(200, {"token": "agent-t0k", "agent_id": agent["id"]})
        assert headers["Authorization"] == "Bearer t0k"
        if self.fail_with:
            return self._error(self.fail_with, "database is down")
        return self._route(method, path, query, body)

    def _route(self, method, path, query, body):
        if (method, path) == ("GET", "/agents"):
            return self._page(sorted(self.agents.values(), key=lambda a: a["id"]), query)
        if (method, path) == ("POST", "/agents"):
            agent = self.add(body["name"], **{k: v for k, v in body.items() if k != "name"})
            agent["state"] = "offline"
            self.keys[agent["id"]] = "ccca_secret"
            return cluster_api.Response(201, {**agent, "key": "ccca_secret"})
        match = re.fullmatch(r"/agents/(\d+)(/key|/tasks)?", path)
        agent = self.agents.get(int(match[1])) if match else None
        if agent is None:
            return self._error(404, "not found")
        if method == "GET" and match[2] == "/tasks":
            held = self.held.get(agent["id"], [])
            items = [{"id": t, "state": "in_progress"} for t in held]
            return cluster_api.Response(200, {"items": items, "_links": {"next": None}})
        if method == "GET":
            self._progress(agent)
            return cluster_api.Response(200, agent)
        if method == "PATCH":
            agent.update(body)
            return cluster_api.Response(200, agent)
        if method == "POST" and match[2] == "/key":
            self.keys[agent["id"]] = "ccca_rotated"
            return cluster_api.Response(200, {"id": agent["id"], "key": "ccca_rotated"})
        if method == "DELETE":
            if agent["running_tasks"] and "handback=1" not in query:
                return self._error(409, f"agent {agent['name']} holds tasks")
            del self.agents[agent["id"]]
            return cluster_api.Response(204, None)
        return self._error(405, "method not allowed")

    @staticmethod
    def _page(items: list, query: str):
        """One page of ``items`` as the coordinator's list endpoints answer (25 per page)."""
        args = dict(pair.split("=") for pair in query.split("&") if pair)
        page, per_page = int(args.get("page", 1)), int(args.get("per_page", 25))
        start = (page - 1) * per_page
        more = start + per_page < len(items)
        next_link = f"/api/v1/agents?page={page + 1}&per_page={per_page}" if more else None
        return cluster_api.Response(
            200, {"items": items[start : start + per_page], "_links": {"next": next_link}}
        )

    def _progress(self, agent):
        if self.finish_after_polls is not None:
            self.finish_after_polls -= 1
            if self.finish_after_polls <= 0:
                self.hold(agent["id"])

    @staticmethod
    def _error(status: int, message: str):
        return cluster_api.Response(status, {"error": {"status": status, "message": message}})


@pytest.fixture
def coordinator(monkeypatch) -> FakeCoordinator:
    fake = FakeCoordinator()
    monkeypatch.setattr(cluster_api, "send", fake.send)
    return fake


def args(**extra) -> dict[str, Any]:
    base = {
        "coordinator_url": URL,
        "admin_password": PASSWORD,
        "name": "agent4",
        "specialties": ["backend", "general"],
        "poll_interval": 0.01,
    }
    return {k: v for k, v in {**base, **extra}.items() if v is not None}


# --- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"name": None}, "missing required arguments: name"),
        ({"admin_password": None}, "missing required arguments: admin_password"),
        ({"specialties": None}, "state is present but all of the following are missing"),
        ({"specialties": ["cooking"]}, "value of specialties must be one or more of"),
        ({"state": "gone"}, "value of state must be one of"),
    ],
)
def test_bad_arguments_fail_before_any_call(coordinator, given, message):
    result = run_module(cluster_agent, args(**given))
    assert result["failed"]
    assert message in result["msg"]
    assert coordinator.calls == []


# --- present --------------------------------------------------------------------------------


def test_present_creates_the_agent_and_returns_its_key_once(coordinator):
    result = run_module(cluster_agent, args(max_tasks=2))
    assert result["changed"] and result["created"]
    assert result["key"] == "ccca_secret"
    assert result["agent"]["specialties"] == ["backend", "general"]
    assert result["agent"]["max_tasks"] == 2
    assert result["diff"] == {
        "before": {},
        "after": {
            "specialties": ["backend", "general"],
            "max_tasks": 2,
            "clearance": "standard",
            "draining": False,
        },
    }
    again = run_module(cluster_agent, args(max_tasks=2))
    assert not again["changed"] and not again["created"]
    assert "key" not in again
    assert again["diff"]["before"] == again["diff"]["after"]
    assert coordinator.changes == [("POST", f"{URL}/api/v1/agents")]


@pytest.mark.parametrize(
    ("current", "given", "patch"),
    [
        ({}, {}, None),
        ({"max_tasks": 3}, {}, None),  # max_tasks omitted: left as it is
        ({}, {"max_tasks": 2}, {"max_tasks": 2}),
        ({}, {"clearance": "restricted"}, {"clearance": "restricted"}),
        ({"specialties": ["general", "backend"]}, {}, {"specialties": ["backend", "general"]}),
        ({"draining": True}, {}, {"draining": False}),  # present resumes a draining agent
        ({"draining": True, "max_tasks": 1}, {"max_tasks": 4}, {"max_tasks": 4, "draining": False}),
    ],
)
def test_present_changes_only_what_differs(coordinator, current, given, patch):
    agent = coordinator.add("agent4", **{"specialties": ["backend", "general"], **current})
    result = run_module(cluster_agent, args(**given))
    assert result["changed"] is (patch is not None)
    assert not result["created"]
    assert "key" not in result
    if patch is None:
        assert coordinator.changes == []
    else:
        assert coordinator.changes == [("PATCH", f"{URL}/api/v1/agents/{agent['id']}")]
        assert {k: agent[k] for k in patch} == patch
        assert result["diff"]["after"] == {**result["diff"]["before"], **patch}


def test_rotate_key_returns_the_new_key(coordinator):
    agent = coordinator.add("agent4", specialties=["backend", "general"])
    result = run_module(cluster_agent, args(rotate_key=True))
    assert result["changed"]
    assert result["key"] == "ccca_rotated"
    assert coordinator.changes == [("POST", f"{URL}/api/v1/agents/{agent['id']}/key")]


@pytest.mark.parametrize(
    ("existing", "given"),
    [
        (None, {}),
        ({"max_tasks": 1}, {"max_tasks": 2}),
        ({"draining": True}, {"state": "present"}),
        ({}, {"rotate_key": True}),
        ({}, {"stored_key": "ccca_old"}),
        ({}, {"state": "draining"}),
        ({}, {"state": "absent"}),
    ],
)
def test_check_mode_reports_the_change_and_changes_nothing(coordinator, existing, given):
    if existing is not None:
        coordinator.add("agent4", **{"specialties": ["backend", "general"], **existing})
    before = json.dumps(coordinator.agents, sort_keys=True)
    result = run_module(cluster_agent, args(**given), check_mode=True)
    assert result["changed"]
    assert "key" not in result
    if not {"rotate_key", "stored_key"} & given.keys():  # a new key is not a setting: no diff
        assert result["diff"]["before"] != result["diff"]["after"]
    assert coordinator.changes == []
    assert json.dumps(coordinator.agents, sort_keys=True) == before


@pytest.mark.parametrize(
    ("stored", "rotated"),
    [("ccca_secret", False), ("ccca_old", True), ("", True)],
    ids=["accepted", "refused", "none"],
)
def test_a_stored_key_is_kept_while_accepted_and_replaced_when_refused(
    coordinator, stored, rotated
):
    agent = coordinator.add("agent4", specialties=["backend", "general"])
    coordinator.keys[agent["id"]] = "ccca_secret"
    result = run_module(cluster_agent, args(stored_key=stored))
    assert result["changed"] is rotated
    assert result.get("key") == ("ccca_rotated" if rotated else None)
    rotation = [("POST", f"{URL}/api/v1/agents/{agent['id']}/key")]
    assert coordinator.changes == (rotation if rotated else [])
    assert stored == "" or "ccca" not in json.dumps(result["invocation"])  # no_log option


def test_a_stored_key_for_an_unknown_agent_registers_it(coordinator):
    result = run_module(cluster_agent, args(stored_key="ccca_from_a_wiped_coordinator"))
    assert result["created"] and result["key"] == "ccca_secret"
    assert coordinator.changes == [("POST", f"{URL}/api/v1/agents")]


def test_agents_are_found_past_the_first_page(coordinator):
    for number in range(1, 231):
        coordinator.add(f"agent{number:03}")
    result = run_module(cluster_agent, args(name="agent230", state="draining", drain_timeout=0))
    assert result["changed"] and result["agent"]["draining"]
    pages = [c for c in coordinator.calls if c[1].startswith(f"{URL}/api/v1/agents?")]
    assert len(pages) == 3  # 100 per page


# --- draining and absent --------------------------------------------------------------------


def test_draining_sets_maintenance_and_waits_for_the_tasks(coordinator):
    agent = coordinator.add("agent4")
    coordinator.hold(agent["id"], 7)
    coordinator.finish_after_polls = 3
    result = run_module(cluster_agent, args(state="draining", drain_timeout=10))
    assert result["changed"]
    assert result["drained"] and result["running_tasks"] == []
    assert agent["draining"]
    assert result["diff"]["after"]["draining"] and not result["diff"]["before"]["draining"]
    again = run_module(cluster_agent, args(state="draining", drain_timeout=10))
    assert not again["changed"]


def test_draining_timeout_without_handback_fails_and_leaves_it_draining(coordinator):
    agent = coordinator.add("agent4")
    coordinator.hold(agent["id"], 7, 9)
    result = run_module(cluster_agent, args(state="draining", drain_timeout=0))
    assert result["failed"]
    assert "still holds tasks [7, 9]" in result["msg"]
    assert result["running_tasks"] == [7, 9]
    assert agent["draining"]


def test_draining_timeout_with_handback_reports_the_tasks(coordinator):
    agent = coordinator.add("agent4")
    coordinator.hold(agent["id"], 7)
    result = run_module(cluster_agent, args(state="draining", drain_timeout=0, handback=True))
    assert not result.get("failed")
    assert result["changed"] and not result["drained"]
    assert result["running_tasks"] == [7]
    assert "go back to the queue" in json.dumps(result["warnings"])
    assert agent["id"] in coordinator.agents  # still registered: nothing handed back yet


def test_draining_an_unknown_agent_fails(coordinator):
    result = run_module(cluster_agent, args(state="draining"))
    assert result["failed"]
    assert "not registered" in result["msg"]


@pytest.mark.parametrize(
    ("held", "handback", "outcome"),
    [
        ((), False, "removed"),
        ((7,), True, "removed"),
        ((7,), False, "failed"),
    ],
)
def test_absent_drains_then_deregisters(coordinator, held, handback, outcome):
    agent = coordinator.add("agent4")
    coordinator.hold(agent["id"], *held)
    result = run_module(
        cluster_agent, args(state="absent", drain_timeout=0, handback=handback, specialties=None)
    )
    if outcome == "failed":
        assert result["failed"]
        assert agent["id"] in coordinator.agents and agent["draining"]
        assert not any(c[0] == "DELETE" for c in coordinator.calls)
        return
    assert result["changed"]
    assert result["agent"] == {} and result["diff"]["after"] == {}
    assert result["handed_back"] == list(held)
    assert coordinator.agents == {}
    delete = [c for c in coordinator.calls if c[0] == "DELETE"]
    assert delete == [
        ("DELETE", f"{URL}/api/v1/agents/{agent['id']}" + ("?handback=1" if handback else ""))
    ]
    again = run_module(cluster_agent, args(state="absent", specialties=None))
    assert not again["changed"]


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "message", "status"),
    [
        (lambda c: setattr(c, "unreachable", True), "cannot reach the coordinator", None),
        (lambda c: setattr(c, "fail_with", 500), "answered HTTP 500: database is down", 500),
        (lambda c: None, "refused the admin credentials for 'admin'", 401),
    ],
)
def test_failures_carry_context(coordinator, setup, message, status):
    setup(coordinator)
    password = "wrong" if status == 401 else PASSWORD
    result = run_module(cluster_agent, args(admin_password=password))
    assert result["failed"]
    assert message in result["msg"]
    assert result["status"] == status
    assert result["url"].startswith(URL + "/api/v1/")
    assert "wrong" not in json.dumps({k: v for k, v in result.items() if k != "invocation"})


def test_the_real_transport_reports_an_unreachable_coordinator():
    client = cluster_api.CoordinatorClient("http://127.0.0.1:9", "admin", "x", timeout=2)
    with pytest.raises(cluster_api.CoordinatorAPIError, match="cannot reach the coordinator"):
        client.find_agent("agent4")


# --- against a real coordinator -------------------------------------------------------------


@pytest.fixture
def live_coordinator(database_url, redis_url):
    """The coordinator app on a real socket, with an admin user."""
    from coordinator_app.app import create_app
    from coordinator_app.models import AdminUser
    from simulators.server import BackgroundServer
    from tests.coordinator.conftest import make_config

    app = create_app(make_config(database_url, redis_url))
    ccc = app.extensions["ccc"]
    ccc.queues.ensure()
    with ccc.database.session() as session:
        session.add(AdminUser(username="alice", password_hash=generate_password_hash(PASSWORD)))
    try:
        with BackgroundServer(app) as server:
            yield server.url, ccc
    finally:
        ccc.database.dispose()
        ccc.redis.close()
        ccc.gateway.close()


def test_against_a_real_coordinator(live_coordinator):
    from coordinator_app.models import Task

    url, ccc = live_coordinator
    common = {"coordinator_url": url, "admin_username": "alice", "admin_password": PASSWORD}
    common["name"] = "lab4"
    present = {**common, "specialties": ["backend", "general"], "max_tasks": 2}

    first = run_module(cluster_agent, present)
    assert first["changed"] and first["key"].startswith("ccca_")
    second = run_module(cluster_agent, present)
    assert not second["changed"] and "key" not in second
    assert second["agent"]["max_tasks"] == 2

    changed = run_module(cluster_agent, {**present, "max_tasks": 3})
    assert changed["changed"] and changed["agent"]["max_tasks"] == 3
    present["max_tasks"] = 3

    # The host's stored key: kept while the coordinator takes it, replaced when it does not.
    kept = run_module(cluster_agent, {**present, "stored_key": first["key"]})
    assert not kept["changed"] and "key" not in kept
    replaced = run_module(cluster_agent, {**present, "stored_key": first["key"] + "x"})
    assert replaced["changed"] and replaced["key"] not in (first["key"], None)
    assert not run_module(cluster_agent, {**present, "stored_key": replaced["key"]})["changed"]
    assert run_module(cluster_agent, {**present, "stored_key": first["key"]})["changed"]

    # The agent holds a task: removing it without handback fails and leaves it draining;
    # with handback the coordinator queues the task again.
    task_id = task_in_progress(ccc, first["agent"]["id"])
    absent = {**common, "state": "absent", "drain_timeout": 0}
    refused = run_module(cluster_agent, absent)
    assert refused["failed"] and refused["running_tasks"] == [task_id]
    removed = run_module(cluster_agent, {**absent, "handback": True})
    assert removed["changed"] and removed["handed_back"] == [task_id]
    with ccc.database.session() as session:
        assert session.get(Task, task_id).state == "queued"
    assert not run_module(cluster_agent, absent)["changed"]


def test_a_missing_ca_file_is_named(coordinator, tmp_path):
    missing = tmp_path / "ca.crt"
    result = run_module(cluster_agent, args(ca_path=str(missing)))
    assert result["failed"]
    assert f"ca_path {missing} is not a file" in result["msg"]
    assert coordinator.calls == []


def task_in_progress(ccc, agent_id: int) -> int:
    """A backend task the agent ``agent_id`` is working on; its id."""
    from coordinator_app.models import Task

    with ccc.database.session() as session:
        task = Task(
            repository="acme/api",
            issue_number=1,
            title="t",
            requested_by="alice",
            state="in_progress",
            specialty="backend",
            agent_id=agent_id,
        )
        session.add(task)
        session.flush()
        return task.id


# --- cluster_agent_info ---------------------------------------------------------------------

CONNECTION = {"coordinator_url": URL, "admin_password": PASSWORD}


def test_info_every_agent_is_listed_across_pages(coordinator):
    for number in range(1, 231):
        coordinator.add(f"agent{number:03}")
    result = run_module(cluster_agent_info, CONNECTION)
    assert not result["changed"]
    assert [a["name"] for a in result["agents"]] == [f"agent{n:03}" for n in range(1, 231)]
    assert coordinator.changes == []


def test_info_one_agent_by_name_and_an_unknown_name(coordinator):
    for number in range(1, 131):
        coordinator.add(f"agent{number:03}", state="busy" if number == 125 else "idle")
    found = run_module(cluster_agent_info, {**CONNECTION, "name": "agent125"})
    assert [(a["name"], a["state"]) for a in found["agents"]] == [("agent125", "busy")]
    assert run_module(cluster_agent_info, {**CONNECTION, "name": "agent999"})["agents"] == []


def test_info_running_task_ids_only_when_asked(coordinator):
    busy = coordinator.add("agent1")
    coordinator.add("agent2")
    coordinator.hold(busy["id"], 7, 9)
    plain = run_module(cluster_agent_info, CONNECTION)
    assert all("running_task_ids" not in a for a in plain["agents"])
    listed = run_module(cluster_agent_info, {**CONNECTION, "running_tasks": True})
    assert [a["running_task_ids"] for a in listed["agents"]] == [[7, 9], []]
    task_reads = [c for c in coordinator.calls if c[1].endswith("/tasks?per_page=100")]
    assert len(task_reads) == 1  # only the agent that holds tasks is asked


def test_info_failures_carry_context_and_hide_the_password(coordinator):
    coordinator.fail_with = 503
    failed = run_module(cluster_agent_info, CONNECTION)
    assert failed["failed"] and failed["status"] == 503
    assert "database is down" in failed["msg"]
    refused = run_module(cluster_agent_info, {**CONNECTION, "admin_password": "wrong"})
    assert refused["failed"] and refused["status"] == 401
    hidden = refused["invocation"]["module_args"]["admin_password"]
    assert hidden == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_info_against_a_real_coordinator(live_coordinator):
    from coordinator_app.agents import AgentSpec, register_agent

    url, ccc = live_coordinator
    with ccc.database.session() as session:
        ids = [
            register_agent(session, AgentSpec(name=f"lab{n:03}", specialties=["general"]))[0].id
            for n in range(1, 106)
        ]
    task_id = task_in_progress(ccc, ids[-1])
    common = {"coordinator_url": url, "admin_username": "alice", "admin_password": PASSWORD}

    everyone = run_module(cluster_agent_info, common)["agents"]
    assert len(everyone) == 105  # past the API's 100 per page
    assert {a["state"] for a in everyone} == {"offline"}  # none has sent a heartbeat
    last = run_module(cluster_agent_info, {**common, "name": "lab105", "running_tasks": True})
    assert [(a["id"], a["running_task_ids"]) for a in last["agents"]] == [(ids[-1], [task_id])]
