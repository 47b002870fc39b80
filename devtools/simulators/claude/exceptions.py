"""Errors of the Claude API simulator: API errors in the real wire shape, and scenario errors."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered to the client as ``{"type": "error", "error": {...}}``."""

    status: int = 500
    error_type: str = "api_error"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})

    def body(self, request_id: str | None = None) -> dict[str, object]:
        """The JSON body the real API sends for this error."""
        body: dict[str, object] = {
            "type": "error",
            "error": {"type": self.error_type, "message": self.message},
        }
        if request_id:
            body["request_id"] = request_id
        return body


class InvalidRequestError(ApiError):
    """400: the request body or headers are not valid."""

    status = 400
    error_type = "invalid_request_error"


class AuthenticationError(ApiError):
    """401: missing or wrong API key."""

    status = 401
    error_type = "authentication_error"


class NotFoundError(ApiError):
    """404: unknown model or path."""

    status = 404
    error_type = "not_found_error"


class RateLimitError(ApiError):
    """429: too many requests (injected)."""

    status = 429
    error_type = "rate_limit_error"


class InternalServerError(ApiError):
    """500: an unexpected server error (injected, or a bug in the simulator)."""

    status = 500
    error_type = "api_error"


class OverloadedError(ApiError):
    """529: the API is temporarily overloaded (injected)."""

    status = 529
    error_type = "overloaded_error"


class ScenarioError(ValueError):
    """A scenario file or dict does not follow the scenario format."""
