"""Deterministic token accounting, with prompt caching (the simulator's only cross-request state).

Tokens are estimated at ~4 characters each. The request is rendered in the real API's order
(tools, then system, then messages) as a list of segments; a segment carrying ``cache_control``
is a breakpoint. As on the real API, the longest already-cached prefix (looked up at each
breakpoint and up to 20 segments before it) is read from the cache, and the prefix up to each
later breakpoint is written to it, unless that prefix is shorter than the minimum cacheable size.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.claude.content import blocks_of

# The real API looks back this many blocks before a breakpoint for an earlier cache hit.
LOOKBACK_SEGMENTS = 20
# Fixed overheads the real API documents for tool use (its hidden system prompt and tool specs).
TOOL_USE_SYSTEM_TOKENS = 346
CLIENT_TOOL_TOKENS = {"bash": 245, "text_editor": 700}
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
# Tokens that open the assistant's reply: counted as input, after every breakpoint.
REPLY_PRIMER_TOKENS = 3
# Expired entries are dropped once the cache holds this many (long benchmark runs).
PRUNE_ABOVE = 10_000


def estimate_tokens(text: str, chars_per_token: float = 4.0) -> int:
    """Tokens for ``text``: one per ``chars_per_token`` characters, at least one."""
    return max(1, math.ceil(len(text) / chars_per_token))


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Segment:
    """One cacheable unit of the prompt: a tool, a system block or a message content block."""

    key: str
    tokens: int
    ttl: str | None  # the breakpoint's TTL when this segment carries cache_control


@dataclass(frozen=True)
class Usage:
    """Input-side usage of one request."""

    input_tokens: int
    cache_creation_5m: int = 0
    cache_creation_1h: int = 0
    cache_read_input_tokens: int = 0

    @property
    def cache_creation_input_tokens(self) -> int:
        """All tokens written to the cache by this request."""
        return self.cache_creation_5m + self.cache_creation_1h

    def as_dict(self, output_tokens: int) -> dict[str, Any]:
        """The ``usage`` object of a response, as the real API shapes it."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation_5m,
                "ephemeral_1h_input_tokens": self.cache_creation_1h,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }


def segments(body: dict[str, Any], chars_per_token: float = 4.0) -> list[Segment]:
    """The request as prompt segments in the real render order: tools, system, messages."""
    result: list[Segment] = []

    def add(kind: str, value: dict[str, Any] | str, extra_tokens: int = 0) -> None:
        ttl = None
        if isinstance(value, dict):
            control = value.get("cache_control")
            if isinstance(control, dict):
                ttl = "1h" if control.get("ttl") == "1h" else "5m"
            # Where the breakpoint sits must not change the prefix it marks.
            value = {k: v for k, v in value.items() if k != "cache_control"}
        key = f"{kind}:{_canonical(value)}"
        tokens = estimate_tokens(_canonical(value), chars_per_token) + extra_tokens
        result.append(Segment(key=key, tokens=tokens, ttl=ttl))

    tools = body.get("tools") or []
    for index, tool in enumerate(tools):
        kind = str(tool.get("type", ""))
        overhead = TOOL_USE_SYSTEM_TOKENS if index == 0 else 0
        overhead += next((n for p, n in CLIENT_TOOL_TOKENS.items() if kind.startswith(p)), 0)
        add("tool", tool, overhead)
    system = body.get("system")
    if isinstance(system, str) and system:
        add("system", {"type": "text", "text": system})
    elif isinstance(system, list):
        for block in system:
            add("system", block)
    for position, message in enumerate(body.get("messages") or []):
        role = message.get("role")
        for block in blocks_of(message.get("content")):
            # Role and position in the key: the same text as user or assistant is another prompt.
            add(f"{position}:{role}", block, extra_tokens=1)
    result.append(Segment(key="reply", tokens=REPLY_PRIMER_TOKENS, ttl=None))
    return result


class PromptCache:
    """Which prompt prefixes are cached (by hash), with their expiry; thread-safe."""

    def __init__(
        self, min_cacheable_tokens: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.min_cacheable_tokens = min_cacheable_tokens
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._ttl: dict[str, float] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget every cached prefix."""
        with self._lock:
            self._expiry.clear()
            self._ttl.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def account(self, model: str, parts: list[Segment], *, write: bool = True) -> Usage:
        """Usage for a prompt made of ``parts``; records new cache entries when ``write``."""
        total = sum(part.tokens for part in parts)
        breakpoints = [i for i, part in enumerate(parts) if part.ttl is not None]
        if not breakpoints:
            return Usage(input_tokens=total)
        hashes, cumulative = self._prefixes(model, parts)
        now = self._clock()
        with self._lock:
            hit = self._longest_hit(hashes, breakpoints, now)
            read = cumulative[hit] if hit >= 0 else 0
            created = {"5m": 0, "1h": 0}
            start = read
            for index in breakpoints:
                if index <= hit or cumulative[index] < self.min_cacheable_tokens:
                    continue
                ttl = parts[index].ttl or "5m"
                created[ttl] += cumulative[index] - start
                start = cumulative[index]
                if write:
                    self._ttl[hashes[index]] = TTL_SECONDS[ttl]
                    self._expiry[hashes[index]] = now + TTL_SECONDS[ttl]
            if write and len(self._expiry) > PRUNE_ABOVE:
                self._prune(now)
            if hit >= 0 and write:
                # A read refreshes the entry's lifetime, as on the real API.
                self._expiry[hashes[hit]] = now + self._ttl[hashes[hit]]
        return Usage(
            input_tokens=total - read - created["5m"] - created["1h"],
            cache_creation_5m=created["5m"],
            cache_creation_1h=created["1h"],
            cache_read_input_tokens=read,
        )

    def _prune(self, now: float) -> None:
        for key in [k for k, expiry in self._expiry.items() if expiry <= now]:
            del self._expiry[key]
            self._ttl.pop(key, None)

    @staticmethod
    def _prefixes(model: str, parts: list[Segment]) -> tuple[list[str], list[int]]:
        digest = hashlib.sha256(model.encode())
        hashes: list[str] = []
        cumulative: list[int] = []
        running = 0
        for part in parts:
            digest.update(part.key.encode())
            digest.update(b"\x00")
            hashes.append(digest.copy().hexdigest())
            running += part.tokens
            cumulative.append(running)
        return hashes, cumulative

    def _longest_hit(self, hashes: list[str], breakpoints: list[int], now: float) -> int:
        for index in sorted(
            {i for b in breakpoints for i in range(max(0, b - LOOKBACK_SEGMENTS), b + 1)},
            reverse=True,
        ):
            expiry = self._expiry.get(hashes[index])
            if expiry is not None and expiry > now:
                return index
        return -1
