"""A task's GitHub access, as the coordinator grants it with the claim: held in memory only.

The grant is an installation token for the task's repository alone (App mode) or the cluster's
one token (token mode). It is never written to disk, never on a command line, never in a
sandboxed command's environment: git gets it in its own environment for one call, PyGithub in
a header. Before it runs out it is renewed from the coordinator, naming the one ref the task
pushes (the coordinator refuses any other).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent_app.exceptions import AgentError

logger = logging.getLogger(__name__)

# Renew this long before the token expires: a push or a pull request must not straddle it.
RENEW_MARGIN = timedelta(minutes=10)
# A token this close to its end is not used at all.
EXPIRY_SLACK = timedelta(seconds=30)


@dataclass(frozen=True)
class Grant:
    """What the coordinator handed over for one task."""

    token: str = field(repr=False)
    expires_at: datetime | None  # None: a token that does not expire (token mode)
    repository: str
    branch: str
    api_url: str
    author: tuple[str, str]  # the cluster's bot: (name, email)
    co_authors: tuple[str, ...] = ()  # "Name <email>" of whoever asked for the work
    requester: str | None = None  # their GitHub login, when a GitHub user asked
    # What the token may do (an App's installation token); None: a token whose scopes decide.
    permissions: dict[str, str] | None = None

    @property
    def may_change_workflows(self) -> bool:
        """Whether GitHub would take a push of workflow files with this token."""
        return self.permissions is None or self.permissions.get("workflows") == "write"

    @classmethod
    def from_json(cls, data: Any) -> Grant:
        """The grant in a claim's ``github`` field; AgentError when it is missing or malformed."""
        try:
            expires = data["expires_at"]
            return cls(
                token=_text(data["token"]),
                expires_at=datetime.fromisoformat(expires) if expires else None,
                repository=_text(data["repository"]),
                branch=_text(data["branch"]),
                api_url=_text(data["api_url"]),
                author=(_text(data["author"]["name"]), _text(data["author"]["email"])),
                co_authors=tuple(_text(c) for c in data.get("co_authors") or ()),
                requester=data.get("requester") or None,
                permissions=_permissions(data.get("permissions")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentError(f"the coordinator's GitHub grant is incomplete: {exc!r}") from None

    def expiring(self, now: datetime | None = None) -> bool:
        """Whether the token runs out within ``RENEW_MARGIN``."""
        if self.expires_at is None:
            return False
        return self.expires_at - RENEW_MARGIN <= (now or datetime.now(UTC))

    def usable(self, now: datetime | None = None) -> bool:
        """Whether the token has more than ``EXPIRY_SLACK`` left."""
        if self.expires_at is None:
            return True
        return self.expires_at - EXPIRY_SLACK > (now or datetime.now(UTC))


def _permissions(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("permissions must be an object")
    return {str(k): str(v) for k, v in value.items()}


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


class TaskAccess:
    """One task's grant, renewed from the coordinator when it runs low."""

    def __init__(self, grant: Grant, renew) -> None:
        """``renew(ref)`` asks the coordinator for a new grant to push ``ref``."""
        self._grant = grant
        self._renew = renew
        self._lock = threading.Lock()
        self._retired: list[Grant] = []  # replaced grants whose tokens are still to revoke

    @property
    def grant(self) -> Grant:
        """The current grant, renewed when it runs low; a renewal that fails keeps the
        current one while it is still valid (and is tried again at the next use)."""
        with self._lock:
            if self._grant.expiring():
                try:
                    self._replace(self._renew(self.ref))
                except AgentError as exc:
                    if not self._grant.usable():
                        raise
                    logger.warning("GitHub token not renewed yet, the current one serves: %s", exc)
            return self._grant

    def confirm(self) -> Grant:
        """A fresh grant, asked for right before a push: the coordinator answers only while
        this run is the task's current attempt, so a run that lost its task pushes nothing
        (AttemptOver, or CoordinatorUnavailable when it cannot ask)."""
        with self._lock:
            self._replace(self._renew(self.ref))
            return self._grant

    def _replace(self, answer: dict) -> None:
        grant = Grant.from_json(answer)
        if grant.token != self._grant.token:
            self._retired.append(self._grant)
        self._grant = grant

    def take_retired(self) -> list[Grant]:
        """The grants replaced since the last call, to revoke their tokens."""
        with self._lock:
            retired, self._retired = self._retired, []
            return retired

    @property
    def held(self) -> Grant:
        """The grant as it is, never renewed (to revoke it)."""
        return self._grant

    @property
    def ref(self) -> str:
        return f"refs/heads/{self._grant.branch}"

    def token(self) -> str:
        """The current token (renewed first if it runs out soon)."""
        return self.grant.token

    def commit_trailers(self) -> str:
        """``Co-authored-by:`` lines crediting whoever asked for the work."""
        return "".join(f"Co-authored-by: {who}\n" for who in self._grant.co_authors)
