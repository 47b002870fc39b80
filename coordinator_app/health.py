"""``/healthz`` (the process answers) and ``/readyz`` (PostgreSQL and Redis answer too)."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from coordinator_app.services import services

logger = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Readiness: 200 when PostgreSQL and Redis both answer, 503 naming what does not."""
    ccc = services()
    checks = {}
    try:
        with ccc.database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["postgresql"] = "ok"
    except SQLAlchemyError as exc:
        logger.warning("Readiness: PostgreSQL unreachable: %s", exc)
        checks["postgresql"] = "unreachable"
    try:
        ccc.redis.ping()
        checks["redis"] = "ok"
    except redis.RedisError as exc:
        logger.warning("Readiness: Redis unreachable: %s", exc)
        checks["redis"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
