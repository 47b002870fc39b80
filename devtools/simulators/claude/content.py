"""Read the parts of a Messages API request that scenarios match on (system, user text, results)."""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]


def blocks_of(content: object) -> list[dict[str, Any]]:
    """Content as a list of blocks (a plain string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


def text_of(content: object) -> str:
    """All the text in ``content``: text blocks and tool results, one per line."""
    parts: list[str] = []
    for block in blocks_of(content):
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append(text_of(block.get("content", "")))
    return "\n".join(parts)


def system_text(body: dict[str, Any]) -> str:
    """The system prompt, plus any ``role: "system"`` messages (Claude Code sends those)."""
    parts = [text_of(body.get("system", ""))]
    parts.extend(
        text_of(message.get("content")) for message in conversation(body, roles=("system",))
    )
    return "\n".join(part for part in parts if part)


def conversation(
    body: dict[str, Any], roles: tuple[str, ...] = ("user", "assistant")
) -> list[Message]:
    """The messages of ``body`` whose role is one of ``roles``, in order."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict) and m.get("role") in roles]


def first_user_text(body: dict[str, Any]) -> str:
    """Text of the first user message (the task prompt)."""
    users = conversation(body, roles=("user",))
    return text_of(users[0].get("content")) if users else ""


def tool_results(message: Message) -> list[dict[str, Any]]:
    """The tool_result blocks of a (user) message."""
    return [b for b in blocks_of(message.get("content")) if b.get("type") == "tool_result"]


def tool_result_text(message: Message) -> str:
    """Text of every tool_result in ``message``, one per line."""
    return "\n".join(text_of(block.get("content", "")) for block in tool_results(message))


def tool_uses(message: Message) -> list[dict[str, Any]]:
    """The tool_use blocks of an (assistant) message."""
    return [b for b in blocks_of(message.get("content")) if b.get("type") == "tool_use"]


def tool_names(body: dict[str, Any]) -> list[str]:
    """Names of the tools declared in the request."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [str(t.get("name")) for t in tools if isinstance(t, dict) and "name" in t]
