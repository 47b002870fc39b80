"""GitHub's answers sorted into what callers act on: permanent (stop) or temporary (wait).

Permanent: 401, 403, 404, 410, 422 and other refusals of the request itself; asking again
gets the same answer. Temporary: 429, 5xx, a 403 that is a rate limit (primary or secondary),
and network failures; they say, or we guess, how long to wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests
from github import GithubException, RateLimitExceededException

# Without a retry-after header, temporary failures wait this long at first.
DEFAULT_WAIT_SECONDS = 5.0
# GitHub asks for at least a minute after a secondary limit that names no retry-after.
SECONDARY_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Failure:
    """What a failed GitHub call means for the caller."""

    permanent: bool
    reason: str
    wait_seconds: float = 0.0  # temporary failures: how long before trying again
    status: int | None = None  # GitHub's HTTP status; None: no answer (the network)

    def __str__(self) -> str:
        kind = "permanent" if self.permanent else f"temporary, retry in {self.wait_seconds:.0f}s"
        return f"{self.reason} ({kind})"


def classify(exc: BaseException) -> Failure | None:
    """What ``exc`` means, or None when it is no GitHub or network failure."""
    if isinstance(exc, requests.ConnectionError | requests.Timeout | ConnectionError):
        return Failure(False, f"GitHub unreachable: {exc.__class__.__name__}", DEFAULT_WAIT_SECONDS)
    if not isinstance(exc, GithubException):
        return None
    message = error_message(exc)
    reason = f"GitHub answered {exc.status}: {message}" if message else f"GitHub {exc.status}"
    wait = rate_limit_wait(exc.status, exc.headers or {}, message)
    if wait is not None or isinstance(exc, RateLimitExceededException):
        wait = wait if wait is not None else SECONDARY_WAIT_SECONDS
        return Failure(False, reason, wait, exc.status)
    if exc.status == 429 or exc.status >= 500:
        return Failure(False, reason, DEFAULT_WAIT_SECONDS, exc.status)
    return Failure(True, reason, status=exc.status)


def rate_limit_wait(status: int, headers: dict, message: str = "") -> float | None:
    """Seconds GitHub asks us to wait, when the answer is a rate limit; else None.

    A `retry-after` header wins; an exhausted primary limit (`x-ratelimit-remaining: 0`)
    waits for `x-ratelimit-reset`; a secondary limit without either waits a minute.
    """
    if status not in (403, 429):
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    if "retry-after" in lowered:
        try:
            return max(float(lowered["retry-after"]), 1.0)
        except ValueError:
            return SECONDARY_WAIT_SECONDS
    if lowered.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lowered:
        try:
            return max(float(lowered["x-ratelimit-reset"]) - time.time(), 1.0)
        except ValueError:
            return SECONDARY_WAIT_SECONDS
    if "rate limit" in message.lower():
        return SECONDARY_WAIT_SECONDS
    return None


def error_message(exc: GithubException) -> str:
    """GitHub's own message from an error answer."""
    data = exc.data
    if isinstance(data, dict):
        return str(data.get("message") or "")[:300]
    return str(data or "")[:300]
