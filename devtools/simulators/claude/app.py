"""The Flask app of the Claude API simulator: ``POST /v1/messages`` and friends.

``create_app(scenarios)`` builds it; the simulator's state (a ``ClaudeSimulator``) is at
``app.extensions["claude_sim"]`` for tests to inject faults and read the request log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from simulators.claude import context, sse
from simulators.claude.admin import admin
from simulators.claude.content import conversation, tool_names
from simulators.claude.exceptions import (
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
)
from simulators.claude.faults import Fault, FaultKind
from simulators.claude.models import ModelCatalog
from simulators.claude.response import Reply, build_reply, new_id
from simulators.claude.scenarios import FALLBACK_NAME, Turn, fallback_turn, select
from simulators.claude.state import (
    ClaudeSimulator,
    RequestRecord,
    ScenarioSource,
    SimulatorConfig,
)
from simulators.claude.usage import segments
from simulators.claude.validation import validate_request

logger = logging.getLogger(__name__)
EXTENSION = "claude_sim"

api = Blueprint("claude_api", __name__, url_prefix="/v1")


def create_app(
    scenarios: ScenarioSource | None = None,
    *,
    api_keys: Iterable[str] | None = None,
    config: SimulatorConfig | None = None,
    simulator: ClaudeSimulator | None = None,
) -> Flask:
    """The simulator's WSGI app, answering from ``scenarios`` (a directory, a file or dicts).

    ``api_keys`` restricts the accepted keys (None: any non-empty key). Pass ``simulator`` to
    share one state object between apps, or keep a handle on it.
    """
    if simulator is None:
        config = config or SimulatorConfig()
        if api_keys is not None:
            config = replace(config, api_keys=frozenset(api_keys))
        simulator = ClaudeSimulator(scenarios, config)
    elif scenarios is not None:
        simulator.add_scenarios(scenarios)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the real API's key order
    app.extensions[EXTENSION] = simulator
    app.extensions["claude_sim_models"] = ModelCatalog(simulator.config.models)
    app.register_blueprint(api)
    app.register_blueprint(admin)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.after_request(_add_request_id)
    return app


def get_simulator(app: Flask | None = None) -> ClaudeSimulator:
    """The ClaudeSimulator behind ``app`` (default: the current app)."""
    return (app or current_app).extensions[EXTENSION]


# --- /v1 ---------------------------------------------------------------------------------------


@api.before_request
def _authenticate() -> None:
    g.request_id = new_id("req")
    g.record = RequestRecord(
        request_id=g.request_id, path=request.path, user_agent=request.headers.get("User-Agent")
    )
    sim = get_simulator()
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    if not key:
        raise AuthenticationError("x-api-key header is required")
    if sim.config.api_keys is not None and key not in sim.config.api_keys:
        raise AuthenticationError("invalid x-api-key")
    if sim.config.require_version_header and not request.headers.get("anthropic-version"):
        raise InvalidRequestError("anthropic-version: header is required")


@api.post("/messages")
def create_message() -> Response:
    """Answer a Messages API request from the matching scenario (JSON or SSE)."""
    sim = get_simulator()
    record: RequestRecord = g.record
    body = _json_body()
    _describe(record, body)
    fault = sim.faults.take()
    if fault is not None:
        record.fault = fault.kind.value
        logger.info("Request %s: injected fault %s", g.request_id, fault.kind.value)
        error = fault.error()
        if fault.kind is FaultKind.STREAM_ERROR and not record.stream:
            error = OverloadedError("Overloaded")  # no stream to break: the plain equivalent
        if error is not None:
            raise error
        if fault.kind is FaultKind.SLOW:
            time.sleep(fault.seconds)
    validate_request(body, current_app.extensions["claude_sim_models"])
    body, applied = _as_the_model_sees_it(sim, body, record)
    reply = _reply(sim, body, record)
    if applied is not None:
        reply.context_management = {"applied_edits": applied}
    headers = {"x-simulator-scenario": record.scenario or ""}
    if body.get("stream"):
        stream = _stream(sim, reply, fault, request.environ)
        headers["Cache-Control"] = "no-cache"
        return Response(stream, status=200, headers=headers, content_type="text/event-stream")
    payload = json.dumps(reply.message(), ensure_ascii=False).encode()
    if fault is not None and fault.kind is FaultKind.DROP_STREAM:
        return Response(
            _cut_body(payload, request.environ), headers=headers, content_type="application/json"
        )
    return Response(payload, headers=headers, content_type="application/json")


@api.post("/messages/count_tokens")
def count_tokens() -> Response:
    """The input token count of a request, as ``{"input_tokens": N}``."""
    sim = get_simulator()
    body = _json_body()
    _describe(g.record, body)
    validate_request(body, current_app.extensions["claude_sim_models"], count_only=True)
    original = _tokens(sim, body)
    edited, applied = _as_the_model_sees_it(sim, body, g.record, count_only=True)
    answer: dict[str, Any] = {"input_tokens": _tokens(sim, edited)}
    if applied is not None:
        answer["context_management"] = {"original_input_tokens": original}
    g.record.usage = answer
    return _json(answer)


@api.get("/models")
def list_models() -> Response:
    """Every accepted model alias."""
    return _json(current_app.extensions["claude_sim_models"].listing())


@api.get("/models/<model_id>")
def get_model(model_id: str) -> Response:
    """One model, or 404 not_found_error."""
    catalog: ModelCatalog = current_app.extensions["claude_sim_models"]
    found = [m for m in catalog.listing()["data"] if m["id"] == model_id]  # type: ignore[index,union-attr]
    if not found:
        raise NotFoundError(f"model: {model_id}")
    return _json(found[0])


@api.after_request
def _log_request(response: Response) -> Response:
    record: RequestRecord | None = g.get("record")
    if record is not None:
        record.status = response.status_code
        get_simulator().record(record)
        logger.info(
            "Request %s: %s model=%s messages=%d scenario=%s turn=%s -> %d",
            record.request_id, record.path, record.model, record.messages,
            record.scenario, record.turn, record.status,
        )  # fmt: skip
    return response


# --- helpers -----------------------------------------------------------------------------------


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidRequestError("There was an error parsing the body of your request as JSON")
    if not isinstance(body, dict):
        raise InvalidRequestError("Input should be a valid dictionary")
    return body


def _describe(record: RequestRecord, body: dict[str, Any]) -> None:
    """Note what the client sent, before validation, so rejected requests are logged too."""
    record.body = body
    model = body.get("model")
    record.model = model if isinstance(model, str) else None
    record.stream = body.get("stream") is True
    messages = body.get("messages")
    record.messages = len(messages) if isinstance(messages, list) else 0
    record.tools = tool_names(body)


def _tokens(sim: ClaudeSimulator, body: dict[str, Any]) -> int:
    return sum(part.tokens for part in segments(body, sim.config.chars_per_token))


def _as_the_model_sees_it(
    sim: ClaudeSimulator, body: dict[str, Any], record: RequestRecord, *, count_only: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """The request after its context edits (and the edits applied, or None when it asked for
    none); a prompt that still does not fit the context window is refused."""
    edits = context.parse_edits(body, request.headers.get("anthropic-beta", ""))
    applied = None
    if edits is not None:
        body, applied = context.apply_edits(
            body, edits, lambda b: segments(b, sim.config.chars_per_token)
        )
    record.prompt_tokens, record.applied_edits = _tokens(sim, body), applied
    if not count_only:
        context.check_window(
            record.prompt_tokens, body["max_tokens"], sim.config.context_window_tokens
        )
    return body, applied


def _reply(sim: ClaudeSimulator, body: dict[str, Any], record: RequestRecord) -> Reply:
    scenario = select(sim.scenarios, body)
    if scenario is None:
        turn, number = fallback_turn(body), len(conversation(body, roles=("assistant",)))
        record.scenario = FALLBACK_NAME
        logger.warning("Request %s: no scenario matched", g.request_id)
    else:
        turn, number = scenario.turn_for(body)
        record.scenario = scenario.name
        if turn is None:
            turn = Turn.text(scenario.final_text)
        turn = turn.render(scenario.match.captures(body) or {})
    record.turn = number
    usage = sim.cache.account(str(body["model"]), segments(body, sim.config.chars_per_token))
    # Tool ids depend on the conversation so far: a replayed conversation gets the same ids.
    seed = f"{record.scenario}:{number}:{json.dumps(body['messages'], sort_keys=True)}"
    reply = build_reply(turn, body, usage, id_seed=seed, chars_per_token=sim.config.chars_per_token)
    record.stop_reason = reply.stop_reason
    record.usage = reply.message()["usage"]
    return reply


def _stream(
    sim: ClaudeSimulator, reply: Reply, fault: Fault | None, environ: dict[str, Any]
) -> Iterator[bytes]:
    delay = sim.config.stream_delay
    for sent, event in enumerate(sse.events(reply, sim.config.stream_chunk_chars)):
        if fault is not None and sent == fault.after_events:
            if fault.kind is FaultKind.DROP_STREAM:
                _cut_connection(environ)
            if fault.kind is FaultKind.STREAM_ERROR:
                yield sse.encode(sse.error_event("overloaded_error", "Overloaded"))
                return
        if delay and sent:
            time.sleep(delay)
        yield sse.encode(event)


def _cut_body(payload: bytes, environ: dict[str, Any]) -> Iterator[bytes]:
    yield payload[: len(payload) // 2]
    _cut_connection(environ)


def _cut_connection(environ: dict[str, Any]) -> None:
    """Drop the client's connection mid-response (fault injection)."""
    logger.info("Fault: cutting the connection mid-response")
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # the client may be gone already
            sock.shutdown(socket.SHUT_RDWR)
    # A ConnectionError is how the server learns the peer is gone: it stops quietly.
    raise ConnectionAbortedError("connection cut by the simulator's drop_stream fault")


def _json(
    payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _error_response(error: ApiError) -> Response:
    request_id = g.get("request_id") or new_id("req")
    g.request_id = request_id
    record: RequestRecord | None = g.get("record")
    if record is not None:
        record.error_type = error.error_type
    headers = dict(error.headers)
    if error.status in (429, 500, 529):
        headers.setdefault("x-should-retry", "true")
    return _json(error.body(request_id), error.status, headers)


def _api_error(error: ApiError) -> Response:
    return _error_response(error)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 404:
        return _error_response(NotFoundError("Not Found"))
    api_error = InvalidRequestError(error.description or error.name)
    api_error.status = status
    return _error_response(api_error)


def _unexpected_error(error: Exception) -> Response:
    logger.error("Request %s: simulator failure", g.get("request_id"), exc_info=error)
    return _error_response(ApiError("Internal server error"))


def _add_request_id(response: Response) -> Response:
    response.headers.setdefault("request-id", g.get("request_id") or new_id("req"))
    return response
