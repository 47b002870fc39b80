"""Rate-limit bookkeeping for the X-RateLimit-* headers and `GET /rate_limit` (never enforced)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

WINDOW_SECONDS = 3600


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


class RateLimiter:
    """Counts requests per caller in hourly windows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}  # caller -> (reset epoch, used)

    def hit(self, caller: str, *, count: bool = True) -> RateStatus:
        """Count one request by ``caller`` (unless ``count`` is False) and return its status."""
        now = int(time.time())
        with self._lock:
            reset, used = self._windows.get(caller, (now + WINDOW_SECONDS, 0))
            if reset <= now:
                reset, used = now + WINDOW_SECONDS, 0
            if count:
                used += 1
            self._windows[caller] = (reset, used)
        return RateStatus(self.limit, used, reset)
