"""Which queue a queued task is offered on, following the agents that are live now.

A task goes to its specialty's queue while a live agent has that specialty. Without one, a
standard task goes to ``general`` when a live agent may take it from there (a general agent);
restricted work never leaves its own queue. When the agents change (a specialist comes up,
the last one goes down), offers already made move to the queue they belong on now. A task no
live agent may take waits, and ``unclaimable`` says why, for the admin pages and the API.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cluster_core.queues import queue_name
from cluster_core.states import AgentState, TaskState
from coordinator_app.agents import states_by_agent
from coordinator_app.config import CoordinatorConfig
from coordinator_app.models import Agent, Task
from coordinator_app.tasks import authorize_task_access

NOT_LIVE = (AgentState.OFFLINE, AgentState.MAINTENANCE)


def live_agents(session: Session, config: CoordinatorConfig, now: datetime) -> list[Agent]:
    """Agents that heartbeat and take work (not offline, not draining)."""
    return [
        agent
        for agent, state, _ in states_by_agent(session, config, now).values()
        if state not in NOT_LIVE
    ]


def lineup(live: list[Agent]) -> frozenset:
    """What routing depends on of the live agents: equal lineups route every task alike."""
    return frozenset(
        (a.name, tuple(a.specialties), tuple(a.capabilities), a.clearance, a.draining) for a in live
    )


def route(task: Task, live: list[Agent]) -> str:
    """The queue ``task`` belongs on while ``live`` are the live agents."""
    specialty = task.specialty or "general"
    own = queue_name(specialty, task.security_level)
    if task.security_level != "standard" or any(specialty in a.specialties for a in live):
        return own
    if any(authorize_task_access(a, task) is None for a in live):
        return queue_name("general")
    return own  # nobody may take it now: it waits where its specialists will look


def unclaimable(task: Task, live: list[Agent]) -> str | None:
    """Why no live agent may take ``task``, or None when one may."""
    if not live:
        return "no agent is live"
    refusals = [authorize_task_access(agent, task) for agent in live]
    if None in refusals:
        return None
    return f"no live agent may take it ({refusals[0]})"


def note_route(task: Task, queue: str) -> None:
    """Say in the task's analysis why it went to another queue than its specialty's."""
    specialty = task.specialty or "general"
    if queue == queue_name(specialty, task.security_level):
        return
    note = f"no live {specialty} agent: offered to general"
    if note not in task.analysis.get("reasons", []):
        task.analysis = {**task.analysis, "reasons": [*task.analysis.get("reasons", []), note]}


def misrouted(session: Session, live: list[Agent]) -> list[Task]:
    """Queued tasks offered on a queue they no longer belong on (locked, SKIP LOCKED)."""
    offered = session.scalars(
        select(Task)
        .where(Task.state == TaskState.QUEUED.value, Task.queue_entry.is_not(None))
        .order_by(Task.id)
        .with_for_update(skip_locked=True)
    ).all()
    return [t for t in offered if t.offered_queue and t.offered_queue != route(t, live)]


def waiting_without_taker(
    session: Session, config: CoordinatorConfig, now: datetime
) -> list[tuple[Task, str]]:
    """Queued tasks that no live agent may take, each with the reason."""
    live = live_agents(session, config, now)
    queued = session.scalars(
        select(Task).where(Task.state == TaskState.QUEUED.value).order_by(Task.id)
    ).all()
    return [(t, why) for t in queued if (why := unclaimable(t, live))]
