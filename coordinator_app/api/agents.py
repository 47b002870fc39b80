"""Agent endpoints: registration, listing, settings, heartbeats and the agent's own tasks."""

from __future__ import annotations

import redis
from flask import url_for
from sqlalchemy import func, select

from cluster_core.states import TaskState
from coordinator_app import agents as registry
from coordinator_app import audit, dispatch, tasks
from coordinator_app.api import bp
from coordinator_app.api.operations import AGENT_CHANGES, json_body, paginate, query_args, typed
from coordinator_app.api.schemas import agent_json, task_json
from coordinator_app.auth import current_principal, require
from coordinator_app.db import get_session
from coordinator_app.exceptions import Conflict, Forbidden, InvalidRequest, NotFound
from coordinator_app.models import Agent, Task, utcnow
from coordinator_app.services import services


def _agent_or_404(agent_id: int) -> Agent:
    agent = get_session().get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found")
    return agent


def _self_or_admin(agent: Agent) -> None:
    principal = current_principal()
    if principal.kind == "agent" and principal.id != agent.id:
        raise Forbidden("agents may only see themselves")


def _described(agent: Agent) -> dict:
    session = get_session()
    running = len(registry.running_tasks(session, agent))
    state = registry.derive_state(agent, running, services().config, utcnow())
    return agent_json(agent, state, running)


@bp.get("/agents")
@require("admin")
def list_agents():
    """Every agent with its derived state."""
    session = get_session()
    states = registry.states_by_agent(session, services().config, utcnow())

    def serialize(agent: Agent) -> dict:
        _, state, running = states[agent.id]
        return agent_json(agent, state, running)

    return paginate(session, select(Agent).order_by(Agent.name), "api.list_agents", serialize)


@bp.post("/agents")
@require("admin")
def register_agent():
    """Register an agent; the answer carries its key, shown this once."""
    data = json_body()
    spec = registry.AgentSpec(
        name=data["name"],
        specialties=data["specialties"],
        max_tasks=data.get("max_tasks", 1),
        clearance=data.get("clearance", "standard"),
        capabilities=data.get("capabilities", []),
    )
    session = get_session()
    agent, key = registry.register_agent(session, spec)
    audit.record(
        session,
        current_principal().actor,
        "agent.register",
        agent.name,
        specialties=spec.specialties,
        max_tasks=spec.max_tasks,
    )
    session.commit()
    body = {**_described(agent), "key": key}
    return body, 201, {"Location": url_for("api.get_agent", agent_id=agent.id)}


@bp.get("/agents/<int:agent_id>")
@require("admin", "agent")
def get_agent(agent_id: int):
    agent = _agent_or_404(agent_id)
    _self_or_admin(agent)
    return _described(agent)


@bp.patch("/agents/<int:agent_id>")
@require("admin")
def update_agent(agent_id: int):
    """Change an agent's settings, or drain it (``draining: true``) for maintenance."""
    agent = _agent_or_404(agent_id)
    data = json_body()
    changes = {key: data[key] for key in AGENT_CHANGES["properties"] if key in data}
    if not changes:
        raise InvalidRequest("nothing to change")
    candidate = registry.AgentSpec(
        name=agent.name,
        specialties=changes.get("specialties", agent.specialties),
        max_tasks=changes.get("max_tasks", agent.max_tasks),
        clearance=changes.get("clearance", agent.clearance),
    )
    candidate.validate()
    for key, value in changes.items():
        setattr(agent, key, value)
    session = get_session()
    audit.record(session, current_principal().actor, "agent.update", agent.name, **changes)
    session.commit()
    return _described(agent)


@bp.delete("/agents/<int:agent_id>")
@require("admin")
def deregister_agent(agent_id: int):
    """Remove an agent. Refused while it holds tasks unless ``?handback=1`` queues them again."""
    agent = _agent_or_404(agent_id)
    session = get_session()
    running = registry.running_tasks(session, agent)
    if running and query_args().get("handback") not in {"1", "true"}:
        raise Conflict(
            f"agent {agent.name} holds {len(running)} task(s); drain it first or pass handback=1"
        )
    actor = current_principal().actor
    for task in running:
        tasks.transition(
            session, task, TaskState.QUEUED, actor=actor, reason=f"agent {agent.name} deregistered"
        )
    audit.record(session, actor, "agent.deregister", agent.name, handed_back=len(running))
    session.delete(agent)
    session.commit()
    services().processor.notify()
    return "", 204


@bp.post("/agents/<int:agent_id>/key")
@require("admin")
def rotate_agent_key(agent_id: int):
    """Give an agent a new key; its old key and tokens stop working."""
    agent = _agent_or_404(agent_id)
    key = registry.rotate_key(agent)
    session = get_session()
    audit.record(session, current_principal().actor, "agent.rotate_key", agent.name)
    session.commit()
    return {"id": agent.id, "name": agent.name, "key": key}


@bp.post("/agents/<int:agent_id>/heartbeat")
@require("agent")
def agent_heartbeat(agent_id: int):
    """Liveness and lease renewal in one call; the answer says what to stop and whether to drain."""
    agent = _agent_or_404(agent_id)
    _self_or_admin(agent)
    data = json_body("state")
    answer = registry.heartbeat(
        get_session(),
        services().config,
        agent,
        state=typed(data, "state", str),
        load=typed(data, "load", float, 0.0),
        attempts=_reported_attempts(typed(data, "tasks", list, [])),
        version=typed(data, "version", str),
        address=typed(data, "address", str),
        instance=typed(data, "instance", str),
        error=typed(data, "error", str),
        now=utcnow(),
    )
    get_session().commit()
    return answer


def _reported_attempts(items: list) -> dict[int, str]:
    """The heartbeat's ``tasks``: ``[{"id": task id, "attempt": attempt id}, ...]``."""
    attempts = {}
    for item in items:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("id"), int)
            and not isinstance(item["id"], bool)
            and isinstance(item.get("attempt"), str)
        ):
            raise InvalidRequest('tasks must be a list of {"id": task id, "attempt": attempt id}')
        attempts[item["id"]] = item["attempt"]
    return attempts


@bp.get("/agents/<int:agent_id>/tasks")
@require("admin", "agent")
def agent_tasks(agent_id: int):
    """Tasks an agent runs or ran, newest first."""
    agent = _agent_or_404(agent_id)
    _self_or_admin(agent)
    query = select(Task).where(Task.agent_id == agent.id).order_by(Task.id.desc())
    return paginate(get_session(), query, "api.agent_tasks", task_json, agent_id=agent_id)


@bp.get("/queues")
@require("admin", "agent")
def queue_depths():
    """Tasks waiting per specialty: in PostgreSQL (truth) and in Redis (offered; null while
    Redis is unreachable); for admins,
    also the queued tasks no live agent may take (``unclaimable``), with the reason."""
    session = get_session()
    queued = dict(
        session.execute(
            select(Task.specialty, func.count())
            .where(Task.state == TaskState.QUEUED.value)
            .group_by(Task.specialty)
        ).all()
    )
    try:
        offered = services().queues.depth()
    except redis.RedisError:  # PostgreSQL's counts still tell the truth
        offered = None
    answer = {"queued": queued, "offered": offered}
    if current_principal().kind == "admin":
        waiting = dispatch.waiting_without_taker(session, services().config, utcnow())
        answer["unclaimable"] = [{"task_id": t.id, "reason": why} for t, why in waiting]
    return answer
