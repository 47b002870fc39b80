"""The REST API under ``/api/v1``: JSON only, one error format, paginated collections."""

from __future__ import annotations

from flask import Blueprint

from coordinator_app import ratelimit
from coordinator_app.services import services

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def _rate_limit() -> None:
    ratelimit.check(services().redis, "api", services().config.api_rate_per_minute)


# Route modules register themselves on ``bp``.
from coordinator_app.api import (  # noqa: E402, F401
    acceptance,
    agents,
    auth_routes,
    openapi,
    scaling,
    tasks,
)
