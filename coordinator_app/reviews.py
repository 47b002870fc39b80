"""Pull requests in review: from the agent's last push to GitHub's decision.

A run that opens or updates its pull request leaves its task in ``review``; the agent is free.
GitHub decides, by webhook or as the processor reads it back when a webhook was missed: merged
-> ``completed``, closed without merge -> ``failed`` (no automatic retry; a new trigger starts
over on a fresh branch), reopened -> ``review`` again. Pushes by people to the branch are
recorded on the task, and a pull request left quiet too long gets one reminder.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cluster_core.states import LIVE_STATES, TaskState
from coordinator_app import outbox, tasks
from coordinator_app.models import ProgressEvent, PullRequest, Task, utcnow

REJECTED = "pull request closed without merge"
REJECTED_LABEL = "claude:rejected"


def find(session: Session, repository: str, number: int, lock: bool = False) -> PullRequest | None:
    query = select(PullRequest).where(
        PullRequest.repository == repository, PullRequest.number == number
    )
    return session.scalar(query.with_for_update() if lock else query)


def open_for_issue(session: Session, repository: str, issue_number: int) -> PullRequest | None:
    """The issue's pull request that still awaits GitHub's decision, if any."""
    return session.scalar(
        select(PullRequest)
        .where(
            PullRequest.repository == repository,
            PullRequest.issue_number == issue_number,
            PullRequest.state == "open",
        )
        .order_by(PullRequest.id.desc())
        .limit(1)
    )


def opened(session: Session, task: Task, *, actor: str, now: datetime | None = None) -> None:
    """The task's run ended with its pull request open (new or updated): the task waits in
    review, and the pull request is recorded (the first run of it names who opened it)."""
    now = now or utcnow()
    agent = task.agent.name if task.agent else None
    if task.state != TaskState.REVIEW.value:
        tasks.transition(
            session,
            task,
            TaskState.REVIEW,
            actor=actor,
            reason=f"pull request #{task.pr_number} awaits review",
            now=now,
        )
    pull = find(session, task.repository, task.pr_number, lock=True)
    if pull is None:
        pull = PullRequest(
            repository=task.repository,
            number=task.pr_number,
            url=task.pr_url,
            branch=task.branch,
            issue_number=task.issue_number,
            task_id=task.id,
            specialty=task.specialty,
            agent=agent,
            executor=task.executor,
            state="open",
            opened_at=now,
        )
        session.add(pull)
    pull.head_sha = task.result.get("pushed_commit") or pull.head_sha
    _touch(pull, now)


def decide(
    session: Session,
    repository: str,
    number: int,
    *,
    merged: bool,
    by: str | None,
    at: datetime | None = None,
) -> str:
    """GitHub merged or closed the pull request: its tasks in review end, its follow-ups still
    to run are cancelled. Idempotent (a webhook and a read-back may both report it)."""
    pull = find(session, repository, number, lock=True)
    if pull is None:
        return f"ignored: PR #{number} was not opened by the cluster"
    decision = "merged" if merged else "closed"
    if pull.state == decision:
        return f"PR #{number} already {decision}"
    pull.state, pull.decided_by = decision, by
    # GitHub's time counts to the second: never before the opening the coordinator recorded.
    pull.decided_at = max(at or utcnow(), pull.opened_at)
    actor, who = (f"github:{by}" if by else "github"), _who(by)
    # One locked read of the pull request's tasks: those in review end, live ones are cancelled.
    every = _tasks_of(session, pull)
    waiting = [task for task in every if task.state == TaskState.REVIEW.value]
    live = {state.value for state in LIVE_STATES}
    for task in waiting:
        if merged:
            tasks.transition(
                session,
                task,
                TaskState.COMPLETED,
                actor=actor,
                reason=f"PR #{number} merged by {who}",
            )
        else:
            tasks.transition(
                session,
                task,
                TaskState.FAILED,
                actor=actor,
                reason=REJECTED,
                label=REJECTED_LABEL,
            )
            task.error, task.retry_at = REJECTED, None
    for task in every:
        retrying = task.state == TaskState.FAILED.value and task.retry_at is not None
        if task.state in live or retrying:
            # A follow-up still to run or retry would push to a decided pull request.
            tasks.cancel_task(session, task, actor=actor, reason=f"PR #{number} {decision}")
    if waiting and not merged:  # (a pull request of tasks done before 0008 says nothing)
        outbox.comment(
            session,
            repository,
            pull.issue_number,
            f"Pull request #{number} was closed without merge by {who}. The cluster does not "
            "retry by itself: a new trigger starts over from the default branch, and reopening "
            "the pull request puts it back in review.",
        )
    return f"PR #{number} {decision} by {who}"


def reopened(session: Session, repository: str, number: int, *, by: str) -> str:
    """A closed pull request was reopened: the tasks its closing failed are in review again."""
    pull = find(session, repository, number, lock=True)
    if pull is None:
        return f"ignored: PR #{number} was not opened by the cluster"
    if pull.state != "closed":
        return f"PR #{number} is {pull.state}"
    pull.state, pull.decided_at, pull.decided_by = "open", None, None
    _touch(pull, utcnow())
    for task in _tasks_of(session, pull, [TaskState.FAILED]):
        if task.error == REJECTED:
            tasks.transition(
                session,
                task,
                TaskState.REVIEW,
                actor=f"github:{by}",
                reason=f"PR #{number} reopened by @{by}",
            )
            task.error = None
    return f"PR #{number} reopened by {by}"


def pushed(
    session: Session,
    repository: str,
    number: int,
    *,
    by: str | None,
    head: str,
    before: str | None = None,
    own: bool = False,
) -> str:
    """The branch moved. A push by someone else (``by`` None: seen when reading GitHub back) is
    recorded on the pull request's latest task; a follow-up continues from that head (agents
    never force-push). ``own``: the cluster's push, already recorded with its run."""
    pull = find(session, repository, number, lock=True)
    if pull is None:
        return f"ignored: PR #{number} was not opened by the cluster"
    pull.head_sha = head
    if own:
        return f"PR #{number}: the cluster's own push"
    _touch(pull, utcnow())
    for task in _tasks_of(session, pull)[-1:]:
        session.add(
            ProgressEvent(
                task_id=task.id,
                kind="pushed_by_person",
                data={"by": by, "before": before, "head": head, "pull_request": number},
            )
        )
    return f"recorded a push by {_who(by)} to PR #{number} ({head[:12]})"


