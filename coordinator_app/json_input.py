"""JSON from outside (API bodies and query strings, webhook payloads): parsed within the limits
of the parser's stack and of PostgreSQL, and checked against the JSON Schema declared for it.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from cluster_core.storable import unstorable
from coordinator_app.exceptions import InvalidRequest

# GitHub's payloads nest about 7 levels deep, the API's bodies 4. Much deeper JSON is an attack
# on recursive code (the validator, PostgreSQL's jsonb parser), not data.
MAX_DEPTH = 32
MAX_MESSAGE = 300  # of a validation error: the offending value is quoted in it


def parse(raw: bytes | str) -> Any:
    """``raw`` as JSON; InvalidRequest when malformed, nested beyond ``MAX_DEPTH``, or holding
    NaN or Infinity (Python reads them, JSON has no such numbers)."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidRequest(f"JSON nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError among them
        raise InvalidRequest(f"malformed JSON: {exc}") from exc
    if _depth(value) > MAX_DEPTH:
        raise InvalidRequest(f"JSON nested more than {MAX_DEPTH} levels deep")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth(value: Any) -> int:
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:  # deeper is refused anyway: no need to walk all of it
                children = item.values() if isinstance(item, dict) else item
                pending.extend((child, depth + 1) for child in children)
    return deepest


def nullable(schema: dict) -> dict:
    """``schema``, or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def string(column=None) -> dict:
    """A string; with ``column`` (a model's), no longer than that column holds."""
    if column is None:
        return {"type": "string"}
    return {"type": "string", "maxLength": column.type.length}


def object_of(*required: str, **properties: dict) -> dict:
    """An object with ``properties``, ``required`` among them. Other fields pass unchecked and
    are ignored: an agent of the next version, or GitHub, may send more."""
    return {"type": "object", "required": list(required), "properties": properties}


def validator(schema: dict) -> Draft202012Validator:
    """A validator of ``schema`` (itself checked now, so a bad declaration fails at import)."""
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def check(value: Any, against: Draft202012Validator, what: str) -> None:
    """InvalidRequest naming the first place where ``value`` breaks the schema, then the first
    string PostgreSQL cannot store."""
    error = best_match(against.iter_errors(value))
    if error is not None:
        where = error.json_path.replace("$", what, 1)
        message = error.message
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "…"
        raise InvalidRequest(f"{where}: {message}")
    found = unstorable(value)
    if found is not None:
        raise InvalidRequest(
            f"{found.replace('$', what, 1)}: NUL characters and unpaired surrogates cannot be "
            "stored"
        )
