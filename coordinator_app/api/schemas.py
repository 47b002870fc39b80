"""JSON shapes of the API's objects, and request-body helpers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import request, url_for
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from coordinator_app.exceptions import InvalidRequest
from coordinator_app.models import Agent, ProgressEvent, Task, TaskTransition
from coordinator_app.states import AgentState

MAX_PER_PAGE = 100


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def task_json(task: Task, detail: bool = False) -> dict[str, Any]:
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
                "history": [transition_json(t) for t in task.transitions],
            }
        )
    return data


def transition_json(t: TaskTransition) -> dict[str, Any]:
    return {
        "from": t.from_state,
        "to": t.to_state,
        "actor": t.actor,
        "reason": t.reason,
        "at": iso(t.at),
    }


def event_json(e: ProgressEvent) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "data": e.data, "at": iso(e.at)}


def agent_json(agent: Agent, state: AgentState, running: int) -> dict[str, Any]:
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


def json_body(*required: str) -> dict[str, Any]:
    """The request's JSON object, with ``required`` keys present; 400 otherwise."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidRequest("expected a JSON object body with Content-Type: application/json")
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


def paginate(session: Session, query: Select, endpoint: str, serialize, **params) -> dict:
    """``{"items", "_meta", "_links"}`` for ``query`` at the request's ``page``/``per_page``."""
    try:
        page = max(int(request.args.get("page", 1)), 1)
        per_page = min(max(int(request.args.get("per_page", 25)), 1), MAX_PER_PAGE)
    except ValueError as exc:
        raise InvalidRequest("page and per_page must be integers") from exc
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
