"""Validate a Messages API request the way the real API does, with its error messages."""

from __future__ import annotations

import itertools
import re
from typing import Any

from simulators.claude.content import blocks_of, tool_results, tool_uses
from simulators.claude.exceptions import InvalidRequestError, NotFoundError
from simulators.claude.models import ModelCatalog

# Client and server tools by type, with the one name each must carry (None: no fixed name).
TOOL_TYPES: dict[str, str | None] = {
    "bash_20241022": "bash",
    "bash_20250124": "bash",
    "text_editor_20241022": "str_replace_editor",
    "text_editor_20250124": "str_replace_editor",
    "text_editor_20250429": "str_replace_based_edit_tool",
    "text_editor_20250728": "str_replace_based_edit_tool",
    "computer_20241022": "computer",
    "computer_20250124": "computer",
    "computer_20251124": "computer",
    "memory_20250818": "memory",
    "web_search_20250305": "web_search",
    "web_search_20260209": "web_search",
    "web_fetch_20250910": "web_fetch",
    "web_fetch_20260209": "web_fetch",
    "code_execution_20250522": "code_execution",
    "code_execution_20250825": "code_execution",
    "tool_search_tool_regex_20251119": "tool_search_tool_regex",
    "tool_search_tool_bm25_20251119": "tool_search_tool_bm25",
    "mcp_toolset": None,
}
# Block type -> (the only role that may send it, its required fields and their types).
_BLOCK_RULES: dict[str, tuple[str | None, dict[str, type]]] = {
    "text": (None, {"text": str}),
    "tool_use": ("assistant", {"id": str, "name": str, "input": dict}),
    "tool_result": ("user", {"tool_use_id": str}),
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_ROLES = ("user", "assistant")
# Claude Code puts environment details in a role "system" message: tolerated, then ignored.
_TOLERATED_ROLES = ("system",)


def validate_request(body: object, catalog: ModelCatalog, *, count_only: bool = False) -> None:
    """Raise InvalidRequestError (400) or NotFoundError (404) if the request is not valid."""
    if not isinstance(body, dict):
        raise InvalidRequestError("Input should be a valid dictionary")
    _validate_model(body, catalog)
    if not count_only:
        _validate_max_tokens(body)
    _validate_sampling(body)
    _validate_system(body.get("system"))
    _validate_messages(body)
    _validate_tools(body)
    _validate_cache_breakpoints(body)


def _validate_model(body: dict[str, Any], catalog: ModelCatalog) -> None:
    model = body.get("model")
    if model is None:
        raise InvalidRequestError("model: Field required")
    if not isinstance(model, str):
        raise InvalidRequestError("model: Input should be a valid string")
    if not catalog.is_known(model):
        raise NotFoundError(f"model: {model}")


def _validate_max_tokens(body: dict[str, Any]) -> None:
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequestError("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise InvalidRequestError("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise InvalidRequestError("max_tokens: Input should be greater than or equal to 1")


def _validate_sampling(body: dict[str, Any]) -> None:
    for field, low, high in (("temperature", 0.0, 1.0), ("top_p", 0.0, 1.0)):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequestError(f"{field}: Input should be a valid number")
        if not low <= value <= high:
            raise InvalidRequestError(f"{field}: Input should be between {low:g} and {high:g}")
    stop = body.get("stop_sequences")
    if stop is not None and (
        not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop)
    ):
        raise InvalidRequestError("stop_sequences: Input should be a list of non-empty strings")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidRequestError("stream: Input should be a valid boolean")


def _validate_system(system: object) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise InvalidRequestError("system: Input should be a valid string or a list of blocks")
    for index, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidRequestError(f"system.{index}.type: Input should be 'text'")
        if not isinstance(block.get("text"), str):
            raise InvalidRequestError(f"system.{index}.text: Field required")


def _validate_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequestError("messages: Field required")
    if not isinstance(messages, list):
        raise InvalidRequestError("messages: Input should be a valid list")
    if not messages:
        raise InvalidRequestError("messages: at least one message is required")
    indexed: list[tuple[int, dict[str, Any]]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages.{index}: Input should be a valid dictionary")
        role = message.get("role")
        if role in _TOLERATED_ROLES:
            continue
        if role not in _ROLES:
            raise InvalidRequestError(
                f"messages.{index}.role: Input should be 'user' or 'assistant'"
            )
        _validate_content(index, message, last=index == len(messages) - 1)
        indexed.append((index, message))
    if not indexed:
        raise InvalidRequestError("messages: at least one message is required")
    if indexed[0][1]["role"] != "user":
        raise InvalidRequestError('messages: first message must use the "user" role')
    for (_, previous), (_, current) in itertools.pairwise(indexed):
        if previous["role"] == current["role"]:
            raise InvalidRequestError(
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{current["role"]}" roles in a row'
            )
    _validate_tool_pairing(indexed)


def _validate_content(index: int, message: dict[str, Any], *, last: bool) -> None:
    content = message.get("content")
    where = f"messages.{index}.content"
    if content is None:
        raise InvalidRequestError(f"{where}: Field required")
    if isinstance(content, str):
        # The real API lets only a final (prefill) assistant message be empty.
        if not content and not (last and message["role"] == "assistant"):
            raise InvalidRequestError("messages: text content blocks must be non-empty")
        return
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}: Input should be a valid string or list")
    for position, block in enumerate(content):
        _validate_block(f"{where}.{position}", block, message["role"])


def _validate_block(where: str, block: object, role: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise InvalidRequestError(f"{where}.type: Field required")
    kind = block["type"]
    if kind not in _BLOCK_RULES:
        return  # images, documents, thinking...: passed on as they are
    owner, fields = _BLOCK_RULES[kind]
    if owner is not None and role != owner:
        raise InvalidRequestError(f"{where}: `{kind}` blocks are only allowed in {owner} messages")
    for field, expected in fields.items():
        if not isinstance(block.get(field), expected):
            raise InvalidRequestError(f"{where}.{kind}.{field}: Field required")
    if kind == "text" and not block["text"]:
        raise InvalidRequestError("messages: text content blocks must be non-empty")
    if kind == "tool_result" and not isinstance(block.get("content", ""), str | list):
        raise InvalidRequestError(f"{where}.tool_result.content: Input should be a valid list")


def _validate_tool_pairing(indexed: list[tuple[int, dict[str, Any]]]) -> None:
    """Every tool_use is answered by a tool_result in the very next (user) message."""
    for position, (index, message) in enumerate(indexed):
        if message["role"] == "user":
            expected = (
                {b["id"] for b in tool_uses(indexed[position - 1][1])} if position > 0 else set()
            )
            for block_index, block in enumerate(blocks_of(message["content"])):
                if block.get("type") == "tool_result" and block["tool_use_id"] not in expected:
                    raise InvalidRequestError(
                        f"messages.{index}.content.{block_index}: unexpected `tool_use_id` found "
                        f"in `tool_result` blocks: {block['tool_use_id']}. Each `tool_result` "
                        "block must have a corresponding `tool_use` block in the previous message."
                    )
            continue
        ids = [b["id"] for b in tool_uses(message)]
        if not ids or position == len(indexed) - 1:
            continue
        answered = {b["tool_use_id"] for b in tool_results(indexed[position + 1][1])}
        missing = [tool_id for tool_id in ids if tool_id not in answered]
        if missing:
            raise InvalidRequestError(
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )


def _validate_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is None:
        _validate_tool_choice(body, [])
        return
    if not isinstance(tools, list):
        raise InvalidRequestError("tools: Input should be a valid list")
    names: list[str] = []
    for index, tool in enumerate(tools):
        names.append(_validate_tool(index, tool))
    if len(set(names)) != len(names):
        raise InvalidRequestError("tools: Tool names must be unique.")
    _validate_tool_choice(body, names)


def _validate_tool(index: int, tool: object) -> str:
    where = f"tools.{index}"
    if not isinstance(tool, dict):
        raise InvalidRequestError(f"{where}: Input should be a valid dictionary")
    kind = tool.get("type")
    if kind is None or kind == "custom":
        name = tool.get("name")
        if not isinstance(name, str):
            raise InvalidRequestError(f"{where}.custom.name: Field required")
        if not _TOOL_NAME.match(name):
            raise InvalidRequestError(
                f"{where}.custom.name: String should match pattern '{_TOOL_NAME.pattern}'"
            )
        schema = tool.get("input_schema")
        if schema is None:
            raise InvalidRequestError(f"{where}.custom.input_schema: Field required")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise InvalidRequestError(f"{where}.custom.input_schema.type: Input should be 'object'")
        return name
    if kind not in TOOL_TYPES:
        expected = ", ".join(f"'{t}'" for t in ("custom", *TOOL_TYPES))
        raise InvalidRequestError(
            f"{where}: Input tag '{kind}' found using 'type' does not match any of the "
            f"expected tags: {expected}"
        )
    required_name = TOOL_TYPES[kind]
    name = tool.get("name", tool.get("mcp_server_name"))
    if required_name is not None and name != required_name:
        raise InvalidRequestError(f"{where}.{kind}.name: Input should be '{required_name}'")
    if kind.startswith("computer_"):
        for field in ("display_width_px", "display_height_px"):
            if not isinstance(tool.get(field), int):
                raise InvalidRequestError(f"{where}.{kind}.{field}: Field required")
    return str(name)


MAX_CACHE_BREAKPOINTS = 4


def _validate_cache_breakpoints(body: dict[str, Any]) -> None:
    """The real API takes at most four blocks marked with cache_control."""
    blocks = [*(body.get("tools") or []), *blocks_of(body.get("system"))]
    for message in body["messages"]:
        blocks.extend(blocks_of(message.get("content")))
    found = sum(1 for block in blocks if isinstance(block, dict) and block.get("cache_control"))
    if found > MAX_CACHE_BREAKPOINTS:
        raise InvalidRequestError(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}."
        )


def _validate_tool_choice(body: dict[str, Any], names: list[str]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise InvalidRequestError(
            "tool_choice: Input should be one of type 'auto', 'any', 'tool' or 'none'"
        )
    if choice["type"] == "tool" and choice.get("name") not in names:
        raise InvalidRequestError(
            f"tool_choice: Tool '{choice.get('name')}' not found in the provided tools"
        )
