"""The tool-use loop: ``step() = execute(query())`` until Claude is done or a limit is reached.

Every step is appended to the transcript and reported as a progress event, so nothing is lost
if the process dies; limits (turns, tokens, dollars, seconds) and cancellation stop the loop
with the work so far left in the checkout for the caller to commit.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic

from agent_app.config import ModelPrice
from agent_app.exceptions import Cancelled, LimitExceeded
from agent_app.redaction import Redactor
from agent_app.tools import TOOL_DEFINITIONS, ToolSet

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504, 529}
MAX_API_ATTEMPTS = 8
MAX_BACKOFF_SECONDS = 60


@dataclass
class Budget:
    """The task's limits (the smaller of the coordinator's budget and the agent's ceilings)."""

    max_turns: int
    max_tokens: int
    max_dollars: float
    max_seconds: float


@dataclass
class Usage:
    """Running totals for a task."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_tokens
            + self.cache_read_tokens
        )


@dataclass
class Conversation:
    """The messages so far; kept by the caller so a test-fix round can continue it."""

    system: list[dict]
    messages: list[dict] = field(default_factory=list)
    summary: str = ""


class RateGate:
    """Backoff shared by every task of the agent: one 429 slows them all down, as it should."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._not_before = 0.0

    def wait(self, cancel: threading.Event, deadline: float) -> None:
        while True:
            with self._lock:
                delay = self._not_before - time.monotonic()
            if delay <= 0:
                return
            if time.monotonic() + delay > deadline:
                raise LimitExceeded("seconds", -1, -1)  # the backoff would outlast the budget
            if cancel.wait(min(delay, 1.0)):
                raise Cancelled("cancelled while waiting for the API")

    def back_off(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)


def cost(usage: Any, price: ModelPrice) -> float:
    """Dollars for one response's usage."""
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + (usage.cache_creation_input_tokens or 0) * price.cache_write
        + (usage.cache_read_input_tokens or 0) * price.cache_read
    ) / 1_000_000


