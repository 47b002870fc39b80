"""Task operations people and agents ask for, the same from the API, the admin pages and the CLI.

Each command locks the task, changes it through the state machine (coordinator_app.tasks,
coordinator_app.reviews), records who asked in the audit log and commits. Callers only
authenticate, read their input and show the result; a refusal is a CoordinatorError (an
illegal transition is a Conflict) and leaves the database as it was.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from cluster_core.states import TaskState
from coordinator_app import audit, outbox, reviews, tasks, test_results
from coordinator_app.config import CoordinatorConfig
from coordinator_app.exceptions import InvalidRequest, NotFound
from coordinator_app.models import Task


def locked(session: Session, task_id: int) -> Task:
    """The task, its row locked until the transaction ends; NotFound when there is none."""
    task = session.get(Task, task_id, with_for_update=True)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return task


def cancel(session: Session, task_id: int, *, actor: str, reason: str) -> Task:
    """Cancel a task that is not final; its agent learns it on its next heartbeat."""
    task = locked(session, task_id)
    tasks.cancel_task(session, task, actor=actor, reason=reason)
    return _done(session, task, actor, "task.cancel")


def retry(session: Session, task_id: int, *, actor: str, reason: str) -> Task:
    """Queue a failed task again now, whatever its attempt count."""
    task = locked(session, task_id)
    tasks.retry(session, task, actor=actor, reason=reason)
    return _done(session, task, actor, "task.retry")


def release(session: Session, task: Task, *, actor: str, reason: str) -> Task:
    """An agent hands back a task it holds (warm stop, drain): queued for another agent."""
    tasks.transition(session, task, TaskState.QUEUED, actor=actor, reason=reason)
    return _done(session, task, actor, "task.release", reason=reason)


def complete(session: Session, task: Task, *, actor: str, executor: str | None) -> Task:
    """A run opened or updated its pull request: the task waits in review for GitHub's
    decision, and the issue gets the run's summary."""
    if not task.pr_url:
        raise InvalidRequest("a completed task needs pr_url")
    task.executor = executor or task.executor
    reviews.opened(session, task, actor=actor)
    outbox.comment(session, task.repository, task.issue_number, summary_comment(task))
    return _done(session, task, actor, "task.completed")


def fail(
    session: Session,
    config: CoordinatorConfig,
    task: Task,
    *,
    actor: str,
    error: str,
    permanent: bool = False,
) -> Task:
    """A run failed: retried later while attempts remain, unless the failure is permanent."""
    tasks.fail_task(session, config, task, actor=actor, error=error, permanent=permanent)
    return _done(session, task, actor, "task.failed")


def summary_comment(task: Task) -> str:
    """What the issue is told when its pull request is ready: the PR, the run's summary, the
    tests, and what the run used."""
    test_line = test_results.describe(task.result.get("tests"))
    return (
        f"Pull request: {task.pr_url}\n\n{task.result.get('summary') or ''}\n\n{test_line}\n"
        f"Tokens: {task.input_tokens} in / {task.output_tokens} out; "
        f"cost ${float(task.cost_usd):.4f}."
    ).replace("\n\n\n", "\n\n")


def _done(session: Session, task: Task, actor: str, action: str, **details) -> Task:
    audit.record(session, actor, action, str(task.id), **details)
    session.commit()
    return task
