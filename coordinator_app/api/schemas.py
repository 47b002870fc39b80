"""JSON shapes of the API's objects: each serializer beside the JSON Schema of what it returns.

The schemas are the OpenAPI document's components (``COMPONENTS``); the fuzz tests check every
answer against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cluster_core.specialties import SPECIALTIES
from cluster_core.states import AgentState, TaskKind, TaskState
from coordinator_app.acceptance import GROUPINGS, Figures
from coordinator_app.db import INT_MAX
from coordinator_app.json_input import nullable
from coordinator_app.models import Agent, ProgressEvent, PullRequest, Task, TaskTransition

# Building blocks ---------------------------------------------------------------------------

ID = {"type": "integer", "minimum": 1, "maximum": INT_MAX}
STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
BOOLEAN = {"type": "boolean"}
OBJECT = {"type": "object"}
TIME = {"type": "string", "format": "date-time"}
STRINGS = {"type": "array", "items": STRING}


def ref(name: str) -> dict:
    """A reference to ``COMPONENTS[name]`` in the OpenAPI document."""
    return {"$ref": f"#/components/schemas/{name}"}


def record(**properties: dict) -> dict:
    """An object that always has all of ``properties`` (and may grow more)."""
    return {"type": "object", "required": list(properties), "properties": properties}


def extended(schema: dict, **properties: dict) -> dict:
    """``schema`` (a ``record``) with more ``properties``, all of them always there."""
    return record(**schema["properties"], **properties)


def page(item: str) -> dict:
    """A page of a collection of ``COMPONENTS[item]`` (what ``paginate`` returns)."""
    return record(
        items={"type": "array", "items": ref(item)},
        _meta=record(page=ID, per_page=INTEGER, total_items=INTEGER, total_pages=INTEGER),
        _links=record(self=STRING, next=nullable(STRING), prev=nullable(STRING)),
    )


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# Tasks -------------------------------------------------------------------------------------

TASK = record(
    id=ID,
    kind={"enum": [k.value for k in TaskKind]},
    repository=STRING,
    issue_number=INTEGER,
    title=STRING,
    state={"enum": [s.value for s in TaskState]},
    specialty=nullable(STRING),
    complexity=nullable(STRING),
    security_level=STRING,
    agent=nullable(STRING),
    attempts=INTEGER,
    branch=nullable(STRING),
    pr_number=nullable(INTEGER),
    pr_url=nullable(STRING),
    input_tokens=INTEGER,
    output_tokens=INTEGER,
    cost_usd=NUMBER,
    depends_on={"type": "array", "items": INTEGER},
    parent_id=nullable(ID),
    error=nullable(STRING),
    created_at=TIME,
    updated_at=TIME,
    lease_expires_at=nullable(TIME),
    retry_at=nullable(TIME),
)
TRANSITION = record(**{"from": nullable(STRING)}, to=STRING, actor=STRING, reason=STRING, at=TIME)
# The task's pull request as GitHub decided it (open, merged, closed without merge).
PULL_REQUEST = record(
    number=INTEGER,
    url=STRING,
    state={"enum": ["open", "merged", "closed"]},
    head_sha=nullable(STRING),
    opened_at=TIME,
    decided_at=nullable(TIME),
    decided_by=nullable(STRING),
    seconds_to_merge=nullable(NUMBER),
    last_activity_at=TIME,
    reminded_at=nullable(TIME),
)
TASK_DETAIL = extended(
    TASK,
    body=STRING,
    requested_by=STRING,
    budget=OBJECT,
    analysis=OBJECT,
    result=OBJECT,
    executor=nullable(STRING),
    pull_request=nullable(PULL_REQUEST),
    history={"type": "array", "items": TRANSITION},
)


def task_json(task: Task, detail: bool = False) -> dict[str, Any]:
    """``TASK``, or ``TASK_DETAIL`` with ``detail``."""
    data = {
        "id": task.id,
        "kind": task.kind,
        "repository": task.repository,
        "issue_number": task.issue_number,
        "title": task.title,
        "state": task.state,
        "specialty": task.specialty,
        "complexity": task.complexity,
        "security_level": task.security_level,
        "agent": task.agent.name if task.agent else None,
        "attempts": task.attempts,
        "branch": task.branch,
        "pr_number": task.pr_number,
        "pr_url": task.pr_url,
        "input_tokens": task.input_tokens,
        "output_tokens": task.output_tokens,
        "cost_usd": float(task.cost_usd or 0),
        "depends_on": list(task.depends_on or []),
        "parent_id": task.parent_id,
        "error": task.error,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "lease_expires_at": iso(task.lease_expires_at),
        "retry_at": iso(task.retry_at),
    }
    if detail:
        data.update(
            {
                "body": task.body,
                "requested_by": task.requested_by,
                "budget": task.budget,
                "analysis": task.analysis,
                "result": task.result,
                "executor": task.executor,
                "pull_request": pull_request_json(task.pull_request),
                "history": [transition_json(t) for t in task.transitions],
            }
        )
    return data


def pull_request_json(pull: PullRequest | None) -> dict[str, Any] | None:
    if pull is None:
        return None
    merged = pull.state == "merged" and pull.decided_at is not None
    return {
        "number": pull.number,
        "url": pull.url,
        "state": pull.state,
        "head_sha": pull.head_sha,
        "opened_at": iso(pull.opened_at),
        "decided_at": iso(pull.decided_at),
        "decided_by": pull.decided_by,
        "seconds_to_merge": (
            (pull.decided_at - pull.opened_at).total_seconds() if merged else None
        ),
        "last_activity_at": iso(pull.last_activity_at),
        "reminded_at": iso(pull.reminded_at),
    }


def transition_json(t: TaskTransition) -> dict[str, Any]:
    return {
        "from": t.from_state,
        "to": t.to_state,
        "actor": t.actor,
        "reason": t.reason,
        "at": iso(t.at),
    }


# What a claim hands the agent: the task, the attempt its reports name, the GitHub grant.
GRANT = record(
    token=STRING,
    expires_at=nullable(TIME),
    repository=STRING,
    permissions=nullable({"type": "object", "additionalProperties": STRING}),
    api_url=STRING,
    branch=nullable(STRING),
    author=record(name=STRING, email=STRING),
    co_authors=STRINGS,
    requester=nullable(STRING),
)
CLAIMED_TASK = extended(TASK_DETAIL, attempt=STRING, github=GRANT)

EVENT = record(id=ID, kind=STRING, data=OBJECT, at=TIME)
EVENTS_ADDED = record(
    accepted=INTEGER, input_tokens=INTEGER, output_tokens=INTEGER, cost_usd=NUMBER
)


def event_json(e: ProgressEvent) -> dict[str, Any]:
    """``EVENT``."""
    return {"id": e.id, "kind": e.kind, "data": e.data, "at": iso(e.at)}


# Agents ------------------------------------------------------------------------------------

AGENT = record(
    id=ID,
    name=STRING,
    state={"enum": [s.value for s in AgentState]},
    error=nullable(STRING),
    specialties=STRINGS,
    capabilities=STRINGS,
    clearance=STRING,
    max_tasks=INTEGER,
    running_tasks=INTEGER,
    draining=BOOLEAN,
    load=NUMBER,
    version=nullable(STRING),
    address=nullable(STRING),
    last_heartbeat_at=nullable(TIME),
    created_at=TIME,
)
# The agent's key is in the answers that create or rotate it, and in no other.
REGISTERED_AGENT = extended(AGENT, key=STRING)
AGENT_KEY = record(id=ID, name=STRING, key=STRING)
HEARTBEAT_ANSWER = record(
    renewed={"type": "array", "items": ID},
    stop={"type": "array", "items": INTEGER},
    drain=BOOLEAN,
    lease_seconds=INTEGER,
    heartbeat_seconds=INTEGER,
    held={"type": "object", "additionalProperties": STRING},
    cancelled={"type": "array", "items": INTEGER},
)


def agent_json(agent: Agent, state: AgentState, running: int) -> dict[str, Any]:
    """``AGENT``."""
    return {
        "id": agent.id,
        "name": agent.name,
        "state": state.value,
        "error": agent.reported_error if state is AgentState.ERROR else None,
        "specialties": list(agent.specialties),
        "capabilities": list(agent.capabilities),
        "clearance": agent.clearance,
        "max_tasks": agent.max_tasks,
        "running_tasks": running,
        "draining": agent.draining,
        "load": float(agent.load or 0),
        "version": agent.version,
        "address": agent.address,
        "last_heartbeat_at": iso(agent.last_heartbeat_at),
        "created_at": iso(agent.created_at),
    }


# The rest ----------------------------------------------------------------------------------

TOKEN = record(token=STRING, token_type={"const": "Bearer"}, expires_in=INTEGER)
AGENT_TOKEN = extended(TOKEN, agent_id=ID)
COUNTS = {"type": "object", "additionalProperties": INTEGER}
QUEUES = {
    **record(queued=COUNTS, offered=nullable(COUNTS)),
    "properties": {
        "queued": COUNTS,
        "offered": nullable(COUNTS),  # null while Redis is unreachable
        # For admins only: queued tasks no live agent may take, and why.
        "unclaimable": {"type": "array", "items": record(task_id=ID, reason=STRING)},
    },
}
SCALING = record(
    generated_at=TIME,
    target_load=NUMBER,
    max_wait_seconds=NUMBER,
    floors=COUNTS,
    specialties={
        "type": "object",
        "propertyNames": {"enum": list(SPECIALTIES)},
        "additionalProperties": record(
            specialty=STRING,
            queued=INTEGER,
            oldest_wait_seconds=NUMBER,
            agents=INTEGER,
            agent_names=STRINGS,
            slots=INTEGER,
            running=INTEGER,
            load=nullable(NUMBER),  # null: work queued and no agent to take it
            desired=INTEGER,
            delta=INTEGER,
            reasons=STRINGS,
        ),
    },
    agents={
        "type": "array",
        "items": record(
            name=STRING,
            specialties=STRINGS,
            max_tasks=INTEGER,
            running_tasks=INTEGER,
            state=STRING,
            draining=BOOLEAN,
        ),
    },
)
# The acceptance figures of a group (coordinator_app.acceptance says what each one means).
FIGURES = record(
    group=STRING,
    opened=INTEGER,
    merged=INTEGER,
    rejected=INTEGER,
    open=INTEGER,
    merge_rate=nullable(NUMBER),
    median_seconds_to_first_pr=nullable(NUMBER),
    median_seconds_to_merge=nullable(NUMBER),
    follow_up_rounds=nullable(NUMBER),
    cost_usd=NUMBER,
    cost_per_merged_pr=nullable(NUMBER),
)
ACCEPTANCE = record(
    by={"enum": list(GROUPINGS)}, groups={"type": "array", "items": FIGURES}, total=FIGURES
)


def acceptance_json(by: str, rows: list[Figures]) -> dict[str, Any]:
    """``ACCEPTANCE``: the groups' figures, then the total's."""

    def figures_json(row: Figures) -> dict[str, Any]:
        return {
            "group": row.group,
            "opened": row.opened,
            "merged": row.merged,
            "rejected": row.rejected,
            "open": row.open,
            "merge_rate": row.merge_rate,
            "median_seconds_to_first_pr": row.median_seconds_to_first_pr,
            "median_seconds_to_merge": row.median_seconds_to_merge,
            "follow_up_rounds": row.follow_up_rounds,
            "cost_usd": row.cost_usd,
            "cost_per_merged_pr": row.cost_per_merged_pr,
        }

    *groups, total = rows
    return {"by": by, "groups": [figures_json(g) for g in groups], "total": figures_json(total)}


DOCUMENT = {"type": "object", "required": ["openapi", "info", "paths"]}
ERROR = record(
    error=record(status={"type": "integer", "minimum": 400}, code=STRING, message=STRING)
)

COMPONENTS = {
    "Task": TASK,
    "TaskDetail": TASK_DETAIL,
    "ClaimedTask": CLAIMED_TASK,
    "TaskPage": page("Task"),
    "Event": EVENT,
    "EventPage": page("Event"),
    "EventsAdded": EVENTS_ADDED,
    "Agent": AGENT,
    "AgentPage": page("Agent"),
    "RegisteredAgent": REGISTERED_AGENT,
    "AgentKey": AGENT_KEY,
    "HeartbeatAnswer": HEARTBEAT_ANSWER,
    "Grant": GRANT,
    "Token": TOKEN,
    "AgentToken": AGENT_TOKEN,
    "Queues": QUEUES,
    "Scaling": SCALING,
    "Acceptance": ACCEPTANCE,
    "Document": DOCUMENT,
    "Error": ERROR,
}
