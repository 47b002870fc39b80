"""Task and agent states, and the one table of legal task transitions."""

from __future__ import annotations

from enum import Enum


class TaskState(str, Enum):
    """Where a task stands; stored as its string value."""

    PENDING = "pending"
    ANALYZING = "analyzing"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    TESTING = "testing"
    REVIEW = "review"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_running(self) -> bool:
        """Held by an agent under a lease."""
        return self in RUNNING_STATES


FINAL_STATES = frozenset({TaskState.COMPLETED, TaskState.CANCELLED})
RUNNING_STATES = frozenset({TaskState.ASSIGNED, TaskState.IN_PROGRESS, TaskState.TESTING})
# A task in one of these holds its issue: no second task is created for the same issue. A task
# in review does not: its run is over and its pull request awaits GitHub's decision, and a
# review on that pull request starts a follow-up task beside it.
LIVE_STATES = frozenset(TaskState) - FINAL_STATES - {TaskState.FAILED, TaskState.REVIEW}

_S = TaskState
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _S.PENDING: frozenset({_S.ANALYZING}),
    # analyzing -> pending: held until the issues it depends on are completed.
    _S.ANALYZING: frozenset({_S.QUEUED, _S.PENDING, _S.FAILED}),
    _S.QUEUED: frozenset({_S.ASSIGNED}),
    # running -> queued: lease expired or the agent handed the task back (drain, warm stop).
    _S.ASSIGNED: frozenset({_S.IN_PROGRESS, _S.QUEUED, _S.FAILED}),
    _S.IN_PROGRESS: frozenset({_S.TESTING, _S.REVIEW, _S.QUEUED, _S.FAILED}),
    # testing -> in_progress: the tests failed and the agent goes back to fix them.
    _S.TESTING: frozenset({_S.IN_PROGRESS, _S.REVIEW, _S.QUEUED, _S.FAILED}),
    # review: the pull request is open; GitHub decides. Merged -> completed, closed -> failed.
    _S.REVIEW: frozenset({_S.COMPLETED, _S.FAILED}),
    # failed -> queued: a bounded retry with backoff; failed -> review: the closed pull
    # request was reopened.
    _S.FAILED: frozenset({_S.QUEUED, _S.REVIEW}),
    _S.COMPLETED: frozenset(),
    _S.CANCELLED: frozenset(),
}
# Any state that is not final may also be cancelled.
for _state in TaskState:
    if not _state.is_final:
        TRANSITIONS[_state] = TRANSITIONS[_state] | {_S.CANCELLED}


def can_transition(current: TaskState, requested: TaskState) -> bool:
    """Whether the state machine allows ``current`` → ``requested``."""
    return requested in TRANSITIONS[current]


class AgentState(str, Enum):
    """An agent's state as the coordinator derives it from heartbeats and leases."""

    OFFLINE = "offline"
    IDLE = "idle"
    BUSY = "busy"
    OVERLOADED = "overloaded"
    MAINTENANCE = "maintenance"  # draining: no new claims, current work finishes
    ERROR = "error"


class TaskKind(str, Enum):
    """Why a task exists."""

    ISSUE = "issue"  # implement an issue
    FOLLOW_UP = "follow_up"  # address review comments on the cluster's own pull request
