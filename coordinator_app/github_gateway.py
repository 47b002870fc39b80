"""Everything the coordinator asks of GitHub, through PyGithub (the simulator is a URL away)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit

import github
from github import Github, GithubException
from sqlalchemy import select
from sqlalchemy.orm import Session

from cluster_core.github_errors import (
    DEFAULT_WAIT_SECONDS,
    Failure,
    classify,
    error_message,
    rate_limit_wait,
)
from coordinator_app.github_auth import AppAuth, TokenAuth
from coordinator_app.models import OutboxMessage
from coordinator_app.outbox import STATE_LABEL_PREFIX

logger = logging.getLogger(__name__)
T = TypeVar("T")

WRITE_PERMISSIONS = {"admin", "maintain", "write"}
OUTBOX_MAX_BACKOFF = 300
OUTBOX_MAX_UNEXPECTED = 10  # attempts of a message failing in an unforeseen way


def web_url(api_url: str) -> str:
    """GitHub's web address for an API URL: github.com for api.github.com, the server itself for
    GitHub Enterprise (``https://HOST/api/v3``)."""
    parts = urlsplit(api_url)
    if parts.hostname == "api.github.com":
        return "https://github.com"
    return f"{parts.scheme}://{parts.netloc}"


def is_pull_request_url(url: str, api_url: str, repository: str, number: int | None) -> bool:
    """Whether ``url`` is the web page of pull request ``number`` of ``repository``."""
    expected = f"{web_url(api_url)}/{repository}/pull/{number}"
    return number is not None and url.lower() == expected.lower()


class Throttled(Exception):
    """GitHub asked us to wait (a rate limit) and the wait is not over: nothing was sent."""

    def __init__(self, wait_seconds: float) -> None:
        super().__init__(f"GitHub rate limit: waiting {wait_seconds:.0f}s more")
        self.wait_seconds = wait_seconds


class GitHubGateway:
    """A thin, testable layer over PyGithub for the calls the coordinator makes.

    Each call acts as whoever covers the repository (the App's installation, or the token),
    and obeys GitHub's rate limits per credential: after a rate-limit answer, or once
    `x-ratelimit-remaining` reaches 0, calls with that credential raise :class:`Throttled`
    without reaching GitHub until the wait is over.
    """

    def __init__(self, auth: TokenAuth | AppAuth) -> None:
        self.auth = auth
        self._lock = threading.Lock()
        self._blocked_until: dict[int, float] = {}  # id(client) -> monotonic time

    def _call(self, repository: str, request: Callable[[github.Repository.Repository], T]) -> T:
        """``request`` on ``repository``, as its credential, within GitHub's rate limits."""
        client = self.auth.client(repository)
        with self._lock:
            wait = self._blocked_until.get(id(client), 0.0) - time.monotonic()
        if wait > 0:
            raise Throttled(wait)
        try:
            return request(client.get_repo(repository))
        except GithubException as exc:
            wait = rate_limit_wait(exc.status, exc.headers or {}, error_message(exc))
            if wait is not None:
                self._block(client, wait)
            raise
        finally:
            remaining, _ = client.requester.rate_limiting
            if remaining == 0:
                self._block(client, client.requester.rate_limiting_resettime - time.time())

    def _block(self, client: Github, seconds: float) -> None:
        logger.warning("GitHub rate limit: pausing calls with this credential for %.0fs", seconds)
        with self._lock:
            self._blocked_until[id(client)] = time.monotonic() + max(seconds, 1.0)

    @property
    def login(self) -> str:
        """The cluster's own GitHub login (its comments and reviews never trigger work)."""
        return self.auth.login

    def paused_seconds(self) -> int:
        """How long the longest rate-limit pause still lasts (0: none)."""
        with self._lock:
            waits = [until - time.monotonic() for until in self._blocked_until.values()]
        return max(0, round(max(waits, default=0)))

    def close(self) -> None:
        self.auth.close()

    def permission(self, repository: str, login: str) -> str:
        """The user's permission on the repository: admin, maintain, write, triage, read, none."""
        try:
            return self._call(repository, lambda repo: repo.get_collaborator_permission(login))
        except github.UnknownObjectException:
            return "none"

    def set_state_label(self, repository: str, number: int, label: str | None) -> None:
        """Replace the issue's ``claude:*`` labels with ``label`` (or remove them)."""

        def relabel(repo) -> None:
            issue = repo.get_issue(number)
            current = [lbl.name for lbl in issue.labels]
            for name in current:
                if name.startswith(STATE_LABEL_PREFIX) and name != label:
                    # Removed meanwhile by someone else: the goal is reached all the same.
                    with contextlib.suppress(github.UnknownObjectException):
                        issue.remove_from_labels(name)
            if label and label not in current:
                issue.add_to_labels(label)

        self._call(repository, relabel)

    def comment(self, repository: str, number: int, body: str) -> None:
        self._call(repository, lambda repo: repo.get_issue(number).create_comment(body))

    def issue_labels(self, repository: str, number: int) -> list[str]:
        """The issue's labels now (events can be stale: labels added together arrive apart)."""
        return self._call(
            repository, lambda repo: [label.name for label in repo.get_issue(number).labels]
        )

    def issue_is_closed(self, repository: str, number: int) -> bool:
        return self._call(repository, lambda repo: repo.get_issue(number).state == "closed")

    def pull_request(self, repository: str, number: int) -> dict:
        """A pull request's state now, for catching up on missed webhooks: ``state``,
        ``merged``, ``merged_at``/``closed_at`` (datetimes), ``merged_by`` and ``head``."""

        def read(repo) -> dict:
            pull = repo.get_pull(number)
            return {
                "state": pull.state,
                "merged": pull.merged,
                "merged_at": pull.merged_at,
                "closed_at": pull.closed_at,
                "merged_by": pull.merged_by.login if pull.merged_by else None,
                "head": pull.head.sha,
            }

        return self._call(repository, read)

    def labelled_issues(self, repository: str, label: str) -> list[dict]:
        """Open issues (not pull requests) carrying ``label``, for the polling fallback."""

        def listing(repo) -> list[dict]:
            found = []
            for issue in repo.get_issues(state="open", labels=[label]):
                if issue.pull_request is not None:
                    continue
                labeler = _last_labeler(issue, label) or issue.user
                found.append(
                    {
                        "number": issue.number,
                        "title": issue.title,
                        "body": issue.body or "",
                        "labels": [lbl.name for lbl in issue.labels],
                        "user": issue.user.login,
                        "labeled_by": {"login": labeler.login, "id": labeler.id},
                    }
                )
            return found

        return self._call(repository, listing)


def _last_labeler(issue, label: str):
    """Who added ``label`` most recently (the person whose permission the trigger needs)."""
    actor = None
    try:
        for event in issue.get_events():
            if event.event == "labeled" and event.label and event.label.name == label:
                actor = event.actor or actor
    except github.UnknownObjectException:
        logger.warning("No issue events for %s: judging the trigger by the issue author", issue)
    return actor


def send_outbox(session: Session, gateway: GitHubGateway, now: datetime, limit: int = 50) -> int:
    """Send due outbox messages; returns how many were sent.

    A temporary failure (network, 5xx, a rate limit) is tried again later: after the wait
    GitHub asked for, else with a doubling backoff. A permanent one (the repository is gone,
    the App lost access, GitHub refuses the content) is never sent again: it is marked failed
    with GitHub's reason, which the admin pages show.
    """
    messages = session.scalars(
        select(OutboxMessage)
        .where(
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.failed_at.is_(None),
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    sent = 0
    for message in messages:
        data = message.payload
        if message.kind == "state_label" and _superseded(session, message):
            message.sent_at = now  # a newer label for the same issue wins; order is kept
            continue
        try:
            if message.kind == "state_label":
                gateway.set_state_label(data["repository"], data["issue"], data["label"])
            elif message.kind == "comment":
                gateway.comment(data["repository"], data["issue"], data["body"])
            else:
                raise ValueError(f"unknown outbox message kind {message.kind!r}")
        except Throttled as exc:
            # Not sent, not an attempt: GitHub asked for a pause that is not over yet.
            message.next_attempt_at = now + timedelta(seconds=exc.wait_seconds)
            continue
        except Exception as exc:
            _record_failure(message, now, exc)
            continue
        message.sent_at = now
        sent += 1
    return sent


def _record_failure(message: OutboxMessage, now: datetime, exc: Exception) -> None:
    """Count the attempt: stop for good after a permanent failure, else wait and try again."""
    failure = classify(exc)
    if failure is None:  # a fault of ours, not GitHub's answer: tried a few times, then given up
        logger.error("Outbox %s (%s) could not be sent", message.id, message.kind, exc_info=exc)
        last = isinstance(exc, ValueError) or message.attempts + 1 >= OUTBOX_MAX_UNEXPECTED
        failure = Failure(last, f"{exc.__class__.__name__}: {exc}", DEFAULT_WAIT_SECONDS)
    message.attempts += 1
    message.last_error = str(failure)[:2000]
    if failure.permanent:
        message.failed_at = now
        logger.error("Outbox %s (%s) failed for good: %s", message.id, message.kind, failure)
        return
    delay = max(failure.wait_seconds, min(2**message.attempts, OUTBOX_MAX_BACKOFF))
    message.next_attempt_at = now + timedelta(seconds=delay)
    logger.warning(
        "Outbox %s (%s): attempt %s failed: %s", message.id, message.kind, message.attempts, failure
    )


def _superseded(session: Session, message: OutboxMessage) -> bool:
    newer = session.scalar(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.kind == "state_label",
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.failed_at.is_(None),
            OutboxMessage.id > message.id,
            OutboxMessage.payload["repository"].astext == message.payload["repository"],
            OutboxMessage.payload["issue"].astext == str(message.payload["issue"]),
        )
        .limit(1)
    )
    return newer is not None
