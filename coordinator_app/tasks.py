"""Task lifecycle: creation, the state machine, claims and leases, failure and retry.

Every state change goes through ``transition``: it refuses what the state machine does not allow,
records who did it and why, and keeps the GitHub issue's state label in step.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cluster_core.specialties import SECURITY_LEVELS
from cluster_core.states import LIVE_STATES, RUNNING_STATES, TaskKind, TaskState, can_transition
from coordinator_app import outbox
from coordinator_app.branches import branch_name, is_task_branch
from coordinator_app.config import CoordinatorConfig
from coordinator_app.exceptions import Conflict, Forbidden, IllegalTransition
from coordinator_app.models import Agent, PullRequest, Task, TaskTransition, utcnow

logger = logging.getLogger(__name__)

STATE_LABELS: dict[TaskState, str | None] = {
    TaskState.PENDING: "claude:queued",
    TaskState.ANALYZING: "claude:queued",
    TaskState.QUEUED: "claude:queued",
    TaskState.ASSIGNED: "claude:in-progress",
    TaskState.IN_PROGRESS: "claude:in-progress",
    TaskState.TESTING: "claude:in-progress",
    TaskState.REVIEW: "claude:review",
    TaskState.COMPLETED: "claude:done",
    TaskState.FAILED: "claude:failed",
    TaskState.CANCELLED: None,
}


def transition(
    session: Session,
    task: Task,
    to: TaskState,
    *,
    actor: str,
    reason: str = "",
    now: datetime | None = None,
    label: str | None = None,
) -> TaskTransition:
    """Move ``task`` to ``to`` if the state machine allows it, and record the change.

    ``label``: the issue's state label when it says more than the state's own (a rejected pull
    request's task is failed, and its issue is labelled rejected)."""
    current = TaskState(task.state)
    if not can_transition(current, to):
        raise IllegalTransition(task.id, current.value, to.value)
    now = now or utcnow()
    task.state = to.value
    task.updated_at = now
    if to not in RUNNING_STATES:
        # The attempt is over: whatever its run still reports is refused from now on.
        task.lease_expires_at = None
        task.attempt_id = None
    if to is TaskState.QUEUED:
        # Free for any agent; the processor offers it on a queue after the commit.
        task.agent_id = None
        task.queue_entry = None
        task.offered_queue = None
    record = TaskTransition(
        task=task, from_state=current.value, to_state=to.value, actor=actor, reason=reason, at=now
    )
    session.add(record)
    if label or STATE_LABELS[current] != STATE_LABELS[to]:
        outbox.set_state_label(
            session, task.repository, task.issue_number, label or STATE_LABELS[to]
        )
    logger.info("Task %s: %s -> %s by %s (%s)", task.id, current.value, to.value, actor, reason)
    return record


def live_task(session: Session, repository: str, issue_number: int) -> Task | None:
    """The issue's task that still holds it: not completed, cancelled or failed for good (a
    failed task awaiting its retry holds it: a second task would race it)."""
    return session.scalar(
        select(Task).where(
            Task.repository == repository,
            Task.issue_number == issue_number,
            or_(
                Task.state.in_([s.value for s in LIVE_STATES]),
                and_(Task.state == TaskState.FAILED.value, Task.retry_at.is_not(None)),
            ),
        )
    )


def create_task(
    session: Session,
    config: CoordinatorConfig,
    *,
    repository: str,
    issue_number: int,
    title: str,
    body: str,
    requested_by: str,
    requested_by_id: int | None = None,
    kind: TaskKind = TaskKind.ISSUE,
    parent: Task | None = None,
    reason: str = "",
) -> Task | None:
    """Create a pending task for an issue, or return None when the issue already has a live one.

    The partial unique index decides under concurrency: of several transactions creating a task
    for the same issue at once, exactly one commits it.
    """
    if live_task(session, repository, issue_number) is not None:
        return None
    now = utcnow()  # set now, not at the flush: the next transitions are stamped before it
    task = Task(
        created_at=now,
        kind=kind.value,
        repository=repository,
        issue_number=issue_number,
        title=title,
        body=body or "",
        requested_by=requested_by,
        requested_by_id=requested_by_id if isinstance(requested_by_id, int) else None,
        state=TaskState.PENDING.value,
        budget=_budget(config),
        parent_id=parent.id if parent else None,
        branch=parent.branch if parent else None,
        pr_number=parent.pr_number if parent else None,
        pr_url=parent.pr_url if parent else None,
    )
    try:
        with session.begin_nested():
            session.add(task)
            session.flush()
    except IntegrityError:
        logger.info("Task for %s#%s already exists (concurrent event)", repository, issue_number)
        return None
    session.add(
        TaskTransition(
            task=task,
            from_state=None,
            to_state=TaskState.PENDING.value,
            actor=f"github:{requested_by}",
            reason=reason,
            at=now,
        )
    )
    outbox.set_state_label(session, repository, issue_number, STATE_LABELS[TaskState.PENDING])
    return task


def _budget(config: CoordinatorConfig) -> dict:
    b = config.budget
    return {
        "max_turns": b.max_turns,
        "max_tokens": b.max_tokens,
        "max_dollars": b.max_dollars,
        "max_seconds": b.max_seconds,
    }


def running_counts(session: Session, repository: str) -> tuple[int, int]:
    """Tasks held by agents now: cluster-wide and in ``repository``."""
    running = [s.value for s in RUNNING_STATES]
    total = session.scalar(select(func.count()).where(Task.state.in_(running))) or 0
    in_repo = session.scalar(
        select(func.count()).where(Task.state.in_(running), Task.repository == repository)
    )
    return total, in_repo or 0


def has_capacity(session: Session, config: CoordinatorConfig, repository: str) -> bool:
    """Whether the cluster-wide and per-repository concurrency caps allow one more task."""
    total, in_repo = running_counts(session, repository)
    return total < config.max_concurrent_tasks and in_repo < config.max_concurrent_per_repo


def authorize_task_access(agent: Agent, task: Task) -> str | None:
    """Why ``agent`` may not run ``task``, or None when it may (capability and clearance)."""
    if agent.draining:
        return "agent is draining"
    level = task.security_level or "standard"
    if SECURITY_LEVELS.index(agent.clearance) < SECURITY_LEVELS.index(level):
        return f"task needs clearance {level}, agent has {agent.clearance}"
    specialty = task.specialty or "general"
    capable = specialty in agent.specialties or specialty in agent.capabilities
    if level != "standard" and not capable:
        return f"restricted task needs the {specialty} capability"
    if not capable and specialty != "general" and "general" not in agent.specialties:
        # Specialists may fall back to general work, not to other specialists' work.
        return f"agent lacks the {specialty} specialty"
    return None


def claim_task(
    session: Session, config: CoordinatorConfig, task_id: int, agent: Agent, now: datetime
) -> Task:
    """Confirm an agent's claim: the task must still be queued and the agent allowed to run it."""
    task = session.get(Task, task_id, with_for_update=True)
    if task is None:
        raise Conflict(f"task {task_id} does not exist")
    if task.state != TaskState.QUEUED.value:
        raise Conflict(f"task {task_id} is {task.state}, not queued")
    refusal = authorize_task_access(agent, task)
    if refusal:
        task.queue_entry = None  # offer it again for an agent that may take it
        raise Forbidden(f"task {task_id}: {refusal}")
    held = session.scalar(
        select(func.count()).where(
            Task.agent_id == agent.id, Task.state.in_([s.value for s in RUNNING_STATES])
        )
    )
    if held >= agent.max_tasks:
        task.queue_entry = None
        raise Conflict(f"agent {agent.name} already runs {held} of {agent.max_tasks} tasks")
    if not has_capacity(session, config, task.repository):
        task.queue_entry = None
        raise Conflict("concurrency cap reached; the task stays queued")
    attempt = uuid.uuid4().hex
    transition(
        session,
        task,
        TaskState.ASSIGNED,
        actor=f"agent:{agent.name}",
        reason=f"claimed from the {task.specialty} queue (attempt {attempt[:8]})",
        now=now,
    )
    task.agent_id = agent.id
    task.attempts += 1
    task.attempt_id = attempt
    task.lease_expires_at = now + timedelta(seconds=config.lease_seconds)
    # The coordinator names the branch (a follow-up keeps its parent's, if it is one of the
    # cluster's for this issue): agents get tokens for this one ref only.
    if not (task.branch and is_task_branch(task.branch, task.issue_number)):
        rejected = session.scalars(
            select(PullRequest.branch).where(
                PullRequest.repository == task.repository,
                PullRequest.issue_number == task.issue_number,
                PullRequest.state == "closed",
            )
        )
        task.branch = branch_name(task.issue_number, task.title, avoid=frozenset(rejected))
    return task


def renew_leases(
    session: Session,
    config: CoordinatorConfig,
    agent: Agent,
    attempts: dict[int, str],
    now: datetime,
) -> list[int]:
    """Extend the leases of the running tasks the agent reports, each by its current attempt
    (``attempts``: task id -> attempt id); returns the ids renewed."""
    if not attempts:
        return []
    result = session.execute(
        update(Task)
        .where(
            tuple_(Task.id, Task.attempt_id).in_(list(attempts.items())),
            Task.agent_id == agent.id,
            Task.state.in_([s.value for s in RUNNING_STATES]),
        )
        .values(lease_expires_at=now + timedelta(seconds=config.lease_seconds))
        .returning(Task.id)
    )
    return sorted(result.scalars())


def reap_expired_leases(session: Session, now: datetime) -> list[Task]:
    """Hand tasks whose lease ran out back to their queue (their agent died or was cut off)."""
    expired = session.scalars(
        select(Task)
        .where(
            Task.state.in_([s.value for s in RUNNING_STATES]),
            Task.lease_expires_at < now,
        )
        .with_for_update(skip_locked=True)
    ).all()
    for task in expired:
        holder = task.agent.name if task.agent else "unknown agent"
        transition(
            session,
            task,
            TaskState.QUEUED,
            actor="system",
            reason=f"lease expired (held by {holder})",
            now=now,
        )
    return list(expired)


def fail_task(
    session: Session,
    config: CoordinatorConfig,
    task: Task,
    *,
    actor: str,
    error: str,
    permanent: bool = False,
    now: datetime | None = None,
) -> None:
    """Mark a task failed and schedule a retry while attempts remain (backoff doubles).

    ``permanent``: the failure would repeat (GitHub refused for good, e.g. the App lost
    access to the repository), so there is no retry; a new trigger starts over.
    """
    now = now or utcnow()
    transition(session, task, TaskState.FAILED, actor=actor, reason=error, now=now)
    task.error = error
    if permanent:
        task.retry_at = None
        outbox.comment(
            session,
            task.repository,
            task.issue_number,
            f"The cluster stopped work on this issue: {error}. It will not retry by itself.",
        )
    elif task.attempts < config.max_attempts:
        delay = config.retry_backoff_seconds * 2 ** max(task.attempts - 1, 0)
        task.retry_at = now + timedelta(seconds=delay)
    else:
        task.retry_at = None
        outbox.comment(
            session,
            task.repository,
            task.issue_number,
            f"The cluster gave up on this issue after {task.attempts} attempts: {error}",
        )


def retry_due(session: Session, now: datetime) -> list[Task]:
    """Queue failed tasks whose retry time has come, each in a savepoint of its own: one that
    cannot be retried is logged and left, and never holds the others back."""
    due = session.scalars(
        select(Task)
        .where(Task.state == TaskState.FAILED.value, Task.retry_at <= now)
        .with_for_update(skip_locked=True)
    ).all()
    retried = []
    for task in due:
        try:
            with session.begin_nested():
                retry(session, task, actor="system", reason=f"retry {task.attempts + 1}", now=now)
        except (IntegrityError, Conflict) as exc:
            logger.error("Task %s: retry refused: %s", task.id, exc)
            continue
        retried.append(task)
    return retried


def retry(
    session: Session, task: Task, *, actor: str, reason: str, now: datetime | None = None
) -> None:
    """Queue a failed task again (its retry time, an admin, a new trigger); Conflict when
    another task holds the issue now."""
    holder = live_task(session, task.repository, task.issue_number)
    if holder is not None and holder.id != task.id:
        raise Conflict(
            f"task {holder.id} is already working on {task.repository}#{task.issue_number}"
        )
    task.retry_at = None
    transition(session, task, TaskState.QUEUED, actor=actor, reason=reason, now=now)


def cancel_task(session: Session, task: Task, *, actor: str, reason: str) -> None:
    """Cancel a task that is not final; its agent learns it on the next heartbeat."""
    transition(session, task, TaskState.CANCELLED, actor=actor, reason=reason)
    task.retry_at = None