class Executor:
    """Runs one task's conversation with Claude."""

    name = "messages-api"  # reported with each result: the acceptance figures compare executors

    def __init__(
        self,
        client: anthropic.Anthropic,
        model: str,
        max_output_tokens: int,
        price: ModelPrice,
        gate: RateGate,
        secrets: list[str],
    ) -> None:
        self.client = client
        self.model = model
        self.max_output_tokens = max_output_tokens
        self.price = price
        self.gate = gate
        self.redact = Redactor(secrets)

    def run(
        self,
        conversation: Conversation,
        tools: ToolSet,
        budget: Budget,
        usage: Usage,
        started: float,
        transcript: Path,
        cancel: threading.Event,
        report: Callable[[dict], None],
    ) -> str:
        """Loop until Claude ends its turn; returns its final text.

        Raises LimitExceeded or Cancelled, with the conversation and checkout as they are.
        """
        deadline = started + budget.max_seconds
        while True:
            self._check(budget, usage, deadline, cancel)
            response = self._query(conversation, deadline, cancel)
            usage.turns += 1
            usage.input_tokens += response.usage.input_tokens
            usage.output_tokens += response.usage.output_tokens
            usage.cache_creation_tokens += response.usage.cache_creation_input_tokens or 0
            usage.cache_read_tokens += response.usage.cache_read_input_tokens or 0
            turn_cost = cost(response.usage, self.price)
            usage.cost_usd += turn_cost
            content = [block.model_dump(exclude_none=True) for block in response.content]
            conversation.messages.append({"role": "assistant", "content": content})
            calls = [b for b in response.content if b.type == "tool_use"]
            results = []
            for call in calls:
                if cancel.is_set():
                    raise Cancelled("cancelled between tool calls")
                result = tools.execute(call.name, call.input)
                usage.tool_calls += 1
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "content": result.content,
                        "is_error": result.is_error,
                    }
                )
                self._record(
                    transcript,
                    {
                        "tool": call.name,
                        "input": call.input,
                        "output": result.content,
                        "is_error": result.is_error,
                    },
                )
            text = "".join(b.text for b in response.content if b.type == "text")
            self._record(
                transcript,
                {
                    "turn": usage.turns,
                    "stop_reason": response.stop_reason,
                    "text": text,
                    "usage": response.usage.model_dump(exclude_none=True),
                    "cost_usd": turn_cost,
                },
            )
            report(
                {
                    "kind": "turn",
                    "data": {
                        "turn": usage.turns,
                        "stop_reason": response.stop_reason,
                        "tool_calls": [c.name for c in calls],
                        "input_tokens": response.usage.input_tokens
                        + (response.usage.cache_creation_input_tokens or 0)
                        + (response.usage.cache_read_input_tokens or 0),
                        "output_tokens": response.usage.output_tokens,
                        "cost_usd": round(turn_cost, 6),
                    },
                }
            )
            if not calls:
                # It becomes a commit message (a git argument) and a PR body: no NULs.
                conversation.summary = text.replace("\0", "\ufffd")
                return conversation.summary
            conversation.messages.append({"role": "user", "content": results})

    def _check(self, budget: Budget, usage: Usage, deadline: float, cancel: threading.Event):
        if cancel.is_set():
            raise Cancelled("cancelled")
        if usage.turns >= budget.max_turns:
            raise LimitExceeded("turns", usage.turns, budget.max_turns)
        if usage.tokens >= budget.max_tokens:
            raise LimitExceeded("tokens", usage.tokens, budget.max_tokens)
        if usage.cost_usd >= budget.max_dollars:
            raise LimitExceeded("dollars", round(usage.cost_usd, 4), budget.max_dollars)
        if time.monotonic() >= deadline:
            elapsed = budget.max_seconds + time.monotonic() - deadline
            raise LimitExceeded("seconds", round(elapsed), budget.max_seconds)

    def _query(self, conversation: Conversation, deadline: float, cancel: threading.Event):
        """One Messages API call, retried with backoff on 429/5xx/529 and dropped connections."""
        messages = _with_cache_breakpoint(conversation.messages)
        for attempt in range(1, MAX_API_ATTEMPTS + 1):
            self.gate.wait(cancel, deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LimitExceeded("seconds", -1, -1)
            try:
                return self.client.messages.create(
                    model=self.model,
                    max_tokens=self.max_output_tokens,
                    system=conversation.system,
                    tools=TOOL_DEFINITIONS,
                    messages=messages,
                    timeout=min(remaining, 600),
                )
            except anthropic.APIStatusError as exc:
                if exc.status_code not in RETRYABLE_STATUS or attempt == MAX_API_ATTEMPTS:
                    raise
                delay = _retry_after(exc) or min(2**attempt, MAX_BACKOFF_SECONDS)
            except anthropic.APIConnectionError:
                if attempt == MAX_API_ATTEMPTS:
                    raise
                delay = min(2**attempt, MAX_BACKOFF_SECONDS)
            delay *= 1 + random.random() / 4  # noqa: S311 - jitter, not cryptography
            logger.warning(
                "Claude API busy or unreachable (attempt %s): retrying in %.1fs", attempt, delay
            )
            self.gate.back_off(delay)
        raise AssertionError("unreachable")

    def _record(self, transcript: Path, entry: dict) -> None:
        line = self.redact(json.dumps({"at": time.time(), **entry}, default=str))
        with transcript.open("a") as handle:
            handle.write(line + "\n")


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    try:
        return float(exc.response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _with_cache_breakpoint(messages: list[dict]) -> list[dict]:
    """A copy whose last user turn carries a cache breakpoint, so each turn re-reads the last."""
    if not messages:
        return messages
    last = dict(messages[-1])
    content = last["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    content = [dict(block) for block in content]
    content[-1]["cache_control"] = {"type": "ephemeral"}
    last["content"] = content
    return [*messages[:-1], last]
