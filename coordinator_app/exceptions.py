"""Errors the coordinator raises on purpose; each maps to one HTTP status in the API."""

from __future__ import annotations


class CoordinatorError(Exception):
    """Base class; ``status`` is the HTTP status the API answers with, ``code`` the error's
    machine-readable name (None: the status's)."""

    status = 500
    code: str | None = None


class InvalidRequest(CoordinatorError):
    """The request is malformed or fails validation."""

    status = 400


class NotFound(CoordinatorError):
    """The object does not exist (or the caller may not know it does)."""

    status = 404


class Unauthorized(CoordinatorError):
    """No valid credentials."""

    status = 401


class Forbidden(CoordinatorError):
    """Valid credentials, but not allowed to do this."""

    status = 403


class Conflict(CoordinatorError):
    """The request clashes with the current state (e.g. a task already claimed)."""

    status = 409


class AttemptOver(Conflict):
    """A report of a task attempt that is not the current one: its run must stop unpushed."""

    code = "attempt_over"


class IllegalTransition(Conflict):
    """A task state change the state machine does not allow."""

    def __init__(self, task_id: int, current: str, requested: str) -> None:
        super().__init__(f"task {task_id}: cannot go from {current} to {requested}")
        self.task_id, self.current, self.requested = task_id, current, requested


class RateLimited(CoordinatorError):
    """Too many requests from one client."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded, retry after {retry_after}s")
        self.retry_after = retry_after


class Unavailable(CoordinatorError):
    """Something the request needs (GitHub) cannot answer now; the caller tries again later."""

    status = 503
