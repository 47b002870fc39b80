"""The agent registry: keys, bearer tokens, heartbeats and derived agent state."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cluster_core.specialties import SECURITY_LEVELS, SPECIALTIES
from cluster_core.states import RUNNING_STATES, AgentState, TaskState
from coordinator_app.config import CoordinatorConfig
from coordinator_app.exceptions import Conflict, InvalidRequest, Unauthorized
from coordinator_app.models import Agent, Task
from coordinator_app.tasks import renew_leases, transition

KEY_PREFIX = "ccca_"  # recognisable in secret scanners and logs that must redact it


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class AgentSpec:
    """What an admin (or the cluster_agent Ansible module) says about an agent."""

    name: str
    specialties: list[str]
    max_tasks: int = 1
    clearance: str = "standard"
    capabilities: list[str] | None = None

    def validate(self) -> None:
        if not self.name or len(self.name) > 100 or not self.name.replace("-", "").isalnum():
            raise InvalidRequest("name must be 1-100 letters, digits or dashes")
        unknown = sorted(set(self.specialties) - set(SPECIALTIES))
        if unknown or not self.specialties:
            raise InvalidRequest(f"specialties must be a non-empty subset of {list(SPECIALTIES)}")
        if not 1 <= self.max_tasks <= 64:
            raise InvalidRequest("max_tasks must be between 1 and 64")
        if self.clearance not in SECURITY_LEVELS:
            raise InvalidRequest(f"clearance must be one of {list(SECURITY_LEVELS)}")


def register_agent(session: Session, spec: AgentSpec) -> tuple[Agent, str]:
    """Create an agent and its key; the key is returned once and only its hash is kept."""
    spec.validate()
    if session.scalar(select(Agent).where(Agent.name == spec.name)):
        raise Conflict(f"agent {spec.name} already exists")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    agent = Agent(
        name=spec.name,
        key_hash=hash_key(key),
        specialties=list(spec.specialties),
        capabilities=list(spec.capabilities or []),
        clearance=spec.clearance,
        max_tasks=spec.max_tasks,
    )
    session.add(agent)
    session.flush()
    return agent, key


def rotate_key(agent: Agent) -> str:
    """Give the agent a new key; the old one (and tokens made from it) stop working."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    agent.key_hash = hash_key(key)
    return key


def authenticate_agent(session: Session, name: str, key: str) -> Agent:
    """The agent whose name and key match, or Unauthorized (same answer for either mistake)."""
    agent = session.scalar(select(Agent).where(Agent.name == name))
    expected = agent.key_hash if agent else hash_key("no such agent")
    if not hmac.compare_digest(expected, hash_key(key)) or agent is None:
        raise Unauthorized("unknown agent or wrong key")
    return agent


def running_tasks(session: Session, agent: Agent) -> list[Task]:
    """Tasks the agent holds now."""
    return list(
        session.scalars(
            select(Task)
            .where(Task.agent_id == agent.id, Task.state.in_([s.value for s in RUNNING_STATES]))
            .order_by(Task.id)
        )
    )


def derive_state(
    agent: Agent, running: int, config: CoordinatorConfig, now: datetime
) -> AgentState:
    """The agent's state from its last heartbeat, what it reported, and the tasks it holds."""
    if agent.last_heartbeat_at is None or (
        now - agent.last_heartbeat_at > timedelta(seconds=config.lease_seconds)
    ):
        return AgentState.OFFLINE
    if agent.draining:
        return AgentState.MAINTENANCE
    if agent.reported_state == AgentState.ERROR.value:
        return AgentState.ERROR
    if running > agent.max_tasks or float(agent.load or 0) > 1.0:
        return AgentState.OVERLOADED
    return AgentState.BUSY if running else AgentState.IDLE


def states_by_agent(
    session: Session, config: CoordinatorConfig, now: datetime
) -> dict[int, tuple[Agent, AgentState, int]]:
    """Every agent with its derived state and running-task count, in two queries."""
    counts = dict(
        session.execute(
            select(Task.agent_id, func.count())
            .where(Task.state.in_([s.value for s in RUNNING_STATES]))
            .group_by(Task.agent_id)
        ).all()
    )
    result = {}
    for agent in session.scalars(select(Agent).order_by(Agent.name)):
        running = counts.get(agent.id, 0)
        result[agent.id] = (agent, derive_state(agent, running, config, now), running)
    return result


def heartbeat(
    session: Session,
    config: CoordinatorConfig,
    agent: Agent,
    *,
    state: str,
    load: float,
    attempts: dict[int, str],
    version: str | None,
    address: str | None,
    now: datetime,
    instance: str | None = None,
    error: str | None = None,
) -> dict:
    """Record a heartbeat and renew the leases of the tasks the agent reports (``attempts``:
    task id -> the attempt it runs), in one go.

    The answer tells the agent what to stop: reported attempts that are not the task's current
    one (cancelled, reclaimed after a lost lease, claimed again) and whether it should drain.
    """
    if state not in {s.value for s in AgentState}:
        raise InvalidRequest(f"unknown agent state {state!r}")
    if (
        instance
        and agent.instance
        and agent.instance != instance
        and agent.last_heartbeat_at is not None
        and now - agent.last_heartbeat_at < timedelta(seconds=config.heartbeat_seconds * 2)
    ):
        raise Conflict(
            f"agent {agent.name} is live as another process (instance {agent.instance}); "
            "two agents must not share a name"
        )
    if instance and agent.instance and agent.instance != instance:
        # The agent's process started again: what the old one held is not running any more.
        for task in running_tasks(session, agent):
            transition(
                session,
                task,
                TaskState.QUEUED,
                actor=f"agent:{agent.name}",
                reason=f"agent {agent.name} restarted (its old process held the task)",
                now=now,
            )
    agent.instance = instance or agent.instance
    agent.last_heartbeat_at = now
    agent.reported_state = state
    agent.reported_error = error[:1000] if error and state == AgentState.ERROR.value else None
    agent.load = max(0.0, min(float(load), 99.0))
    agent.version = version or agent.version
    agent.address = address or agent.address
    renewed = renew_leases(session, config, agent, attempts, now)
    held = {t.id: t.state for t in running_tasks(session, agent)}
    stop = sorted(set(attempts) - set(renewed))
    return {
        "renewed": renewed,
        "stop": stop,
        "drain": agent.draining,
        "lease_seconds": config.lease_seconds,
        "heartbeat_seconds": config.heartbeat_seconds,
        "held": held,
        "cancelled": [
            t
            for t in stop
            if (task := session.get(Task, t)) is not None
            and task.state == TaskState.CANCELLED.value
        ],
    }
