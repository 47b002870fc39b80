"""Claude's Messages API behind the ``Model`` protocol: retries with backoff, one rate gate for
every task of the agent, prompt-cache breakpoints, context management (agent_app.context) with
recovery from a request refused as too long, and the price of each turn."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import anthropic

from agent_app import context
from agent_app.config import ModelPrice
from agent_app.context import ContextPolicy
from agent_app.exceptions import Cancelled, ContextExhausted, LimitExceeded
from agent_app.model import Conversation, Turn, TurnUsage

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504, 529}
MAX_API_ATTEMPTS = 8
MAX_BACKOFF_SECONDS = 60
# A request refused as too long is made smaller and sent again at most this many times.
MAX_TOO_LONG_RECOVERIES = 2
MIN_OUTPUT_TOKENS = 1024  # below this, lowering max_tokens is no way out


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
        context_policy: ContextPolicy | None = None,
        caching: bool = True,
    ) -> None:
        """``caching``: mark cache breakpoints (off only to measure what caching saves)."""
        self.client, self.model, self.max_output_tokens = client, model, max_output_tokens
        self.price, self.gate = price, gate
        self.context = context_policy or ContextPolicy()
        self.caching = caching

    def query(
        self,
        conversation: Conversation,
        tools: list[dict[str, Any]],
        deadline: float,
        cancel: threading.Event,
    ) -> Turn:
        """One Messages API call, retried with backoff on 429/5xx/529 and dropped connections,
        and made smaller when the API refuses it as too long."""
        edits = self._keep_within_window(conversation)
        max_tokens, recoveries = self.max_output_tokens, 0
        for attempt in range(1, MAX_API_ATTEMPTS + 1):
            self.gate.wait(cancel, deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LimitExceeded("seconds", -1, -1)
            try:
                response = self._create(conversation, tools, max_tokens, min(remaining, 600))
                return self._turn(response, conversation, edits)
            except anthropic.BadRequestError as exc:
                sizes = context.too_long(_error_message(exc))
                if sizes is None:
                    raise
                if recoveries == MAX_TOO_LONG_RECOVERIES:
                    raise ContextExhausted(_error_message(exc)) from exc
                recoveries += 1
                max_tokens = self._make_room(conversation, sizes, max_tokens, edits)
                continue
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

    def _create(
        self, conversation: Conversation, tools: list[dict], max_tokens: int, timeout: float
    ) -> Any:
        request = {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": conversation.system,
            "tools": tools,
            "messages": with_cache_breakpoint(conversation.messages),
            "timeout": timeout,
        }
        if not self.caching:
            request.update(
                system=without_cache_control(conversation.system),
                messages=[
                    {**message, "content": without_cache_control(message["content"])}
                    for message in conversation.messages
                ],
            )
        if self.context.editing == "api" and conversation.cleared_results:
            results = len(context.tool_results(conversation.messages))
            edits = context.api_edits(results, conversation.cleared_results)
            return self.client.beta.messages.create(
                betas=[context.BETA], context_management=edits, **request
            )
        return self.client.messages.create(**request)

    def _keep_within_window(self, conversation: Conversation) -> list[dict[str, Any]]:
        """Sweep old tool output when the prompt has grown past the trigger
        (agent_app.context); returns what was swept, for the turn's record."""
        new = conversation.messages[conversation.counted_messages :]
        size = conversation.counted_tokens + context.estimate(new)
        if size <= self.context.trigger:
            return []
        return self._sweep(conversation, size, self.context.low_water, self.context.keep)

    def _make_room(
        self,
        conversation: Conversation,
        sizes: tuple[int, int, int],
        max_tokens: int,
        edits: list[dict[str, Any]],
    ) -> int:
        """After a refusal as too long: a lower max_tokens where that is enough, else a
        harder sweep (down to half the real window, all but the newest result); returns the
        max_tokens to ask for."""
        prompt, asked, window = sizes
        room = window - prompt - 256
        if asked and room >= MIN_OUTPUT_TOKENS:
            logger.warning("Prompt of %s tokens: asking for %s output tokens", prompt, room)
            return min(max_tokens, room)
        target = min(self.context.low_water, window // 2)
        swept = self._sweep(conversation, prompt, target, keep=1)
        if not swept:
            raise ContextExhausted(
                f"the conversation does not fit the model's context window ({prompt} tokens > "
                f"{window}) and holds no tool output left to clear"
            )
        edits.extend(swept)
        return max_tokens

    def _sweep(
        self, conversation: Conversation, size: int, target: int, keep: int
    ) -> list[dict[str, Any]]:
        """Clear the oldest tool results until the prompt of ``size`` tokens is down to about
        ``target``, never the newest ``keep``: in the history ("client") or by telling the API
        ("api"). Returns the sweep for the turn's record (nothing if nothing was left)."""
        results = context.tool_results(conversation.messages)
        before = conversation.cleared_results
        after, freed = context.sweep(results, before, keep, size - target)
        if after == before:
            return []
        if self.context.editing == "client":
            for block in results[before:after]:
                block["content"] = context.PLACEHOLDER
        conversation.cleared_results = after
        conversation.counted_tokens = size - freed
        conversation.counted_messages = len(conversation.messages)
        logger.info(
            "Context: prompt of ~%s tokens; %s more old tool results cleared (~%s tokens, by "
            "the %s)", size, after - before, freed, self.context.editing
        )  # fmt: skip
        return [
            {
                "by": self.context.editing,
                "cleared_tool_results": after - before,
                "cleared_tokens_estimate": freed,
                "prompt_tokens_before": size,
            }
        ]

    def _turn(self, response: Any, conversation: Conversation, edits: list[dict]) -> Turn:
        billed = response.usage
        usage = TurnUsage(
            input_tokens=billed.input_tokens,
            output_tokens=billed.output_tokens,
            cache_write_tokens=billed.cache_creation_input_tokens or 0,
            cache_read_tokens=billed.cache_read_input_tokens or 0,
        )
        if self.context.editing == "api" and conversation.cleared_results:
            applied = getattr(response, "context_management", None)
            if not getattr(applied, "applied_edits", None):
                logger.warning(
                    "The API applied no context edit although %s tool results were to be "
                    "cleared (does a gateway drop the %s beta? context_editing = \"client\" "
                    "clears them in the agent)", conversation.cleared_results, context.BETA
                )  # fmt: skip
        # What the model read (after any clearing): the base of the next estimate.
        conversation.counted_tokens = usage.prompt_tokens
        conversation.counted_messages = len(conversation.messages)
        return Turn(
            content=[block.model_dump(exclude_none=True) for block in response.content],
            stop_reason=response.stop_reason,
            usage=usage,
            cost_usd=price_of(usage, self.price),
            raw_usage=billed.model_dump(exclude_none=True),
            context_edits=edits,
        )


def _error_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    return str(error.get("message") or exc.message)


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


def without_cache_control(blocks: list[dict] | str) -> list[dict] | str:
    """``blocks`` (a message's content or the system prompt) with no cache breakpoint."""
    if isinstance(blocks, str):
        return blocks
    return [{k: v for k, v in block.items() if k != "cache_control"} for block in blocks]
