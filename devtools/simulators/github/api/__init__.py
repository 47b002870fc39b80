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
from simulators.github.rate_limit import Caller
from simulators.github.urls import API_PREFIX

logger = logging.getLogger(__name__)

ENTERPRISE_VERSION = "3.14.0"
# Methods that create content, for the secondary write limits.
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
RATE_LIMIT_ENDPOINT = "github_api.repos.rate_limit"

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


def rate_caller() -> Caller:
    """Whom this request counts against: its installation, its user or its client address."""
    identity = caller()
    if identity is None:
        address = request.remote_addr or "unknown"
        return Caller(f"ip:{address}", address, anonymous=True)
    if identity.installation_id is not None:
        installation = identity.installation_id
        return Caller(f"installation:{installation}", f"installation ID {installation}")
    user = simulator().store.find_user(identity.login)
    user_id = user.id if user else identity.login
    return Caller(f"user:{identity.login.lower()}", f"user ID {user_id}")


@bp.before_request
def enforce_rate_limits() -> None:
    """Count the request against its caller's limits or refuse it before the view runs.

    `GET /rate_limit` is never counted nor refused. Requests with an App JWT (the /app endpoints,
    such as minting installation tokens) are not limited: the JWT is only verified by the view.
    Writes are POST, PATCH, PUT and DELETE; /api/graphql is outside this blueprint and unlimited.
    """
    sim, who = simulator(), rate_caller()
    if request.endpoint == RATE_LIMIT_ENDPOINT:
        g.rate_status = sim.rate.status(who, sim.config)
    elif g.app_jwt is None:
        write = request.method in WRITE_METHODS
        g.rate_status = sim.rate.admit(who, sim.config, write=write, request_id=g.request_id)
        g.rate_caller = who


@bp.teardown_request
def release_rate_slot(_: BaseException | None) -> None:
    """Free the concurrency slot the request held."""
    who = g.pop("rate_caller", None)
    if who is not None:
        simulator().rate.release(who)


@bp.after_request
def github_headers(response: Response) -> Response:
    """Headers every GitHub API answer carries."""
    identity = caller()
    response.headers.update(
        {
            "X-GitHub-Request-Id": g.get("request_id", "0000:0000"),
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Api-Version-Selected": "2022-11-28",
            "X-GitHub-Enterprise-Version": ENTERPRISE_VERSION,
        }
    )
    status = g.get("rate_status")
    if status is not None:  # a refused request carries its own in the error's headers
        response.headers.update(status.headers())
    if identity is not None and identity.installation_id is None:
        response.headers["X-OAuth-Scopes"] = ", ".join(identity.scopes)
    return response


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> tuple[Response, int]:
    """Every API error as GitHub's JSON body."""
    response = jsonify(error.body())
    response.headers.update(error.headers)
    if error.status == 401:
        logger.info("API %s %s: %s", request.method, request.path, error.message)
    return response, error.status
