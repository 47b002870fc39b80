"""Token endpoints: agents trade their key, admins their password, for a bearer token."""

from __future__ import annotations

from sqlalchemy import select
from werkzeug.security import check_password_hash

from coordinator_app import agents as registry
from coordinator_app import audit
from coordinator_app.api import bp
from coordinator_app.api.operations import json_body
from coordinator_app.auth import admin_fingerprint, agent_fingerprint, issue_token
from coordinator_app.db import get_session
from coordinator_app.exceptions import Unauthorized
from coordinator_app.models import AdminUser
from coordinator_app.services import services

# Checked against when the user does not exist, so both failures take the same time.
_DUMMY_HASH = "scrypt:32768:8:1$GtOPC3VjR2lQNwhg$" + "0" * 128


@bp.post("/agents/token")
def agent_token():
    """Exchange an agent's name and key for a short-lived bearer token."""
    data = json_body()
    session = get_session()
    agent = registry.authenticate_agent(session, data["name"], data["key"])
    audit.record(session, f"agent:{agent.name}", "token", agent.name)
    session.commit()
    return {
        **_token_response(issue_token("agent", agent.id, agent_fingerprint(agent))),
        "agent_id": agent.id,
    }


@bp.post("/auth/token")
def admin_token():
    """Exchange an admin's username and password for a short-lived bearer token."""
    data = json_body()
    session = get_session()
    admin = session.scalar(select(AdminUser).where(AdminUser.username == data["username"]))
    if not check_password_hash(admin.password_hash if admin else _DUMMY_HASH, data["password"]) or (
        admin is None
    ):
        raise Unauthorized("unknown user or wrong password")
    audit.record(session, f"admin:{admin.username}", "token", admin.username)
    session.commit()
    return _token_response(issue_token("admin", admin.id, admin_fingerprint(admin)))


def _token_response(token: str):
    return {
        "token": token,
        "token_type": "Bearer",
        "expires_in": services().config.agent_token_seconds,
    }
