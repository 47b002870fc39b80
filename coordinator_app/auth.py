"""Who is calling: bearer tokens for agents and admins, and the decorators that require them.

Agents trade their long-lived key for a short-lived signed token; admins trade their password.
Tokens are stateless (signed with the secret key, with an expiry) and checked against the
database on every request, so deleting an agent or admin revokes its tokens at once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from coordinator_app.db import get_session
from coordinator_app.exceptions import Forbidden, Unauthorized
from coordinator_app.models import AdminUser, Agent
from coordinator_app.services import services

TOKEN_SALT = "ccc-api-token"  # noqa: S105 (a namespace for signatures, not a secret)


@dataclass
class Principal:
    """The authenticated caller of a request."""

    kind: str  # "agent" or "admin"
    id: int
    name: str
    agent: Agent | None = None

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def issue_token(kind: str, principal_id: int, secret_fingerprint: str) -> str:
    """A signed token naming the principal; ``secret_fingerprint`` ties it to the current key."""
    return _serializer().dumps({"k": kind, "i": principal_id, "f": secret_fingerprint})


def agent_fingerprint(agent: Agent) -> str:
    return agent.key_hash[:16]


def admin_fingerprint(admin: AdminUser) -> str:
    return admin.password_hash[-16:]


def current_principal() -> Principal:
    """Authenticate the request's bearer token (cached for the request)."""
    if "principal" in g:
        return g.principal
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token")
    config = services().config
    try:
        claims = _serializer().loads(token, max_age=config.agent_token_seconds)
    except SignatureExpired as exc:
        raise Unauthorized("token expired; get a new one") from exc
    except BadSignature as exc:
        raise Unauthorized("invalid token") from exc
    session = get_session()
    if claims.get("k") == "agent":
        agent = session.get(Agent, claims.get("i"))
        if agent is None or agent_fingerprint(agent) != claims.get("f"):
            raise Unauthorized("agent no longer registered or its key was rotated")
        g.principal = Principal("agent", agent.id, agent.name, agent)
    elif claims.get("k") == "admin":
        admin = session.get(AdminUser, claims.get("i"))
        if admin is None or admin_fingerprint(admin) != claims.get("f"):
            raise Unauthorized("admin no longer exists or changed password")
        g.principal = Principal("admin", admin.id, admin.username)
    else:
        raise Unauthorized("invalid token")
    return g.principal


def require(*kinds: str):
    """Decorator: the caller must be authenticated as one of ``kinds`` ("agent", "admin")."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if principal.kind not in kinds:
                raise Forbidden(f"this endpoint is not for {principal.kind}s")
            return view(*args, **kwargs)

        wrapper.required_kinds = kinds  # read by the OpenAPI document and the auth tests
        return wrapper

    return decorator
