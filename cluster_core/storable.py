"""Text PostgreSQL can store: what the coordinator refuses in its input, and what an agent
mends in its reports before sending them."""

from __future__ import annotations

import re
from typing import Any

# What PostgreSQL cannot store in text or jsonb: NUL, and surrogates (not valid UTF-8) left
# unpaired by a "\ud800" escape.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def unstorable(value: Any, path: str = "$") -> str | None:
    """Where ``value`` holds a string (or key) PostgreSQL cannot store, as a JSON path like
    ``$.events[0].kind``; None when it holds none."""
    if isinstance(value, str):
        return path if UNSTORABLE.search(value) else None
    if isinstance(value, list):
        items = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    elif isinstance(value, dict):
        items = ((f"{path}.{key}", item) for key, item in value.items())
        if any(UNSTORABLE.search(key) for key in value):
            return path
    else:
        return None
    return next((found for p, item in items if (found := unstorable(item, p))), None)


def storable(value: Any) -> Any:
    """``value`` with what PostgreSQL cannot store in its strings and keys replaced by U+FFFD."""
    if isinstance(value, str):
        return UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value
