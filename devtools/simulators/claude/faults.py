"""Fault injection: errors, delays and cut connections for the next requests, in order."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from simulators.claude.exceptions import (
    ApiError,
    InternalServerError,
    OverloadedError,
    RateLimitError,
)


class FaultKind(StrEnum):
    """What an injected fault does to a request."""

    RATE_LIMIT = "rate_limit"  # 429 rate_limit_error with retry-after
    OVERLOADED = "overloaded"  # 529 overloaded_error
    SERVER_ERROR = "server_error"  # 500 api_error
    SLOW = "slow"  # wait ``seconds`` before answering normally
    DROP_STREAM = "drop_stream"  # start the answer, then cut the connection
    STREAM_ERROR = "stream_error"  # start the stream, then send an ``error`` event


@dataclass
class Fault:
    """One injected fault and how many more requests it applies to."""

    kind: FaultKind
    count: int = 1
    seconds: float = 5.0  # slow: the delay
    retry_after: float = 1.0  # rate_limit: the retry-after header, in seconds
    after_events: int = 3  # drop_stream / stream_error: events sent before the failure

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """A fault from its JSON form; ValueError on bad input."""
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        unknown = set(data) - {"kind", "count", "seconds", "retry_after", "after_events"}
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        try:
            kind = FaultKind(data.get("kind"))
        except ValueError:
            choices = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"kind must be one of {choices}") from None
        fault = cls(kind=kind)
        for name, cast in (("count", int), ("seconds", float), ("retry_after", float)):
            if name in data:
                setattr(fault, name, cast(data[name]))
        if "after_events" in data:
            fault.after_events = int(data["after_events"])
        if fault.count < 1 or fault.seconds < 0 or fault.retry_after < 0 or fault.after_events < 0:
            raise ValueError("count must be positive; seconds, retry_after, after_events >= 0")
        return fault

    def as_dict(self) -> dict[str, Any]:
        """JSON form of the fault."""
        return {**asdict(self), "kind": self.kind.value}

    def error(self) -> ApiError | None:
        """The error answered instead of the response, for the error kinds."""
        if self.kind is FaultKind.RATE_LIMIT:
            seconds = self.retry_after
            header = str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
            return RateLimitError(
                "Number of request tokens has exceeded your per-minute rate limit "
                "(injected by the simulator)",
                headers={"retry-after": header},
            )
        if self.kind is FaultKind.OVERLOADED:
            return OverloadedError("Overloaded")
        if self.kind is FaultKind.SERVER_ERROR:
            return InternalServerError("Internal server error")
        return None


class FaultQueue:
    """Faults waiting for the next requests; each request takes at most one. Thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` after those already waiting."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Drop every waiting fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[dict[str, Any]]:
        """The waiting faults, in order."""
        with self._lock:
            return [fault.as_dict() for fault in self._faults]

    def take(self) -> Fault | None:
        """The fault for the current request (a copy with count 1), if any."""
        with self._lock:
            if not self._faults:
                return None
            head = self._faults[0]
            head.count -= 1
            if head.count <= 0:
                self._faults.pop(0)
            return Fault(head.kind, 1, head.seconds, head.retry_after, head.after_events)
