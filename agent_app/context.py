"""Keeping a long task's conversation within the model's context window.

Old tool output goes first: once the prompt the model reads passes ``trigger`` tokens, the
results of the oldest tool calls are replaced by a placeholder until it is back to half the
trigger, never the newest ``keep``. The system prompt, the task statement and every tool call
itself stay (each tool_use keeps its tool_result, so the conversation stays valid).

It happens in sweeps: between two sweeps the cleared part does not move, so the prompt's prefix
stays the same turn after turn and the prompt cache keeps hitting; each sweep costs one cache
write. A clearing rule applied afresh at every request (all but the newest few results) would
move the edge at every turn and write most of the prompt to the cache again each time.

Who clears: the Messages API's own context editing (``editing = "api"``, the beta
``context-management-2025-06-27``: the agent keeps and sends its whole history, and tells the
API with ``keep`` how many of the newest tool results to leave, which clears exactly the
results of the sweeps so far), or the agent itself in the history it sends (``"client"``: for
gateways or models without the beta). The sweep decisions are the same in both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

BETA = "context-management-2025-06-27"
EDITING_MODES = ("api", "client")
PLACEHOLDER = (
    "[This output was cleared to keep the conversation within the context window. "
    "Run the command again if you still need it.]"
)
# A conservative estimate for text the API has not measured yet (code and logs run near 3.5
# characters per token; JSON escaping adds some).
CHARS_PER_TOKEN = 3.0
TOO_LONG = re.compile(r"prompt is too long: (\d+) tokens > (\d+) maximum")
OUTPUT_TOO_LONG = re.compile(
    r"input length and `max_tokens` exceed context limit: (\d+) \+ (\d+) > (\d+)"
)


@dataclass(frozen=True)
class ContextPolicy:
    """How a task's conversation is kept within ``window`` tokens."""

    editing: str = "api"
    window: int = 200_000
    trigger: int = 100_000  # a sweep starts when the prompt passes this many tokens
    keep: int = 5  # the newest tool results are never cleared by a sweep

    def __post_init__(self) -> None:
        if self.editing not in EDITING_MODES:
            raise ValueError(f"context editing must be one of {EDITING_MODES}")
        if not 0 < self.trigger < self.window:
            raise ValueError("the context trigger must be between 0 and the window")

    @property
    def low_water(self) -> int:
        """Where a sweep brings the prompt back to."""
        return self.trigger // 2


def estimate(value: Any) -> int:
    """Tokens of ``value`` (messages or blocks), estimated from its length as JSON (above the
    real count for ordinary text)."""
    return int(len(json.dumps(value, ensure_ascii=False)) / CHARS_PER_TOKEN)


def tool_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation's tool_result blocks, oldest first."""
    return [
        block
        for message in messages
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def sweep(results: list[dict[str, Any]], cleared: int, keep: int, needed: float) -> tuple[int, int]:
    """How far a sweep clears: from the ``cleared`` oldest results on, until about ``needed``
    tokens are freed, never the newest ``keep``. Returns the new count of cleared results and
    the estimated tokens freed."""
    freed, last = 0, max(cleared, len(results) - keep)
    while cleared < last and freed < needed:
        block = results[cleared]
        freed += max(0, estimate(block) - estimate({**block, "content": PLACEHOLDER}))
        cleared += 1
    return cleared, freed


def api_edits(results: int, cleared: int) -> dict[str, Any]:
    """``context_management`` asking the API to clear the oldest ``cleared`` of ``results``
    tool results (trigger at one token: the sweeps, not the API, decide when)."""
    return {
        "edits": [
            {
                "type": "clear_tool_uses_20250919",
                "trigger": {"type": "input_tokens", "value": 1},
                "keep": {"type": "tool_uses", "value": results - cleared},
            }
        ]
    }


def too_long(message: str) -> tuple[int, int, int] | None:
    """(prompt tokens, max_tokens, window) from the API's refusal of a request that does not
    fit the window (max_tokens 0 when the prompt alone is too long); None for other errors."""
    found = TOO_LONG.search(message)
    if found:
        return int(found[1]), 0, int(found[2])
    found = OUTPUT_TOO_LONG.search(message)
    if found:
        return int(found[1]), int(found[2]), int(found[3])
    return None
