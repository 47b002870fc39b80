"""One error format for the whole API: ``{"error": {"status", "code", "message"}}``."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, request
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from coordinator_app.exceptions import CoordinatorError, RateLimited

logger = logging.getLogger(__name__)


def error_response(status: int, message: str, code: str | None = None, **extra):
    """A JSON error body with ``status``; ``code`` is a stable machine-readable name."""
    body = {"error": {"status": status, "code": code or _code(status), "message": message}}
    body["error"].update(extra)
    response = jsonify(body)
    response.status_code = status
    return response


def _code(status: int) -> str:
    return {
        400: "invalid_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
        503: "unavailable",
    }.get(status, "server_error")


def _wants_json() -> bool:
    return not request.path.startswith("/admin")


def register_error_handlers(app: Flask) -> None:
    """JSON errors for the API and webhooks; the admin pages keep Flask's HTML pages."""

    @app.errorhandler(CoordinatorError)
    def _coordinator_error(exc: CoordinatorError):
        _rollback()
        response = error_response(exc.status, str(exc), exc.code)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        _rollback()
        if not _wants_json():
            return exc
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(OperationalError)
    def _database_unavailable(exc: OperationalError):
        # PostgreSQL restarting or out of reach: the caller tries again (agents do), no trace.
        _rollback()
        logger.warning("Database unavailable on %s %s: %s", request.method, request.path,
                       str(exc.orig or exc).splitlines()[0])  # fmt: skip
        response = error_response(503, "the database is unavailable; try again shortly")
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        _rollback()
        logger.error("Unhandled error on %s %s", request.method, request.path, exc_info=exc)
        return error_response(500, "internal error; the coordinator's log has the details")


def _rollback() -> None:
    session = g.get("db_session")
    if session is not None:
        try:
            session.rollback()
        except SQLAlchemyError:  # the connection is gone with the database; the pool knows
            logger.debug("rollback after an error failed", exc_info=True)
