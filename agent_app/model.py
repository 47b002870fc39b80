"""What the agent loop needs of a model: one query returns one turn, with its usage and cost.

``agent_app.messages_api.MessagesApiModel`` is the implementation for Claude's Messages API;
tests drive the loop with scripted models that implement the same protocol.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class TurnUsage:
    """Tokens of one turn, as the API bills them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Everything the request carried, whether cached or not."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens


@dataclass(frozen=True)
class Turn:
    """The model's answer to one query: its content blocks (as the API returns them)."""

    content: list[dict[str, Any]]
    stop_reason: str
    usage: TurnUsage = field(default_factory=TurnUsage)
    cost_usd: float = 0.0
    raw_usage: dict[str, Any] = field(default_factory=dict)  # the API's own record, verbatim
    # Sweeps of old tool output made before this turn (agent_app.context).
    context_edits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [block for block in self.content if block.get("type") == "tool_use"]

    @property
    def text(self) -> str:
        return "".join(block["text"] for block in self.content if block.get("type") == "text")


@dataclass
class Conversation:
    """The messages so far; kept by the caller so a test-fix round can continue it."""

    system: list[dict]
    messages: list[dict] = field(default_factory=list)
    summary: str = ""
    # The prompt as the model last read it (as the API counted it, or estimated after a
    # sweep) and how many messages it held: the base of the next size estimate.
    counted_tokens: int = 0
    counted_messages: int = 0
    # How many of the oldest tool results are cleared (agent_app.context).
    cleared_results: int = 0


class Model(Protocol):
    """A model the loop can query."""

    def query(
        self,
        conversation: Conversation,
        tools: list[dict[str, Any]],
        deadline: float,
        cancel: threading.Event,
    ) -> Turn:
        """One turn answering ``conversation``; raises LimitExceeded when ``deadline`` (a
        time.monotonic() value) passes and Cancelled when ``cancel`` is set while waiting."""
        ...
