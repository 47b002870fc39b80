"""Claude's Messages API behind the ``Model`` protocol: retries with backoff, one rate gate for
every task of the agent, prompt-cache breakpoints, and the price of each turn."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import anthropic

from agent_app.config import ModelPrice
from agent_app.exceptions import Cancelled, LimitExceeded
from agent_app.model import Conversation, Turn, TurnUsage

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504, 529}
MAX_API_ATTEMPTS = 8
MAX_BACKOFF_SECONDS = 60


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


def price_of(usage: TurnUsage, price: ModelPrice) -> float:
    """Dollars for one turn's usage."""
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_write_tokens * price.cache_write
        + usage.cache_read_tokens * price.cache_read
    ) / 1_000_000


class MessagesApiModel:
    """One model of the Messages API, through the anthropic SDK (its own retries off)."""

    def __init__(
        self,
        client: anthropic.Anthropic,
        model: str,
        max_output_tokens: int,
        price: ModelPrice,
        gate: RateGate,
    ) -> None:
        self.client, self.model, self.max_output_tokens = client, model, max_output_tokens
        self.price, self.gate = price, gate

    def query(
        self,
        conversation: Conversation,
        tools: list[dict[str, Any]],
        deadline: float,
        cancel: threading.Event,
    ) -> Turn:
        """One Messages API call, retried with backoff on 429/5xx/529 and dropped connections."""
        messages = with_cache_breakpoint(conversation.messages)
        for attempt in range(1, MAX_API_ATTEMPTS + 1):
            self.gate.wait(cancel, deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LimitExceeded("seconds", -1, -1)
            try:
                response = self.client.messages.create(
                    model=self.model,
                    max_tokens=self.max_output_tokens,
                    system=conversation.system,
                    tools=tools,
                    messages=messages,
                    timeout=min(remaining, 600),
                )
                return self._turn(response)
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

    def _turn(self, response: Any) -> Turn:
        billed = response.usage
        usage = TurnUsage(
            input_tokens=billed.input_tokens,
            output_tokens=billed.output_tokens,
            cache_write_tokens=billed.cache_creation_input_tokens or 0,
            cache_read_tokens=billed.cache_read_input_tokens or 0,
        )
        return Turn(
            content=[block.model_dump(exclude_none=True) for block in response.content],
            stop_reason=response.stop_reason,
            usage=usage,
            cost_usd=price_of(usage, self.price),
            raw_usage=billed.model_dump(exclude_none=True),
        )


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    try:
        return float(exc.response.headers.get("retry-after", ""))
    except ValueError:
        return None


def with_cache_breakpoint(messages: list[dict]) -> list[dict]:
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
