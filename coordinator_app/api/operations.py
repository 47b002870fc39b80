"""What each API operation takes and answers beyond its route, declared once: the OpenAPI
document shows it, and the request readers below hold every request to it (body, query
string, pages), so input is checked at the edge against the very schema a client reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import request, url_for
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import UnsupportedMediaType

from cluster_core.specialties import SECURITY_LEVELS, SPECIALTIES
from cluster_core.states import AgentState, TaskState
from coordinator_app import json_input
from coordinator_app.acceptance import GROUPINGS
from coordinator_app.api.schemas import BOOLEAN, ID, STRING
from coordinator_app.db import INT_MAX
from coordinator_app.exceptions import InvalidRequest
from coordinator_app.json_input import nullable, object_of, string
from coordinator_app.models import AdminUser, Agent, Task

MAX_PER_PAGE = 100
MAX_EVENTS_PER_CALL = 100
# Every report of an agent on a task names the attempt its claim began (the claim's "attempt").
ATTEMPT_HEADER = "X-Task-Attempt"
# A task's cost_usd column (numeric(12, 6)) holds less than this many dollars.
COST_LIMIT = 10 ** (Task.cost_usd.type.precision - Task.cost_usd.type.scale)


COUNT = {"type": "integer", "minimum": 0, "maximum": INT_MAX}
SPECIALTY_LIST = {"type": "array", "minItems": 1, "items": {"enum": list(SPECIALTIES)}}
CAPABILITIES = {
    "type": "array",
    "items": {"type": "string", "maxLength": Agent.capabilities.type.item_type.length},
}
PAGE = {
    "page": {"type": "integer", "minimum": 1, "maximum": INT_MAX},
    "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
}
ATTEMPT_ID = {"type": "string", "minLength": 1, "maxLength": 64}
ATTEMPT = {
    ATTEMPT_HEADER: {
        **ATTEMPT_ID,
        "description": "The claim's attempt; a report of another attempt is refused: 409, "
        "code attempt_over (the run must stop without pushing).",
    }
}
REASON = object_of(reason=STRING)
PULL_REQUEST = {
    "branch": string(Task.branch),
    "pr_number": ID,
    "pr_url": STRING,
}

NEW_TASK = object_of(
    "repository",
    "issue_number",
    "title",
    repository=string(Task.repository),
    issue_number=ID,
    title=STRING,
    body=STRING,
    labels={"type": "array", "items": STRING},
)
TASK_REPORT = object_of(state={"enum": [s.value for s in TaskState]}, reason=STRING, **PULL_REQUEST)
EVENTS = object_of(
    "events",
    events={
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_EVENTS_PER_CALL,
        "items": object_of(
            "kind",
            kind=STRING,  # stored cut to its column's length
            data=object_of(
                input_tokens=COUNT,
                output_tokens=COUNT,
                cost_usd={"type": "number", "minimum": 0, "maximum": COST_LIMIT},
            ),
        ),
    },
)
RESULT = object_of(
    "outcome",
    outcome={"enum": ["completed", "failed"]},
    error=nullable(STRING),
    permanent=BOOLEAN,
    summary=nullable(STRING),
    tests=nullable({"type": "object"}),
    pushed_commit=nullable(STRING),
    limit=nullable(STRING),
    executor=nullable(string(Task.executor)),  # what ran the model loop
    **PULL_REQUEST,
)
NEW_AGENT = object_of(
    "name",
    "specialties",
    name=string(Agent.name),
    specialties=SPECIALTY_LIST,
    max_tasks=COUNT,
    clearance={"enum": list(SECURITY_LEVELS)},
    capabilities=CAPABILITIES,
)
AGENT_CHANGES = object_of(
    **{k: v for k, v in NEW_AGENT["properties"].items() if k != "name"}, draining=BOOLEAN
)
HEARTBEAT = object_of(
    "state",
    state={"enum": [s.value for s in AgentState]},
    load={"type": "number", "minimum": 0, "maximum": 1e9},  # a float; stored clamped to 0-99
    tasks={
        "type": "array",
        "items": object_of("id", "attempt", id=ID, attempt=ATTEMPT_ID),
    },
    version=string(Agent.version),
    address=string(Agent.address),
    instance=string(Agent.instance),
    error=STRING,
)
AGENT_CREDENTIALS = object_of("name", "key", name=string(Agent.name), key=STRING)
ADMIN_CREDENTIALS = object_of(
    "username", "password", username=string(AdminUser.username), password=STRING
)


@dataclass
class Operation:
    """One operation's contract. The statuses its route implies are the document's to add:
    401 and 403 when it needs a token, 400 and 404 with ids in its path, 400, 413 and 415 with
    a body, 400 with query or header parameters, 429 always."""

    returns: str | None  # the schema of its success answer, by name in schemas.COMPONENTS
    status: int = 200
    body: dict | None = None  # the JSON Schema of its request body
    body_required: bool = True
    query: dict[str, dict] = field(default_factory=dict)  # query parameter -> its schema
    headers: dict[str, dict] = field(default_factory=dict)  # required header -> its schema
    refusals: tuple[int, ...] = ()  # other statuses it may answer (409, 503, ...)
    # OpenAPI links: name -> (operationId, {parameter: expression on the success answer}).
    links: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.body_validator = json_input.validator(self.body) if self.body else None
        self.query_validator = json_input.validator({"type": "object", "properties": self.query})


def _links(parameters: dict[str, str], *operations: str) -> dict:
    """Links to ``operations``, each given ``parameters`` (name -> field of the answer)."""
    given = {name: f"$response.body#/{pointer}" for name, pointer in parameters.items()}
    return {"".join(w.title() for w in op.split("_")): (op, given) for op in operations}


TASK_REPORTS = ("update_task", "add_events", "github_token", "release_task", "finish_task")
OPERATIONS: dict[str, Operation] = {
    # Tasks
    "list_tasks": Operation(
        "TaskPage",
        query={
            "state": {"enum": [s.value for s in TaskState]},
            "repository": string(Task.repository),
            "specialty": {"enum": list(SPECIALTIES)},
            "agent_id": ID,
            **PAGE,
        },
    ),
    "create_task": Operation(
        "TaskDetail",
        status=201,
        body=NEW_TASK,
        refusals=(409, 503),
        links=_links({"task_id": "id"}, "get_task", "task_events", "cancel_task", "retry_task"),
    ),
    "get_task": Operation("TaskDetail"),
    "task_events": Operation("EventPage", query=PAGE),
    "cancel_task": Operation("TaskDetail", body=REASON, body_required=False, refusals=(409,)),
    "retry_task": Operation("TaskDetail", refusals=(409,)),
    "claim_task": Operation(
        "ClaimedTask",
        refusals=(409, 503),
        links=_links({"task_id": "id", f"header.{ATTEMPT_HEADER}": "attempt"}, *TASK_REPORTS),
    ),
    "github_token": Operation(
        "Grant", body=object_of("ref", ref=STRING), headers=ATTEMPT, refusals=(409, 503)
    ),
    "release_task": Operation(
        "Task", body=REASON, body_required=False, headers=ATTEMPT, refusals=(409,)
    ),
    "update_task": Operation("Task", body=TASK_REPORT, headers=ATTEMPT, refusals=(409,)),
    "add_events": Operation("EventsAdded", body=EVENTS, headers=ATTEMPT, refusals=(409,)),
    "finish_task": Operation("TaskDetail", body=RESULT, headers=ATTEMPT, refusals=(409,)),
    # Agents
    "list_agents": Operation("AgentPage", query=PAGE),
    "register_agent": Operation(
        "RegisteredAgent",
        status=201,
        body=NEW_AGENT,
        refusals=(409,),
        links=_links(
            {"agent_id": "id"},
            "get_agent",
            "update_agent",
            "agent_tasks",
            "rotate_agent_key",
            "deregister_agent",
        ),
    ),
    "get_agent": Operation("Agent"),
    "update_agent": Operation("Agent", body=AGENT_CHANGES),
    "deregister_agent": Operation(
        None, status=204, query={"handback": {"enum": ["0", "1", "true", "false"]}}, refusals=(409,)
    ),
    "rotate_agent_key": Operation("AgentKey"),
    "agent_heartbeat": Operation("HeartbeatAnswer", body=HEARTBEAT, refusals=(409,)),
    "agent_tasks": Operation("TaskPage", query=PAGE),
    "queue_depths": Operation("Queues"),
    # Tokens, the document, scaling, acceptance
    "agent_token": Operation(
        "AgentToken",
        body=AGENT_CREDENTIALS,
        refusals=(401,),
        links=_links({"agent_id": "agent_id"}, "get_agent", "agent_heartbeat", "agent_tasks"),
    ),
    "admin_token": Operation("Token", body=ADMIN_CREDENTIALS, refusals=(401,)),
    "openapi_document": Operation("Document"),
    "scaling_decision": Operation("Scaling"),
    "acceptance_figures": Operation(
        "Acceptance", query={"by": {"enum": list(GROUPINGS), "default": GROUPINGS[0]}}
    ),
}


# Reading a request by its operation ---------------------------------------------------------


def current() -> Operation:
    """The declaration of the operation the request is for."""
    return OPERATIONS[request.endpoint.removeprefix("api.")]


def json_body(*required: str) -> dict[str, Any]:
    """The request's JSON object, held to its operation's declared body (and to ``required``
    keys): 415 when it is not JSON, 400 when it breaks the schema, 413 past the size limit."""
    operation = current()
    raw = request.get_data(cache=True)
    if not raw:
        if not operation.body_required:
            return {}
        raise InvalidRequest("this request needs a JSON body")
    if not request.is_json:
        raise UnsupportedMediaType("send the body as JSON, with Content-Type: application/json")
    data = json_input.parse(raw)
    json_input.check(data, operation.body_validator, "body")
    missing = [key for key in required if key not in data]
    if missing:
        raise InvalidRequest(f"missing field(s): {', '.join(missing)}")
    return data


def typed(data: dict, key: str, kind: type, default: Any = None) -> Any:
    """``data[key]`` if it has type ``kind`` (or is absent → ``default``); 400 otherwise."""
    if key not in data:
        return default
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidRequest(f"field {key} must be of type {kind.__name__}")
    return value


_INTEGER = re.compile(r"-?[0-9]{1,19}")


def query_args() -> dict[str, Any]:
    """The operation's query parameters that the request gives (an empty one counts as not
    given), integers as ints; 400 when one breaks its schema."""
    operation = current()
    values: dict[str, Any] = {}
    for name, schema in operation.query.items():
        value = request.args.get(name)
        if value:
            is_integer = schema.get("type") == "integer" and _INTEGER.fullmatch(value)
            values[name] = int(value) if is_integer else value
    json_input.check(values, operation.query_validator, "query")
    return values


def paginate(session: Session, query: Select, endpoint: str, serialize, **params) -> dict:
    """``{"items", "_meta", "_links"}`` for ``query`` at the request's ``page``/``per_page``."""
    args = query_args()
    page, per_page = args.get("page", 1), args.get("per_page", 25)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    pages = max((total + per_page - 1) // per_page, 1)

    def link(p: int) -> str:
        return url_for(endpoint, page=p, per_page=per_page, **params)

    return {
        "items": [serialize(item) for item in items],
        "_meta": {"page": page, "per_page": per_page, "total_items": total, "total_pages": pages},
        "_links": {
            "self": link(page),
            "next": link(page + 1) if page < pages else None,
            "prev": link(page - 1) if page > 1 else None,
        },
    }
