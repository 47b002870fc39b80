"""The REST API under /api/v3, as GitHub Enterprise Server serves it."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid

from flask import Blueprint, Response, g, jsonify, request

from simulators.github.api import apps, issues, pulls, repos
from simulators.github.api.common import caller, simulator
from simulators.github.exceptions import ApiError, Unauthorized
from simulators.github.urls import API_PREFIX

logger = logging.getLogger(__name__)

ENTERPRISE_VERSION = "3.14.0"

bp = Blueprint("github_api", __name__, url_prefix=API_PREFIX)
for child in (repos.bp, issues.bp, pulls.bp, apps.bp):
    bp.register_blueprint(child)


def credential() -> tuple[str, str] | None:
    """(scheme, secret) from the Authorization header: `token X`, `Bearer X` or Basic."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "basic":
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized() from None
        return "token", password or user
    if scheme not in ("token", "bearer") or not value:
        raise Unauthorized()
    return scheme, value


@bp.before_request
def authenticate() -> None:
    """Resolve the caller; App JWTs are kept aside for the /app endpoints to verify."""
    g.request_id = uuid.uuid4().hex[:8].upper() + ":" + uuid.uuid4().hex[:12].upper()
    sim = simulator()
    sim.remember_url(request.host_url)
    found = credential()
    g.identity = None
    g.app_jwt = None
    if found is None:
        return
    scheme, secret = found
    if scheme == "bearer" and secret.count(".") == 2:
        g.app_jwt = secret
        return
    g.identity = sim.authenticate(secret)


@bp.after_request
def github_headers(response: Response) -> Response:
    """Headers every GitHub API answer carries."""
    identity = caller()
    key = identity.login if identity else f"ip:{request.remote_addr}"
    status = simulator().rate.hit(key, count=request.endpoint != "github_api.repos.rate_limit")
    response.headers.update(
        {
            "X-GitHub-Request-Id": g.get("request_id", "0000:0000"),
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Api-Version-Selected": "2022-11-28",
            "X-GitHub-Enterprise-Version": ENTERPRISE_VERSION,
            "X-RateLimit-Limit": str(status.limit),
            "X-RateLimit-Remaining": str(status.remaining),
            "X-RateLimit-Reset": str(status.reset),
            "X-RateLimit-Used": str(status.used),
            "X-RateLimit-Resource": "core",
        }
    )
    if identity is not None and identity.installation_id is None:
        response.headers["X-OAuth-Scopes"] = "repo, admin:repo_hook, read:org"
    return response


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> tuple[Response, int]:
    """Every API error as GitHub's JSON body."""
    response = jsonify(error.body())
    response.headers.update(error.headers)
    if error.status == 401:
        logger.info("API %s %s: %s", request.method, request.path, error.message)
    return response, error.status
