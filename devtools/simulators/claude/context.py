"""The context window and context editing (``context_management``), as the real API applies them.

A prompt larger than the model's window is refused with the real API's 400 messages. With the
``context-management-2025-06-27`` beta, the request's ``clear_tool_uses_20250919`` edit is
applied on the server side before anything else sees the prompt: once the prompt is above the
edit's trigger, the results of the oldest tool uses (all but the newest ``keep``, leaving out
``exclude_tools``) are replaced by a placeholder, unless that frees fewer tokens than
``clear_at_least``. The client keeps and sends its whole history; the response says what was
cleared in ``context_management.applied_edits``. The placeholder's exact words are not
documented by the real API; the simulator's are its own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.claude.content import blocks_of
from simulators.claude.exceptions import InvalidRequestError
from simulators.claude.usage import Segment

BETA = "context-management-2025-06-27"
CLEAR_TOOL_USES = "clear_tool_uses_20250919"
CLEAR_THINKING = "clear_thinking_20251015"
PLACEHOLDER = "[tool result cleared by context management]"
# The real API's defaults for clear_tool_uses_20250919.
DEFAULT_TRIGGER = {"type": "input_tokens", "value": 100_000}
DEFAULT_KEEP = 3


def check_window(prompt_tokens: int, max_tokens: int | None, window: int) -> None:
    """Refuse a prompt (with its ``max_tokens``) that does not fit ``window`` tokens."""
    if prompt_tokens > window:
        raise InvalidRequestError(f"prompt is too long: {prompt_tokens} tokens > {window} maximum")
    if max_tokens is not None and prompt_tokens + max_tokens > window:
        raise InvalidRequestError(
            f"input length and `max_tokens` exceed context limit: {prompt_tokens} + "
            f"{max_tokens} > {window}, decrease input length or `max_tokens` and try again"
        )


@dataclass(frozen=True)
class ClearToolUses:
    """One ``clear_tool_uses_20250919`` edit, validated."""

    trigger_type: str
    trigger: int
    keep: int
    clear_at_least: int
    exclude_tools: frozenset[str]
    clear_inputs: bool | frozenset[str]

    @classmethod
    def parse(cls, where: str, edit: dict[str, Any]) -> ClearToolUses:
        trigger = edit.get("trigger", DEFAULT_TRIGGER)
        trigger_type = _typed(f"{where}.trigger", trigger, ("input_tokens", "tool_uses"))
        keep = edit.get("keep", {"type": "tool_uses", "value": DEFAULT_KEEP})
        _typed(f"{where}.keep", keep, ("tool_uses",))
        at_least = edit.get("clear_at_least")
        if at_least is not None:
            _typed(f"{where}.clear_at_least", at_least, ("input_tokens",))
        exclude = edit.get("exclude_tools") or []
        if not isinstance(exclude, list) or not all(isinstance(n, str) for n in exclude):
            raise InvalidRequestError(f"{where}.exclude_tools: Input should be a valid list")
        inputs = edit.get("clear_tool_inputs", False)
        if isinstance(inputs, list):
            inputs = frozenset(str(n) for n in inputs)
        elif not isinstance(inputs, bool):
            raise InvalidRequestError(f"{where}.clear_tool_inputs: Input should be a valid boolean")
        return cls(
            trigger_type,
            trigger["value"],
            keep["value"],
            at_least["value"] if at_least else 0,
            frozenset(exclude),
            inputs,
        )


def parse_edits(body: dict[str, Any], betas: str) -> list[ClearToolUses] | None:
    """The request's context edits (None: it asks for none); InvalidRequestError if they are
    malformed or the beta is not enabled."""
    management = body.get("context_management")
    if management is None or management == {}:  # Claude Code sends {}: nothing to apply
        return None
    if BETA not in [b.strip() for b in betas.split(",")]:
        raise InvalidRequestError("context_management: Extra inputs are not permitted")
    edits = management.get("edits") if isinstance(management, dict) else None
    if not isinstance(edits, list):
        raise InvalidRequestError("context_management.edits: Input should be a valid list")
    parsed = []
    for index, edit in enumerate(edits):
        where = f"context_management.edits.{index}"
        kind = edit.get("type") if isinstance(edit, dict) else None
        if kind == CLEAR_TOOL_USES:
            parsed.append(ClearToolUses.parse(where, edit))
        elif kind == CLEAR_THINKING:
            if index != 0:
                raise InvalidRequestError(
                    f"{where}: `{CLEAR_THINKING}` must come first in context_management.edits"
                )  # no thinking blocks are simulated: nothing to clear
        else:
            raise InvalidRequestError(
                f"{where}: Input tag '{kind}' found using 'type' does not match any of the "
                f"expected tags: '{CLEAR_TOOL_USES}', '{CLEAR_THINKING}'"
            )
    return parsed


def apply_edits(
    body: dict[str, Any],
    edits: list[ClearToolUses],
    measure: Callable[[dict[str, Any]], list[Segment]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``body`` as the model sees it after ``edits``, and the ``applied_edits`` report."""
    applied = []
    for edit in edits:
        before = sum(part.tokens for part in measure(body))
        uses = _tool_uses(body)
        over = (
            before > edit.trigger
            if edit.trigger_type == "input_tokens"
            else (len(uses) > edit.trigger)
        )
        candidates = [use for use in uses if use["name"] not in edit.exclude_tools]
        doomed = candidates[: max(0, len(candidates) - edit.keep)]
        if not over or not doomed:
            continue
        edited = _cleared(body, {use["id"] for use in doomed}, edit.clear_inputs)
        freed = before - sum(part.tokens for part in measure(edited))
        if freed < edit.clear_at_least:
            continue
        body = edited
        applied.append(
            {
                "type": CLEAR_TOOL_USES,
                "cleared_tool_uses": len(doomed),
                "cleared_input_tokens": freed,
            }
        )
    return body, applied


def _tool_uses(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        block
        for message in body.get("messages") or []
        if message.get("role") == "assistant"
        for block in blocks_of(message.get("content"))
        if block.get("type") == "tool_use"
    ]


def _cleared(
    body: dict[str, Any], ids: set[str], clear_inputs: bool | frozenset[str]
) -> dict[str, Any]:
    edited = copy.deepcopy(body)
    for message in edited["messages"]:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if block.get("type") == "tool_result" and block.get("tool_use_id") in ids:
                block["content"] = PLACEHOLDER
            elif (
                block.get("type") == "tool_use"
                and block.get("id") in ids
                and (clear_inputs is True or block.get("name") in (clear_inputs or ()))
            ):
                block["input"] = {}
    return edited


def _typed(where: str, value: object, types: tuple[str, ...]) -> str:
    if not isinstance(value, dict) or value.get("type") not in types:
        allowed = " or ".join(f"'{t}'" for t in types)
        raise InvalidRequestError(f"{where}.type: Input should be {allowed}")
    number = value.get("value")
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise InvalidRequestError(f"{where}.value: Input should be a non-negative integer")
    return str(value["type"])
