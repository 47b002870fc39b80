"""GitHub's REST API rate limits: the primary window per caller and the secondary limits.

The limits themselves are read from the simulator's config on every request, so changing the config
(see :meth:`RateLimiter.configure`) changes them at once; the limiter only keeps the counters.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulators.github.exceptions import Forbidden, invalid_field

if TYPE_CHECKING:
    from simulators.github.config import SimulatorConfig

PRIMARY_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = f"{PRIMARY_DOCS}#about-secondary-rate-limits"
# The config fields POST /_sim/rate-limits may change.
LIMIT_FIELDS = (
    "rate_limit",
    "anonymous_rate_limit",
    "rate_limit_window_seconds",
    "secondary_writes_per_minute",
    "secondary_writes_per_hour",
    "secondary_concurrent_requests",
)
MINUTE, HOUR = 60, 3600
# GitHub does not say when a concurrent request ends; a second is a fair guess for a client.
CONCURRENCY_RETRY_AFTER = 1


@dataclass(frozen=True)
class Caller:
    """Whom a request counts against: ``key`` names the counters, ``subject`` the message."""

    key: str
    subject: str  # "user ID 3", "installation ID 7", or the client address when anonymous
    anonymous: bool = False

    def limit(self, limits: SimulatorConfig) -> int:
        """The caller's primary limit per window."""
        return limits.anonymous_rate_limit if self.anonymous else limits.rate_limit


@dataclass(frozen=True)
class RateStatus:
    """One caller's window, as GitHub reports it."""

    limit: int
    used: int
    reset: int

    @property
    def remaining(self) -> int:
        """Requests left in the window."""
        return max(self.limit - self.used, 0)

    def as_dict(self) -> dict:
        """The `rate_limit` resource object."""
        return {
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "reset": self.reset,
        }

    def headers(self) -> dict[str, str]:
        """The X-RateLimit-* headers of an answer."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
            "X-RateLimit-Used": str(self.used),
            "X-RateLimit-Resource": "core",
        }


class RateLimiter:
    """Counts requests per caller and refuses those over a limit with GitHub's 403.

    ``clock`` (epoch seconds) may be swapped by tests to step past the secondary minute.
    """

    def __init__(self, limit: int | None = None) -> None:
        # ``limit`` is ignored: the limits come from the config passed to each call.
        self.clock: Callable[[], float] = time.time
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}  # caller -> (reset time, used)
        self._writes: dict[str, deque[float]] = {}  # caller -> times of its writes, last hour
        self._in_flight: Counter[str] = Counter()

    def status(self, who: Caller, limits: SimulatorConfig) -> RateStatus:
        """``who``'s primary window, without counting a request."""
        with self._lock:
            return self._window(who, limits, self.clock())

    def admit(
        self, who: Caller, limits: SimulatorConfig, *, write: bool, request_id: str
    ) -> RateStatus:
        """Count a request by ``who`` and hold a concurrency slot until :meth:`release`.

        A write is a content-creating request (the API decides which); only writes count against
        the secondary per-minute and per-hour limits. A refused request is not counted and holds
        no slot; the refusal is Forbidden with GitHub's message and headers.
        """
        now = self.clock()
        with self._lock:
            status = self._window(who, limits, now)
            if status.remaining == 0:
                raise _primary_refusal(who, status)
            wait = self._concurrency_wait(who, limits)
            if write:
                wait = max(wait, self._write_wait(who, limits, now))
            if wait:
                raise _secondary_refusal(status, wait, request_id)
            reset, used = self._windows[who.key]
            self._windows[who.key] = (reset, used + 1)
            self._in_flight[who.key] += 1
            if write:
                self._writes.setdefault(who.key, deque()).append(now)
        return RateStatus(status.limit, used + 1, status.reset)

    def release(self, who: Caller) -> None:
        """End a request :meth:`admit` let through."""
        with self._lock:
            self._in_flight[who.key] -= 1
            if self._in_flight[who.key] <= 0:
                del self._in_flight[who.key]

    def reset(self) -> None:
        """Start every caller afresh (requests in flight keep their slots)."""
        with self._lock:
            self._windows.clear()
            self._writes.clear()

    def configure(self, limits: SimulatorConfig, changes: dict) -> dict[str, int]:
        """Set the limits named in ``changes`` on ``limits``, reset the counters, return them all.

        Values are whole numbers, 0 disabling a secondary limit; the window is at least a second.
        """
        for name, value in changes.items():
            if name not in LIMIT_FIELDS:
                raise invalid_field("RateLimits", name)
            lowest = 1 if name == "rate_limit_window_seconds" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise invalid_field("RateLimits", name)
        for name, value in changes.items():
            setattr(limits, name, value)
        self.reset()
        return {name: getattr(limits, name) for name in LIMIT_FIELDS}

    def _window(self, who: Caller, limits: SimulatorConfig, now: float) -> RateStatus:
        """``who``'s current window, starting a new one when the last has ended (lock held)."""
        reset, used = self._windows.get(who.key, (0.0, 0))
        if reset <= now:
            reset, used = now + limits.rate_limit_window_seconds, 0
            self._windows[who.key] = (reset, used)
        return RateStatus(who.limit(limits), used, math.ceil(reset))

    def _concurrency_wait(self, who: Caller, limits: SimulatorConfig) -> float:
        """Seconds to wait before another request may start alongside ``who``'s others."""
        most = limits.secondary_concurrent_requests
        return CONCURRENCY_RETRY_AFTER if most and self._in_flight[who.key] >= most else 0

    def _write_wait(self, who: Caller, limits: SimulatorConfig, now: float) -> float:
        """Seconds until ``who`` may write again under the per-minute and per-hour limits."""
        times = self._writes.get(who.key)
        if not times:
            return 0
        while times and times[0] <= now - HOUR:
            times.popleft()
        wait = 0.0
        for most, span in (
            (limits.secondary_writes_per_minute, MINUTE),
            (limits.secondary_writes_per_hour, HOUR),
        ):
            recent = [t for t in times if t > now - span]
            if most and len(recent) >= most:
                # A slot frees when the write that many back from the newest leaves the span.
                wait = max(wait, recent[len(recent) - most] + span - now)
        return wait


def _primary_refusal(who: Caller, status: RateStatus) -> Forbidden:
    """GitHub's 403 once a caller's window is used up."""
    message = f"API rate limit exceeded for {who.subject}."
    if who.anonymous:
        message += (
            " (But here's the good news: Authenticated requests get a higher rate limit."
            " Check out the documentation for more details.)"
        )
    return Forbidden(message, documentation_url=PRIMARY_DOCS, headers=status.headers())


def _secondary_refusal(status: RateStatus, wait: float, request_id: str) -> Forbidden:
    """GitHub's 403 for too many writes or concurrent requests, with Retry-After."""
    message = (
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        f" If you reach out to GitHub Support for help, please include the request ID {request_id}."
    )
    headers = {**status.headers(), "Retry-After": str(max(math.ceil(wait), 1))}
    return Forbidden(message, documentation_url=SECONDARY_DOCS, headers=headers)
