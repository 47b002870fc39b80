"""Errors the simulator answers with, each carrying GitHub's status code and message."""

from __future__ import annotations

DOCS = "https://docs.github.com/rest"


class ApiError(Exception):
    """An error GitHub would answer with ``status`` and a JSON body."""

    status = 500
    default_message = "Server Error"

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: list[dict] | None = None,
        documentation_url: str = DOCS,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors = errors
        self.documentation_url = documentation_url
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict:
        """The JSON body GitHub sends for this error."""
        body: dict = {"message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body["documentation_url"] = self.documentation_url
        body["status"] = str(self.status)
        return body


class BadRequest(ApiError):
    """400: the body is not valid JSON or has the wrong type."""

    status = 400
    default_message = "Problems parsing JSON"


class Unauthorized(ApiError):
    """401: the credentials are wrong or missing."""

    status = 401
    default_message = "Bad credentials"


class Forbidden(ApiError):
    """403: authenticated but not allowed."""

    status = 403
    default_message = "Resource not accessible by personal access token"


class NotFound(ApiError):
    """404: missing, or hidden from this caller (GitHub does not reveal private repos)."""

    status = 404
    default_message = "Not Found"


class MethodNotAllowed(ApiError):
    """405: e.g. merging a pull request that cannot be merged."""

    status = 405
    default_message = "Pull Request is not mergeable"


class Conflict(ApiError):
    """409: the state changed under the request (e.g. the head moved before a merge)."""

    status = 409
    default_message = "Head branch was modified. Review and try the merge again."


class ValidationFailed(ApiError):
    """422: the request is well-formed but GitHub refuses its content."""

    status = 422
    default_message = "Validation Failed"

    def __init__(
        self, *errors: dict, message: str | None = None, documentation_url: str = DOCS
    ) -> None:
        # Without errors GitHub sends only the message (e.g. refused token requests).
        super().__init__(message, errors=list(errors) or None, documentation_url=documentation_url)


def missing_field(resource: str, field: str) -> ValidationFailed:
    """The 422 GitHub sends when a required field is absent."""
    return ValidationFailed({"resource": resource, "code": "missing_field", "field": field})


def invalid_field(resource: str, field: str) -> ValidationFailed:
    """The 422 GitHub sends when a field's value is not acceptable."""
    return ValidationFailed({"resource": resource, "code": "invalid", "field": field})


def custom_error(resource: str, message: str) -> ValidationFailed:
    """A 422 with a free-text reason, like "A pull request already exists for ..."."""
    return ValidationFailed({"resource": resource, "code": "custom", "message": message})
