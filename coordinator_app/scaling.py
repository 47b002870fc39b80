"""The autoscaling decision: how many agents each specialty wants, from queues and load.

``decide()`` is a pure function of what PostgreSQL says (queued tasks and how long the oldest
has waited, per specialty; live agents and the tasks they run) and the ``[scaling]`` settings:

- An agent serves a specialty when it lists it; its slots are its ``max_tasks``.
- Running work should sit at the target load, and queued work needs free slots now:
  desired = ceil((running / target_load + queued) / slots per agent), where running counts
  the tasks the serving agents run (of any specialty: a busy agent is busy for all of its
  specialties), and slots per agent is the serving agents' average (or the cluster's, when
  none serves it; 1 in an empty cluster).
- Queued work older than ``max_wait_seconds`` asks for one agent more than there are.
- Never under the specialty's floor, and never zero while it has queued work.

Live agents are those idle, busy or overloaded; offline, draining (maintenance) and erroring
agents give no capacity. Every agent also reads the ``general`` queue after its own, but only
agents that list ``general`` count for it, as the inventory decides which hosts carry it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cluster_core.specialties import SPECIALTIES
from cluster_core.states import AgentState, TaskState
from coordinator_app import agents as registry
from coordinator_app.config import CoordinatorConfig, Scaling
from coordinator_app.models import Task, TaskTransition

LIVE_STATES = frozenset({AgentState.IDLE, AgentState.BUSY, AgentState.OVERLOADED})
# Float slack so that e.g. (1 / 0.5) / 2 is 1 agent, not 2.
_EPSILON = 1e-9


@dataclass(frozen=True)
class QueueStats:
    """Tasks waiting for one specialty."""

    queued: int = 0
    oldest_wait_seconds: float = 0.0


@dataclass(frozen=True)
class AgentLoad:
    """A registered agent as the decision sees it."""

    name: str
    specialties: tuple[str, ...]
    max_tasks: int
    running: int
    state: str
    draining: bool = False

    @property
    def live(self) -> bool:
        return AgentState(self.state) in LIVE_STATES


@dataclass
class SpecialtyDecision:
    """What one specialty has and wants, and why."""

    specialty: str
    queued: int
    oldest_wait_seconds: float
    agents: int  # live agents listing the specialty
    agent_names: list[str]
    slots: int  # their task slots (sum of max_tasks)
    running: int  # tasks they run now (of any specialty)
    load: float  # (running + queued) / slots; inf with queued work and no slots
    desired: int
    reasons: list[str] = field(default_factory=list)

    @property
    def delta(self) -> int:
        """Agents to add (positive) or that could go (negative)."""
        return self.desired - self.agents

    def as_json(self) -> dict:
        data = asdict(self)
        data["load"] = round(self.load, 3) if math.isfinite(self.load) else None
        data["oldest_wait_seconds"] = round(self.oldest_wait_seconds, 1)
        data["delta"] = self.delta
        return data


def decide(
    queues: dict[str, QueueStats], agents: list[AgentLoad], policy: Scaling
) -> dict[str, SpecialtyDecision]:
    """The desired agent count of every specialty (see the module docstring)."""
    live = [a for a in agents if a.live]
    cluster_slots = (sum(a.max_tasks for a in live) / len(live)) if live else 1.0
    decisions = {}
    for specialty in SPECIALTIES:
        stats = queues.get(specialty, QueueStats())
        serving = [a for a in live if specialty in a.specialties]
        slots = sum(a.max_tasks for a in serving)
        running = sum(a.running for a in serving)
        per_agent = slots / len(serving) if serving else cluster_slots
        demand = running + stats.queued
        wanted_slots = running / policy.target_load + stats.queued
        desired = math.ceil(wanted_slots / per_agent - _EPSILON)
        reasons = [
            f"{running} running at target load {policy.target_load:g} + {stats.queued} queued "
            f"over {per_agent:g} slots per agent: {desired}"
        ]
        waited_too_long = stats.oldest_wait_seconds > policy.max_wait_seconds
        if stats.queued and waited_too_long and desired <= len(serving):
            desired = len(serving) + 1
            reasons.append(
                f"oldest queued task waited {stats.oldest_wait_seconds:.0f}s "
                f"(> {policy.max_wait_seconds}s): one more"
            )
        floor = int(policy.floors.get(specialty, 0))
        if desired < floor:
            desired = floor
            reasons.append(f"floor {floor}")
        if stats.queued and desired < 1:
            desired = 1
            reasons.append("queued work needs an agent")
        decisions[specialty] = SpecialtyDecision(
            specialty=specialty,
            queued=stats.queued,
            oldest_wait_seconds=stats.oldest_wait_seconds,
            agents=len(serving),
            agent_names=sorted(a.name for a in serving),
            slots=slots,
            running=running,
            load=demand / slots if slots else (math.inf if demand else 0.0),
            desired=desired,
            reasons=reasons,
        )
    return decisions


def current(
    session: Session, config: CoordinatorConfig, now: datetime
) -> tuple[dict[str, SpecialtyDecision], list[AgentLoad]]:
    """The decision from what PostgreSQL says at ``now``, and the agents it saw."""
    agents = read_agents(session, config, now)
    return decide(read_queues(session, now), agents, config.scaling), agents


def read_queues(session: Session, now: datetime) -> dict[str, QueueStats]:
    """Queued tasks per specialty and the longest wait, from PostgreSQL (the truth)."""
    entered = (
        select(TaskTransition.task_id, func.max(TaskTransition.at).label("at"))
        .where(TaskTransition.to_state == TaskState.QUEUED.value)
        .group_by(TaskTransition.task_id)
        .subquery()
    )
    rows = session.execute(
        select(Task.specialty, func.count(), func.min(func.coalesce(entered.c.at, Task.updated_at)))
        .outerjoin(entered, entered.c.task_id == Task.id)
        .where(Task.state == TaskState.QUEUED.value)
        .group_by(Task.specialty)
    ).all()
    stats: dict[str, QueueStats] = {}
    for specialty, count, oldest in rows:
        name = specialty or "general"  # a task without an analysis waits in general
        known = stats.get(name, QueueStats())
        wait = max((now - oldest).total_seconds(), known.oldest_wait_seconds, 0.0)
        stats[name] = QueueStats(known.queued + count, wait)
    return stats


def read_agents(session: Session, config: CoordinatorConfig, now: datetime) -> list[AgentLoad]:
    """Every registered agent with its derived state and running-task count."""
    return [
        AgentLoad(
            name=agent.name,
            specialties=tuple(agent.specialties),
            max_tasks=agent.max_tasks,
            running=running,
            state=state.value,
            draining=agent.draining,
        )
        for agent, state, running in registry.states_by_agent(session, config, now).values()
    ]
