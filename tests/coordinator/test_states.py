"""The task state machine: every legal transition is recorded, every illegal one refused."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from cluster_core.states import TRANSITIONS, TaskState, can_transition
from coordinator_app import tasks
from coordinator_app.exceptions import IllegalTransition
from coordinator_app.models import Task, TaskTransition

S = TaskState
LEGAL = [
    (S.PENDING, S.ANALYZING),
    (S.ANALYZING, S.QUEUED),
    (S.ANALYZING, S.PENDING),
    (S.ANALYZING, S.FAILED),
    (S.QUEUED, S.ASSIGNED),
    (S.ASSIGNED, S.IN_PROGRESS),
    (S.ASSIGNED, S.QUEUED),
    (S.ASSIGNED, S.FAILED),
    (S.IN_PROGRESS, S.TESTING),
    (S.IN_PROGRESS, S.REVIEW),
    (S.IN_PROGRESS, S.QUEUED),
    (S.IN_PROGRESS, S.FAILED),
    (S.TESTING, S.IN_PROGRESS),
    (S.TESTING, S.REVIEW),
    (S.TESTING, S.QUEUED),
    (S.TESTING, S.FAILED),
    (S.REVIEW, S.COMPLETED),  # the pull request was merged
    (S.REVIEW, S.FAILED),  # closed without merge
    (S.FAILED, S.QUEUED),
    (S.FAILED, S.REVIEW),  # the closed pull request was reopened
    *[(state, S.CANCELLED) for state in S if state not in (S.COMPLETED, S.CANCELLED)],
]
ILLEGAL = [pair for pair in itertools.product(S, S) if pair not in LEGAL]


def test_table_is_exactly_the_agreed_machine():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == set(LEGAL)


def test_final_states_go_nowhere():
    assert not TRANSITIONS[S.COMPLETED]
    assert not TRANSITIONS[S.CANCELLED]


def _task(session, state: TaskState) -> Task:
    task = Task(
        repository="octo/app", issue_number=1, title="t", requested_by="octo", state=state.value
    )
    session.add(task)
    session.flush()
    return task


@pytest.mark.parametrize(("current", "requested"), LEGAL, ids=lambda s: s.value)
def test_legal_transition_is_applied_and_recorded(ccc, current, requested):
    with ccc.database.session() as session:
        task = _task(session, current)
        tasks.transition(session, task, requested, actor="admin:alice", reason="because")
        task_id = task.id
    with ccc.database.session() as session:
        assert session.get(Task, task_id).state == requested.value
        record = session.scalars(select(TaskTransition).where(TaskTransition.task_id == task_id))
        (row,) = record.all()
        assert (row.from_state, row.to_state, row.actor, row.reason) == (
            current.value,
            requested.value,
            "admin:alice",
            "because",
        )
        assert row.at is not None


@pytest.mark.parametrize(("current", "requested"), ILLEGAL, ids=lambda s: s.value)
def test_illegal_transition_is_refused_and_changes_nothing(ccc, current, requested):
    assert not can_transition(current, requested)
    with ccc.database.session() as session:
        task = _task(session, current)
        with pytest.raises(IllegalTransition, match=f"from {current.value} to {requested.value}"):
            tasks.transition(session, task, requested, actor="system")
        assert task.state == current.value
        assert not session.scalars(select(TaskTransition)).all()
