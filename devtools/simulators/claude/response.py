"""Turn a scripted turn into a Messages API response: ids, max_tokens and stop sequences, usage."""

from __future__ import annotations

import hashlib
import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

from simulators.claude.scenarios import Turn
from simulators.claude.usage import Usage, estimate_tokens

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, seed: str | None = None) -> str:
    """An id shaped like the real API's (``msg_01…``, ``toolu_01…``, ``req_01…``).

    With ``seed`` the id is derived from it, so a replayed conversation gets the same tool ids.
    """
    if seed is None:
        suffix = "".join(secrets.choice(_ALPHABET) for _ in range(22))
    else:
        number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
        chars = []
        for _ in range(22):
            number, digit = divmod(number, len(_ALPHABET))
            chars.append(_ALPHABET[digit])
        suffix = "".join(chars)
    return f"{prefix}_01{suffix}"


@dataclass
class Reply:
    """A complete response, before it is sent as JSON or as SSE events."""

    message_id: str
    model: str
    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    usage: Usage
    output_tokens: int
    # What context editing cleared ({"applied_edits": [...]}), when the request asked for it.
    context_management: dict[str, Any] | None = None

    def message(self) -> dict[str, Any]:
        """The non-streaming response body."""
        body = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content,
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": self.usage.as_dict(self.output_tokens),
        }
        if self.context_management is not None:
            body["context_management"] = self.context_management
        return body


def block_tokens(block: dict[str, Any], chars_per_token: float = 4.0) -> int:
    """Output tokens of one content block."""
    if block["type"] == "text":
        return estimate_tokens(block["text"], chars_per_token)
    text = block["name"] + json.dumps(block["input"], separators=(",", ":"))
    return estimate_tokens(text, chars_per_token) + 8  # the tool-call framing costs tokens too


def build_reply(
    turn: Turn,
    body: dict[str, Any],
    usage: Usage,
    *,
    id_seed: str,
    chars_per_token: float = 4.0,
) -> Reply:
    """The reply to ``body`` from ``turn``, cut at a stop sequence or at ``max_tokens``."""
    max_tokens = int(body["max_tokens"])
    stop_sequences = [s for s in body.get("stop_sequences") or [] if isinstance(s, str) and s]
    content: list[dict[str, Any]] = []
    stop_reason, stop_sequence = turn.stop_reason, None
    spent = 0
    for index, scripted in enumerate(turn.content):
        block = dict(scripted)
        if block["type"] == "tool_use":
            block = {
                "type": "tool_use",
                "id": block.get("id") or new_id("toolu", f"{id_seed}:{index}"),
                "name": block["name"],
                "input": block["input"],
            }
        else:
            cut = _first_stop(block["text"], stop_sequences)
            if cut is not None:
                block["text"] = block["text"][: cut[0]]
                stop_reason, stop_sequence = "stop_sequence", cut[1]
        cost = block_tokens(block, chars_per_token)
        if spent + cost > max_tokens:
            # Out of tokens: a text block is cut short, a tool call is not emitted at all.
            room = max_tokens - spent
            if block["type"] == "text" and room > 0:
                content.append(
                    {"type": "text", "text": block["text"][: int(room * chars_per_token)]}
                )
                spent = max_tokens
            stop_reason, stop_sequence = "max_tokens", None
            break
        if block["type"] != "text" or block["text"]:
            content.append(block)
        spent += cost
        if stop_reason == "stop_sequence":
            break
    return Reply(
        message_id=new_id("msg"),
        model=str(body["model"]),
        content=content,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        usage=usage,
        output_tokens=max(1, spent),
    )


def _first_stop(text: str, stop_sequences: list[str]) -> tuple[int, str] | None:
    hits = [(text.find(s), s) for s in stop_sequences if s in text]
    return min(hits) if hits else None
