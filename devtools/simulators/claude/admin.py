"""Admin endpoints under ``/_sim``: fault injection, the request log, scenarios, health.

These are for tests, demos and benchmarks on 127.0.0.1 and take no credentials.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from simulators.claude.exceptions import InvalidRequestError, ScenarioError
from simulators.claude.faults import Fault

admin = Blueprint("claude_sim_admin", __name__, url_prefix="/_sim")


def _sim() -> Any:
    return current_app.extensions["claude_sim"]


def _body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidRequestError("expected a JSON body")
    return body


@admin.get("/health")
def health() -> Response:
    """Liveness, with a few counters."""
    sim = _sim()
    return jsonify(
        status="ok",
        scenarios=len(sim.scenarios),
        requests=len(sim.requests()),
        cached_prefixes=len(sim.cache),
        pending_faults=len(sim.faults.pending()),
    )


@admin.post("/faults")
def add_faults() -> tuple[Response, int]:
    """Queue one fault (a JSON object) or several (a list) for the next requests."""
    body = _body()
    items = body if isinstance(body, list) else [body]
    try:
        faults = [Fault.from_dict(item) for item in items]
    except (TypeError, ValueError) as error:
        raise InvalidRequestError(f"fault: {error}") from error
    for fault in faults:
        _sim().faults.add(fault)
    return jsonify(faults=_sim().faults.pending()), 201


@admin.get("/faults")
def list_faults() -> Response:
    """The faults still waiting, in order."""
    return jsonify(faults=_sim().faults.pending())


@admin.delete("/faults")
def clear_faults() -> Response:
    """Cancel every waiting fault."""
    _sim().clear_faults()
    return jsonify(faults=[])


@admin.get("/requests")
def list_requests() -> Response:
    """The log of received API requests, oldest first."""
    return jsonify(requests=[dataclasses.asdict(r) for r in _sim().requests()])


@admin.delete("/requests")
def clear_requests() -> Response:
    """Empty the request log."""
    _sim().clear_requests()
    return jsonify(requests=[])


@admin.post("/reset")
def reset() -> Response:
    """Forget faults, the request log and the prompt cache (scenarios stay)."""
    _sim().reset()
    return jsonify(status="ok")


@admin.get("/scenarios")
def list_scenarios() -> Response:
    """Names and sources of the loaded scenarios, in load order."""
    return jsonify(
        scenarios=[
            {"name": s.name, "priority": s.priority, "turns": len(s.steps), "source": s.source}
            for s in _sim().scenarios
        ]
    )


@admin.post("/scenarios")
def add_scenarios() -> tuple[Response, int]:
    """Load scenarios given as JSON (one or a list); ``?replace=true`` drops the others first."""
    body = _body()
    items = body if isinstance(body, list) else [body]
    replace = request.args.get("replace", "").lower() in ("1", "true", "yes")
    try:
        loaded = _sim().add_scenarios(items, replace=replace)
    except ScenarioError as error:
        raise InvalidRequestError(str(error)) from error
    return jsonify(loaded=[s.name for s in loaded]), 201
