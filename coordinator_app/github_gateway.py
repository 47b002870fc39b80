"""Everything the coordinator asks of GitHub, through PyGithub (the simulator is a URL away)."""

from __future__ import annotations

import contextlib
import functools
import logging
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import github
from github import Auth, Github, GithubException
from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator_app.models import OutboxMessage
from coordinator_app.outbox import STATE_LABEL_PREFIX

logger = logging.getLogger(__name__)

WRITE_PERMISSIONS = {"admin", "maintain", "write"}
OUTBOX_MAX_BACKOFF = 300


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


def github_client(api_url: str, token: str, timeout: int = 15) -> Github:
    """A PyGithub client for the cluster's own calls (coordinator and agents).

    PyGithub's default pacing (0.25 s between requests, 1 s between writes) would cap each
    process at about one new task per second; GitHub's own rate-limit answers (403/429) are
    handled by the callers instead, which keep the work and try again later. Its retries are
    off for the same reason: a retry loop inside a request would hold database locks.
    """
    return Github(
        base_url=api_url.rstrip("/"),
        auth=Auth.Token(token) if token else None,
        timeout=timeout,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        # Objects are fetched when an attribute is read, not when they are named: calls on a
        # repository or issue need only its URL.
        lazy=True,
    )


class GitHubGateway:
    """A thin, testable layer over PyGithub for the calls the coordinator makes."""

    def __init__(self, api_url: str, token: str, timeout: int = 15) -> None:
        self.client = github_client(api_url, token, timeout)

    def _repo(self, repository: str):
        return self.client.get_repo(repository)

    @functools.cached_property
    def login(self) -> str | None:
        """The cluster's own GitHub login (its comments and reviews never trigger work)."""
        return self.client.get_user().login

    def close(self) -> None:
        self.client.close()

    def permission(self, repository: str, login: str) -> str:
        """The user's permission on the repository: admin, maintain, write, triage, read, none."""
        try:
            return self._repo(repository).get_collaborator_permission(login)
        except github.UnknownObjectException:
            return "none"

    def set_state_label(self, repository: str, number: int, label: str | None) -> None:
        """Replace the issue's ``claude:*`` labels with ``label`` (or remove them)."""
        issue = self._repo(repository).get_issue(number)
        current = [lbl.name for lbl in issue.labels]
        for name in current:
            if name.startswith(STATE_LABEL_PREFIX) and name != label:
                # Removed meanwhile by someone else: the goal is reached all the same.
                with contextlib.suppress(github.UnknownObjectException):
                    issue.remove_from_labels(name)
        if label and label not in current:
            issue.add_to_labels(label)

    def comment(self, repository: str, number: int, body: str) -> None:
        self._repo(repository).get_issue(number).create_comment(body)

    def issue_labels(self, repository: str, number: int) -> list[str]:
        """The issue's labels now (events can be stale: labels added together arrive apart)."""
        return [label.name for label in self._repo(repository).get_issue(number).labels]

    def issue_is_closed(self, repository: str, number: int) -> bool:
        return self._repo(repository).get_issue(number).state == "closed"

    def labelled_issues(self, repository: str, label: str) -> list[dict]:
        """Open issues (not pull requests) carrying ``label``, for the polling fallback."""
        repo = self._repo(repository)
        found = []
        for issue in repo.get_issues(state="open", labels=[label]):
            if issue.pull_request is not None:
                continue
            found.append(
                {
                    "number": issue.number,
                    "title": issue.title,
                    "body": issue.body or "",
                    "labels": [lbl.name for lbl in issue.labels],
                    "user": issue.user.login,
                    "labeled_by": _last_labeler(issue, label),
                }
            )
        return found


def _last_labeler(issue, label: str) -> str | None:
    """Who added ``label`` most recently (the person whose permission the trigger needs)."""
    actor = None
    try:
        for event in issue.get_events():
            if event.event == "labeled" and event.label and event.label.name == label:
                actor = event.actor.login if event.actor else actor
    except github.UnknownObjectException:
        logger.warning("No issue events for %s: judging the trigger by the issue author", issue)
    return actor


def send_outbox(session: Session, gateway: GitHubGateway, now: datetime, limit: int = 50) -> int:
    """Send due outbox messages; failures are retried later with backoff. Returns sent count."""
    messages = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at <= now)
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
        except (GithubException, OSError, ValueError) as exc:
            message.attempts += 1
            message.last_error = str(exc)[:2000]
            delay = min(2**message.attempts, OUTBOX_MAX_BACKOFF)
            message.next_attempt_at = now + timedelta(seconds=delay)
            logger.warning(
                "Outbox %s (%s): attempt %s failed: %s",
                message.id,
                message.kind,
                message.attempts,
                exc,
            )
            continue
        message.sent_at = now
        sent += 1
    return sent


def _superseded(session: Session, message: OutboxMessage) -> bool:
    newer = session.scalar(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.kind == "state_label",
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.id > message.id,
            OutboxMessage.payload["repository"].astext == message.payload["repository"],
            OutboxMessage.payload["issue"].astext == str(message.payload["issue"]),
        )
        .limit(1)
    )
    return newer is not None
