"""PostgreSQL schema: the source of truth for tasks, agents, deliveries and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cluster_core.states import LIVE_STATES, TaskKind, TaskState

# The tasks that hold their issue (tasks.live_task says the same in SQLAlchemy's terms).
LIVE_TASK_PREDICATE = (
    "state IN ("
    + ", ".join(f"'{s.value}'" for s in sorted(LIVE_STATES))
    + f") OR (state = '{TaskState.FAILED.value}' AND retry_at IS NOT NULL)"
)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (every stored timestamp is)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with UTC timestamps and JSONB for dicts."""

    type_annotation_map: ClassVar = {datetime: DateTime(timezone=True), dict[str, Any]: JSONB}


class Task(Base):
    """One unit of work: an issue to implement or review comments to address."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default=TaskKind.ISSUE.value)
    repository: Mapped[str] = mapped_column(String(200))  # "owner/name"
    issue_number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(100))
    # The requester's GitHub user id (from the webhook's sender): their commit trailer's address.
    requested_by_id: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(20), default=TaskState.PENDING.value)
    specialty: Mapped[str | None] = mapped_column(String(20))
    complexity: Mapped[str | None] = mapped_column(String(10))
    security_level: Mapped[str] = mapped_column(String(20), default="standard")
    # Why the analysis chose this specialty/complexity: shown in the API and admin pages.
    analysis: Mapped[dict[str, Any]] = mapped_column(default=dict)
    depends_on: Mapped[list[int]] = mapped_column(ARRAY(Integer), default=list)  # issue numbers
    budget: Mapped[dict[str, Any]] = mapped_column(default=dict)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[datetime | None]
    # The Redis stream entry that offers this task; NULL while queued means "enqueue it again"
    # (Redis was down at the time, or lost its data).
    queue_entry: Mapped[str | None] = mapped_column(String(40))
    offered_queue: Mapped[str | None] = mapped_column(String(40))  # where queue_entry is
    # The current claim's id: every report of the agent names it, and a report of an attempt
    # that lost its lease (a reclaimed, restarted or cut-off run) is refused.
    attempt_id: Mapped[str | None] = mapped_column(String(32))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    branch: Mapped[str | None] = mapped_column(String(200))
    pr_number: Mapped[int | None] = mapped_column(Integer)
    pr_url: Mapped[str | None] = mapped_column(Text)
    # What ran the model loop of the last run, as the agent reported it (e.g. "messages-api").
    executor: Mapped[str | None] = mapped_column(String(40))
    # Totals over the task's progress events.
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Numeric(12, 6), default=0)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    agent: Mapped[Agent | None] = relationship(back_populates="tasks")
    transitions: Mapped[list[TaskTransition]] = relationship(
        back_populates="task", order_by="TaskTransition.id", cascade="all, delete-orphan"
    )
    # The pull request the task opened or worked on (follow-ups share their parent's).
    pull_request: Mapped[PullRequest | None] = relationship(
        primaryjoin="and_(foreign(Task.repository) == PullRequest.repository, "
        "foreign(Task.pr_number) == PullRequest.number)",
        viewonly=True,
    )

    __table_args__ = (
        # One live task per issue, enforced by the database: concurrent duplicate webhooks race
        # to insert and exactly one wins. A failed task awaiting its retry is live too.
        Index(
            "uq_tasks_one_live_per_issue",
            "repository",
            "issue_number",
            unique=True,
            postgresql_where=text(LIVE_TASK_PREDICATE),
        ),
        Index("ix_tasks_state", "state"),
        Index("ix_tasks_agent_id", "agent_id"),
    )

    @property
    def task_state(self) -> TaskState:
        return TaskState(self.state)


class TaskTransition(Base):
    """One recorded state change: when, from what, to what, by whom and why."""

    __tablename__ = "task_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(120))  # "system", "agent:NAME", "admin:NAME", ...
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)

    task: Mapped[Task] = relationship(back_populates="transitions")


class PullRequest(Base):
    """A pull request the cluster opened, from its opening to GitHub's decision.

    The unit of the acceptance figures: who opened it (task, agent, specialty, executor), when,
    and whether and when it was merged. The tasks that worked on it share its number.
    """

    __tablename__ = "pull_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    repository: Mapped[str] = mapped_column(String(200))
    number: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    branch: Mapped[str | None] = mapped_column(String(200))
    issue_number: Mapped[int] = mapped_column(Integer)
    # The task whose run opened it, and what that run was: kept as names, so the figures
    # outlive a removed agent.
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    specialty: Mapped[str | None] = mapped_column(String(20))
    agent: Mapped[str | None] = mapped_column(String(100))
    executor: Mapped[str | None] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(10), default="open")  # open, merged or closed
    head_sha: Mapped[str | None] = mapped_column(String(64))  # as last seen
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]  # merged or closed
    decided_by: Mapped[str | None] = mapped_column(String(100))
    # The last sign of life from people or agents (a push, a review, a comment, a new run):
    # a pull request quiet for stale_review_seconds gets one reminder.
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_at: Mapped[datetime | None]  # last read from GitHub (missed webhooks)
    reminded_at: Mapped[datetime | None]

    opener: Mapped[Task | None] = relationship()

    __table_args__ = (
        Index("uq_pull_requests_repository_number", "repository", "number", unique=True),
        Index("ix_pull_requests_state", "state"),
    )


class ProgressEvent(Base):
    """What an agent reports while it works: turns, tool calls, test results, tokens, cost."""

    __tablename__ = "progress_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Base):
    """A registered claude-agent service."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # SHA-256 of the agent's key: keys are 256-bit random, so a slow hash buys nothing.
    key_hash: Mapped[str] = mapped_column(String(64))
    specialties: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    capabilities: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    clearance: Mapped[str] = mapped_column(String(20), default="standard")
    max_tasks: Mapped[int] = mapped_column(Integer, default=1)
    draining: Mapped[bool] = mapped_column(default=False)
    reported_state: Mapped[str | None] = mapped_column(String(20))  # what the agent last said
    # Why the agent says it takes no work (with reported_state "error"), e.g. a broken sandbox.
    reported_error: Mapped[str | None] = mapped_column(Text)
    load: Mapped[float] = mapped_column(Numeric(5, 3), default=0)
    version: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(String(200))
    # The process that sent the last heartbeat: a second process with the same name is refused.
    instance: Mapped[str | None] = mapped_column(String(64))
    last_heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tasks: Mapped[list[Task]] = relationship(back_populates="agent")