def catch_up(session: Session, repository: str, number: int, found: dict) -> str:
    """Apply what GitHub says of a pull request now (``GitHubGateway.pull_request``), for the
    webhooks that never came: a merge, a close, a push by someone while no task works on it."""
    if found["merged"]:
        return decide(
            session, repository, number, merged=True, by=found["merged_by"], at=found["merged_at"]
        )
    if found["state"] == "closed":
        return decide(session, repository, number, merged=False, by=None, at=found["closed_at"])
    pull = find(session, repository, number, lock=True)
    if pull is None or found["head"] == pull.head_sha:
        return f"PR #{number}: no change"
    if _tasks_of(session, pull, LIVE_STATES):
        return f"PR #{number}: a follow-up is pushing"  # its own push, reported with its result
    return pushed(session, repository, number, by=None, head=found["head"])


def activity(session: Session, repository: str, number: int) -> bool:
    """A person did something on the pull request (a review, a comment, an edit); False when
    it is not an open pull request of the cluster's."""
    pull = find(session, repository, number, lock=True)
    if pull is None or pull.state != "open":
        return False
    _touch(pull, utcnow())
    return True


def due_for_check(session: Session, every_seconds: int, now: datetime, limit: int = 20):
    """Open pull requests not read back from GitHub for ``every_seconds``, oldest first."""
    return session.scalars(
        select(PullRequest)
        .where(
            PullRequest.state == "open",
            (PullRequest.checked_at.is_(None))
            | (PullRequest.checked_at < now - timedelta(seconds=every_seconds)),
        )
        .order_by(PullRequest.checked_at.nulls_first(), PullRequest.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def stale_reviews(session: Session, stale_seconds: int, now: datetime) -> list[PullRequest]:
    """Open pull requests quiet for ``stale_seconds`` (0: never stale), quietest first."""
    if stale_seconds <= 0:
        return []
    return session.scalars(
        select(PullRequest)
        .where(
            PullRequest.state == "open",
            PullRequest.last_activity_at < now - timedelta(seconds=stale_seconds),
        )
        .order_by(PullRequest.last_activity_at)
    ).all()


def remind_stale(session: Session, stale_seconds: int, now: datetime) -> int:
    """One reminder comment per quiet spell on each stale pull request that GitHub confirmed
    open (read back at least once: a decision whose webhook was lost gets no reminder);
    returns how many."""
    reminded = 0
    for pull in stale_reviews(session, stale_seconds, now):
        if pull.reminded_at is not None or pull.checked_at is None:
            continue
        quiet = _duration(now - pull.last_activity_at)
        outbox.comment(
            session,
            pull.repository,
            pull.number,
            f"This pull request has waited {quiet} without activity. It is the cluster's work "
            f"for #{pull.issue_number}: merge it, close it, or review it (review comments "
            "start a follow-up).",
        )
        pull.reminded_at = now
        reminded += 1
    return reminded


def _touch(pull: PullRequest, now: datetime) -> None:
    pull.last_activity_at = now
    pull.reminded_at = None  # quiet again later: another reminder


def _tasks_of(session: Session, pull: PullRequest, states=None) -> list[Task]:
    query = select(Task).where(Task.repository == pull.repository, Task.pr_number == pull.number)
    if states is not None:
        query = query.where(Task.state.in_([s.value for s in states]))
    return list(session.scalars(query.order_by(Task.id).with_for_update()))


def _who(by: str | None) -> str:
    """A GitHub login as comments name it; a read-back does not say who acted."""
    return f"@{by}" if by else "someone (seen on GitHub)"


def _duration(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.0f} days" if hours >= 48 else f"{max(hours, 0):.0f} hours"
