"""The GitHub App: `GET /app`, installations and installation access tokens (JWT auth)."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from simulators.github.api.common import (
    created,
    paginate,
    require_caller,
    serializer,
    simulator,
)
from simulators.github.exceptions import NotFound, Unauthorized
from simulators.github.models import App
from simulators.github.serializers import APP_PERMISSIONS
from simulators.github.urls import iso

bp = Blueprint("apps", __name__)


def authenticated_app() -> App:
    """The App whose JWT signed the request, or 401 as GitHub answers a bad or missing JWT."""
    token = g.get("app_jwt")
    if not token:
        raise Unauthorized(
            "A JSON web token could not be decoded",
            documentation_url="https://docs.github.com/rest/apps/apps",
        )
    return simulator().verify_app_jwt(token)


@bp.get("/app")
def get_app() -> Response:
    """The authenticated App."""
    return jsonify(serializer().app(authenticated_app()))


@bp.get("/app/installations")
def installations() -> Response:
    """The App's installations (one)."""
    app = authenticated_app()
    return paginate([app], serializer().installation)


@bp.get("/app/installations/<int:installation_id>")
def installation(installation_id: int) -> Response:
    """One installation of the App."""
    app = authenticated_app()
    if installation_id != app.installation_id:
        raise NotFound()
    return jsonify(serializer().installation(app))


@bp.post("/app/installations/<int:installation_id>/access_tokens")
def access_token(installation_id: int) -> Response:
    """Exchange the App's JWT for an installation access token (an hour's life)."""
    authenticated_app()
    token = simulator().installation_token(installation_id)
    return created(
        {
            "token": token.value,
            "expires_at": iso(token.expires_at),
            "permissions": dict(APP_PERMISSIONS),
            "repository_selection": "all",
        }
    )


@bp.get("/repos/<owner>/<name>/installation")
def repo_installation(owner: str, name: str) -> Response:
    """The App's installation covering a repository (404 when not installed there)."""
    app = authenticated_app()
    repo = simulator().store.repo(owner, name)
    if repo.owner.lower() != app.owner.lower():
        raise NotFound()
    return jsonify(serializer().installation(app))


@bp.get("/installation/repositories")
def installation_repositories() -> Response:
    """Repositories an installation token can reach."""
    identity = require_caller()
    sim = simulator()
    app = sim.store.app
    if identity.installation_id is None or app is None:
        raise NotFound()
    with sim.store.lock:
        repos = [r for r in sim.store.repos.values() if r.owner.lower() == app.owner.lower()]
    out = serializer()
    return jsonify(
        {
            "total_count": len(repos),
            "repository_selection": "all",
            "repositories": [out.repo(r) for r in repos],
        }
    )
