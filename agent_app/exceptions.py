"""Errors the agent raises on purpose; the control-flow ones carry what the caller needs."""

from __future__ import annotations


class AgentError(Exception):
    """Base class for the agent's own errors."""


class CoordinatorUnavailable(AgentError):
    """The coordinator did not answer (network, 5xx): back off and try again, keep the work."""


class CoordinatorRefused(AgentError):
    """The coordinator answered with a 4xx: the request itself is wrong or not allowed."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(f"coordinator answered {status}: {message}")
        self.status, self.message, self.code = status, message, code


class AttemptOver(CoordinatorRefused):
    """The coordinator no longer counts this run of the task (its lease was reaped, the task
    was cancelled or claimed again): stop at once, push nothing, report nothing."""


class LimitExceeded(AgentError):
    """A task budget ran out (turns, tokens, dollars, seconds); the work so far is kept."""

    def __init__(self, limit: str, used: float = -1, allowed: float = -1) -> None:
        detail = f" ({used:g} of {allowed:g})" if allowed >= 0 else ""
        super().__init__(f"{limit} limit reached{detail}")
        self.limit, self.used, self.allowed = limit, used, allowed


class ContextExhausted(LimitExceeded):
    """The conversation no longer fits the model's context window, even with every old tool
    output cleared; a limit like the others (the work so far is kept)."""

    def __init__(self, detail: str) -> None:
        AgentError.__init__(self, f"context window limit reached: {detail}")
        self.limit, self.used, self.allowed = "context", -1, -1


class Cancelled(AgentError):
    """The task was cancelled (by the coordinator, an admin, or a cold stop)."""


class GitHubRefused(AgentError):
    """GitHub refused for good (401/403/404/410/422, a rejected push): asking again gets the
    same answer, so the task fails without a retry and nothing more is pushed."""


class WorkspaceError(AgentError):
    """The repository could not be cloned, fetched or checked out."""


class PublishError(AgentError):
    """The branch could not be pushed or the pull request opened."""
