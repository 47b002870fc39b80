"""From GitHub events to tasks: triggers, permissions, follow-ups, cancellation and analysis.

Called by the background processor for each stored delivery, and by the polling sync with
synthesised events, so both paths share every rule (and the one-live-task-per-issue guard).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import github
from sqlalchemy import select
from sqlalchemy.orm import Session

from cluster_core.states import TaskKind, TaskState
from coordinator_app import outbox, reviews, served, tasks
from coordinator_app.analysis import analyze
from coordinator_app.config import CoordinatorConfig
from coordinator_app.github_gateway import WRITE_PERMISSIONS, GitHubGateway
from coordinator_app.models import Task

logger = logging.getLogger(__name__)

FOLLOW_UP_REVIEW_STATES = {"commented", "changes_requested"}


class Intake:
    """Applies the trigger rules to one event and returns what it did, in words."""

    def __init__(self, session: Session, config: CoordinatorConfig, gateway: GitHubGateway):
        self.session, self.config, self.gateway = session, config, gateway

    def handle(self, event: str, payload: dict) -> tuple[str, Task | None]:
        """Act on one event; returns (outcome, task created or touched)."""
        action = payload.get("action")
        if event == "ping":
            return "pong", None
        if event in served.INSTALLATION_EVENTS:
            return self._installation(event, payload), None
        repository = (payload.get("repository") or {}).get("full_name")
        if not repository:
            return "ignored: no repository in payload", None
        if not self._served(repository, payload):
            return f"ignored: {repository} is not served by this cluster", None
        if event == "issues" and action == "labeled":
            return self._issue_labeled(repository, payload)
        if event == "issues" and action == "closed":
            return self._issue_closed(repository, payload["issue"]["number"])
        if event == "issue_comment" and action == "created":
            return self._comment(repository, payload)
        if event == "pull_request":
            return self._pull_request(repository, action, payload), None
        if event == "pull_request_review" and action == "submitted":
            review = payload["review"]
            if (review.get("state") or "").lower() not in FOLLOW_UP_REVIEW_STATES:
                return f"ignored: review state {review.get('state')}", None
            if not (review.get("body") or "").strip():
                # Line comments of the review arrive as their own review_comment events.
                return "ignored: review without a summary", None
            return self._follow_up(
                repository,
                payload["pull_request"]["number"],
                payload["sender"],
                review.get("body") or "",
                None,
            )
        if event == "pull_request_review_comment" and action == "created":
            comment = payload["comment"]
            return self._follow_up(
                repository,
                payload["pull_request"]["number"],
                payload["sender"],
                comment.get("body") or "",
                comment,
            )
        return f"ignored: {event}.{action}", None

    def _served(self, repository: str, payload: dict) -> bool:
        """Whether the cluster serves ``repository``. In App mode, a delivery for a repository
        not known yet but naming one of the App's installations (an installation event missed,
        a repository renamed) is checked with GitHub at once rather than at the next sync."""
        if served.is_served(self.session, self.config, repository):
            return True
        installation = (payload.get("installation") or {}).get("id")
        if not self.config.app_mode or not isinstance(installation, int):
            return False
        try:
            found = self.gateway.auth.installation_of(repository)
        except github.UnknownObjectException:
            return False
        if found != installation:
            return False
        served.add(self.session, installation, [repository])
        logger.info("Serving %s: installation %s covers it", repository, installation)
        return True

    def _installation(self, event: str, payload: dict) -> str:
        if not self.config.app_mode:
            return f"ignored: {event} events concern GitHub Apps (token mode)"
        outcome = served.apply_installation_event(
            self.session, event, payload, set(self.config.github_app_installation_ids)
        )
        self.gateway.auth.forget()
        return outcome

    # Triggers -------------------------------------------------------------------------------

    def _issue_labeled(self, repository: str, payload: dict) -> tuple[str, Task | None]:
        label = (payload.get("label") or {}).get("name")
        issue = payload["issue"]
        if label != self.config.trigger_label:
            return f"ignored: label {label!r} is not the trigger", None
        if "pull_request" in issue:
            return "ignored: label on a pull request", None
        return self._issue_task(repository, issue, payload["sender"], f"labelled {label}")

    def _comment(self, repository: str, payload: dict) -> tuple[str, Task | None]:
        comment, issue, sender = payload["comment"], payload["issue"], payload["sender"]
        if self._is_own(sender):
            return "ignored: comment by the cluster itself", None
        if self.config.trigger_phrase.lower() not in (comment.get("body") or "").lower():
            if "pull_request" in issue:
                reviews.activity(self.session, repository, issue["number"])
            return "ignored: no trigger phrase", None
        if "pull_request" in issue:
            return self._follow_up(repository, issue["number"], sender, comment["body"], None)
        return self._issue_task(repository, issue, sender, "trigger phrase in a comment")

    def _issue_task(
        self, repository: str, issue: dict, sender: dict, why: str
    ) -> tuple[str, Task | None]:
        number, login = issue["number"], sender["login"]
        holder = tasks.live_task(self.session, repository, number)
        if holder is not None and holder.state != TaskState.FAILED.value:
            return f"duplicate: #{number} already has a live task", None
        in_review = reviews.open_for_issue(self.session, repository, number)
        if in_review is not None:
            return f"duplicate: #{number} has PR #{in_review.number} in review", None
        if not self._may_trigger(repository, login):
            outbox.comment(
                self.session,
                repository,
                number,
                f"Thanks @{login}! Only collaborators with write access can ask the "
                "cluster to work on an issue, so nothing was started. A maintainer "
                f"can add the `{self.config.trigger_label}` label.",
            )
            return f"refused: {login} may not trigger work", None
        if holder is not None:  # failed and awaiting its retry: a new trigger retries it now
            tasks.retry(
                self.session, holder, actor=f"github:{login}", reason=f"re-triggered: {why}"
            )
            outbox.comment(
                self.session,
                repository,
                number,
                f"Retrying now, as @{login} asked (attempt {holder.attempts + 1}).",
            )
            return f"retried task {holder.id}", holder
        task = tasks.create_task(
            self.session,
            self.config,
            repository=repository,
            issue_number=number,
            title=issue.get("title") or "",
            body=issue.get("body") or "",
            requested_by=login,
            requested_by_id=sender.get("id"),
            reason=why,
        )
        if task is None:
            return f"duplicate: #{number} already has a live task", None
        self.analyze_and_queue(task, self.gateway.issue_labels(repository, number))
        return f"created task {task.id}", task

    def _follow_up(
        self, repository: str, pr_number: int, sender: dict, text: str, comment: dict | None
    ) -> tuple[str, Task | None]:
        parent = self.session.scalar(
            select(Task)
            .where(Task.repository == repository, Task.pr_number == pr_number)
            .order_by(Task.id.desc())
            .limit(1)
        )
        if parent is None:
            return f"ignored: PR #{pr_number} was not opened by the cluster", None
        if self._is_own(sender):
            return "ignored: review by the cluster itself", None
        pull = reviews.find(self.session, repository, pr_number)
        if pull is not None and pull.state != "open":
            return f"ignored: PR #{pr_number} is {pull.state}", None
        reviews.activity(self.session, repository, pr_number)
        if not self._may_trigger(repository, sender["login"]):
            return f"refused: {sender['login']} may not trigger work", None
        where = f" on {comment['path']}:{comment.get('line')}" if comment else ""
        body = f"Review feedback on PR #{pr_number}{where} from @{sender['login']}:\n\n{text}"
        task = tasks.create_task(
            self.session,
            self.config,
            repository=repository,
            issue_number=parent.issue_number,
            title=f"Address review on PR #{pr_number}: {parent.title}",
            body=body,
            requested_by=sender["login"],
            requested_by_id=sender.get("id"),
            kind=TaskKind.FOLLOW_UP,
            parent=parent,
            reason=f"review feedback on PR #{pr_number}",
        )
        if task is None:
            return f"duplicate: #{parent.issue_number} already has a live task", None
        self.analyze_and_queue(task, [], specialty=parent.specialty)
        return f"created follow-up task {task.id}", task

    def _pull_request(self, repository: str, action: str | None, payload: dict) -> str:
        """GitHub's decision on one of the cluster's pull requests, and what people do to it."""
        pull, sender = payload["pull_request"], payload["sender"]
        number, by = pull["number"], sender["login"]
        if action == "closed":
            at = _timestamp(pull.get("merged_at") or pull.get("closed_at"))
            return reviews.decide(
                self.session, repository, number, merged=bool(pull.get("merged")), by=by, at=at
            )
        if action == "reopened":
            return reviews.reopened(self.session, repository, number, by=by)
        if action == "synchronize":
            if not payload.get("after"):
                return "ignored: synchronize without the new head"
            return reviews.pushed(
                self.session,
                repository,
                number,
                by=by,
                head=payload["after"],
                before=payload.get("before"),
                own=self._is_own(sender),
            )
        if self._is_own(sender):
            return f"ignored: pull_request.{action} by the cluster itself"
        if not reviews.activity(self.session, repository, number):
            return f"ignored: pull_request.{action} on PR #{number}, not one in review"
        return f"noted: pull_request.{action} by {by}"

    def _issue_closed(self, repository: str, number: int) -> tuple[str, Task | None]:
        task = tasks.live_task(self.session, repository, number)
        if task is None:
            return "no live task to cancel", None
        tasks.cancel_task(self.session, task, actor="github", reason="issue closed")
        return f"cancelled task {task.id}", task

    # Rules ----------------------------------------------------------------------------------

    def _may_trigger(self, repository: str, login: str) -> bool:
        if login in self.config.trigger_allowlist:
            return True
        return self.gateway.permission(repository, login) in WRITE_PERMISSIONS

    def _is_own(self, sender: dict) -> bool:
        return sender.get("type") == "Bot" or sender.get("login") == self.gateway.login

    def analyze_and_queue(
        self,
        task: Task,
        labels: list[str],
        specialty: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """pending → analyzing → queued, or back to pending while a dependency is open."""
        tasks.transition(
            self.session,
            task,
            TaskState.ANALYZING,
            actor="system",
            now=now,
            reason="analysis started",
        )
        result = analyze(task.title, task.body, labels, self.config.security_labels)
        task.specialty = specialty or result.specialty
        task.complexity = result.complexity
        task.security_level = result.security_level
        task.depends_on = result.depends_on
        task.analysis = {**result.as_dict(), "labels": labels}
        if specialty:
            task.analysis["reasons"].append(f"follow-up keeps the {specialty} specialty")
        self.queue_if_ready(task, now)

    def queue_if_ready(self, task: Task, now: datetime | None = None) -> bool:
        """Queue an analysed task whose dependencies are done; otherwise hold it in pending."""
        waiting = [n for n in task.depends_on if not self._dependency_done(task.repository, n)]
        if waiting:
            if task.state != TaskState.PENDING.value:
                reason = "waiting for " + ", ".join(f"#{n}" for n in waiting)
                tasks.transition(
                    self.session, task, TaskState.PENDING, actor="system", reason=reason, now=now
                )
            return False
        if task.state == TaskState.PENDING.value:
            tasks.transition(
                self.session,
                task,
                TaskState.ANALYZING,
                actor="system",
                now=now,
                reason="dependencies done",
            )
        tasks.transition(
            self.session,
            task,
            TaskState.QUEUED,
            actor="system",
            now=now,
            reason=f"{task.specialty}, complexity {task.complexity}",
        )
        return True

    def _dependency_done(self, repository: str, number: int) -> bool:
        done = self.session.scalar(
            select(Task.id)
            .where(
                Task.repository == repository,
                Task.issue_number == number,
                Task.state == TaskState.COMPLETED.value,
            )
            .limit(1)
        )
        if done is not None:
            return True
        try:
            return self.gateway.issue_is_closed(repository, number)
        except github.UnknownObjectException:
            return True  # no such issue (a typo, another repository's number): nothing to await


def _timestamp(text: str | None) -> datetime | None:
    """GitHub's ISO 8601 time (``2022-07-09T02:55:19Z``), or None when absent or unreadable."""
    try:
        at = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at and at.tzinfo is None else at