class WebhookDelivery(Base):
    """A GitHub webhook delivery, stored before it is acted on (keyed by X-GitHub-Delivery)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event: Mapped[str] = mapped_column(String(60))
    action: Mapped[str | None] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="received", index=True)
    outcome: Mapped[str] = mapped_column(Text, default="")
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """A GitHub side effect (label, comment) committed with the change that caused it.

    The background processor sends them with retries, so a GitHub outage delays the issue's
    label but never loses it or blocks a state change.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[datetime | None]
    # Set when GitHub refused the message for good (401/403/404/410/422): never sent again.
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServedRepository(Base):
    """A repository of one of the App's installations (App mode: token mode serves its
    configured list). Deliveries for any other repository are acknowledged and ignored."""

    __tablename__ = "served_repositories"

    full_name: Mapped[str] = mapped_column(String(200), primary_key=True)  # lower-cased
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminUser(Base):
    """A person who logs in to the admin pages or the API."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Flask-Login's user protocol.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


class AuditEntry(Base):
    """Who changed what, when and from where (admins and agents)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(120), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(64))


class Setting(Base):
    """A cluster setting an admin changes at run time (e.g. whether autoscaling runs)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProcessorSchedule(Base):
    """One periodic duty of the processor: when it last ran and how that went."""

    __tablename__ = "processor_schedules"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_run_at: Mapped[datetime | None]
    last_ok_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    run_by: Mapped[str | None] = mapped_column(String(200))


class ScalingRun(Base):
    """One run of the autoscale playbook through ansible-runner: why, what it did, how it ended."""

    __tablename__ = "scaling_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[str] = mapped_column(String(20))  # "schedule", "admin" or "cli"
    requested_by: Mapped[str] = mapped_column(String(120))
    # requested (an admin asked; the processor starts it), running, then successful, failed,
    # timeout, canceled, error or lost (the process died).
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    rc: Mapped[int | None] = mapped_column(Integer)
    # The plan the playbook read from GET /api/v1/scaling.
    scale_up: Mapped[list[str]] = mapped_column(ARRAY(String(200)), default=list)
    scale_down: Mapped[list[str]] = mapped_column(ARRAY(String(200)), default=list)
    reasons: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the play recap, per host
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]

    events: Mapped[list[ScalingEvent]] = relationship(
        back_populates="run", order_by="ScalingEvent.seq", cascade="all, delete-orphan"
    )

    @property
    def recap(self) -> list[tuple[str, dict[str, int]]]:
        """The play recap per host: ok, changed, failures, dark (unreachable), skipped."""
        columns = ("ok", "changed", "failures", "dark", "skipped")
        hosts = sorted({host for c in columns for host in self.stats.get(c) or {}})
        return [(h, {c: (self.stats.get(c) or {}).get(h, 0) for c in columns}) for h in hosts]


class ScalingEvent(Base):
    """One Ansible event of a scaling run (play, task result, recap), as ansible-runner saw it."""

    __tablename__ = "scaling_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("scaling_runs.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)  # ansible-runner's event counter
    event: Mapped[str] = mapped_column(String(60))
    host: Mapped[str | None] = mapped_column(String(200))
    play: Mapped[str | None] = mapped_column(Text)
    task: Mapped[str | None] = mapped_column(Text)
    changed: Mapped[bool] = mapped_column(default=False)
    failed: Mapped[bool] = mapped_column(default=False)
    stdout: Mapped[str] = mapped_column(Text, default="")  # as displayed: no_log results hidden
    at: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[ScalingRun] = relationship(back_populates="events")
