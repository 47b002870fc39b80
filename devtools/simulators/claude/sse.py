"""Server-sent events of a streamed reply, in the order and shapes the real API sends them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from simulators.claude.response import Reply


def encode(event: dict[str, Any]) -> bytes:
    """One SSE frame; every frame names its event, as the real API does."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


def chunk_text(text: str, size: int) -> list[str]:
    """``text`` in pieces of about ``size`` characters, split after spaces where possible."""
    pieces: list[str] = []
    while len(text) > size:
        cut = text.rfind(" ", 0, size) + 1 or size
        pieces.append(text[:cut])
        text = text[cut:]
    if text:
        pieces.append(text)
    return pieces


def events(reply: Reply, chunk_chars: int = 24) -> Iterator[dict[str, Any]]:
    """The stream's events: message_start, ping, the blocks, message_delta, message_stop."""
    start = reply.message()
    start.update(content=[], stop_reason=None, stop_sequence=None)
    start.pop("context_management", None)  # it comes with the final message_delta
    # message_start carries the input side of usage; output is counted in message_delta.
    start["usage"] = reply.usage.as_dict(output_tokens=1)
    yield {"type": "message_start", "message": start}
    for index, block in enumerate(reply.content):
        if block["type"] == "text":
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            if index == 0:
                yield {"type": "ping"}
            for piece in chunk_text(block["text"], chunk_chars):
                yield {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
        else:
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {**block, "input": {}},
            }
            if index == 0:
                yield {"type": "ping"}
            # The real API opens every tool input with an empty partial_json.
            partial = json.dumps(block["input"], separators=(",", ":"), ensure_ascii=False)
            for piece in ["", *chunk_text(partial, chunk_chars)]:
                yield {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
        yield {"type": "content_block_stop", "index": index}
    if not reply.content:
        yield {"type": "ping"}
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
        "usage": {"output_tokens": reply.output_tokens},
    }
    if reply.context_management is not None:
        delta["context_management"] = reply.context_management
    yield delta
    yield {"type": "message_stop"}


def error_event(error_type: str, message: str) -> dict[str, Any]:
    """An ``error`` event, which the real API sends when a stream fails after it started."""
    return {"type": "error", "error": {"type": error_type, "message": message}}
