"""The GitHub App: `/app`, its installations and webhook (JWT), installation tokens, their repos."""

from __future__ import annotations

import json

from flask import Blueprint, Response, g, jsonify

from simulators.github.api.common import (
    created,
    json_body,
    no_content,
    page_of,
    paginate,
    require_caller,
    serializer,
    simulator,
)
from simulators.github.exceptions import Forbidden, NotFound, Unauthorized, ValidationFailed
from simulators.github.installations import MINTING_DOCS
from simulators.github.models import App, Delivery, Installation, Selection, Token
from simulators.github.urls import iso

bp = Blueprint("apps", __name__)

INSTALLATION = "/app/installations/<int:installation_id>"


def authenticated_app() -> App:
    """The App whose JWT signed the request, or 401 as GitHub answers a bad or missing JWT."""
    token = g.get("app_jwt")
    if not token:
        raise Unauthorized(
            "A JSON web token could not be decoded",
            documentation_url="https://docs.github.com/rest/apps/apps",
        )
    return simulator().verify_app_jwt(token)


def render_installation(installation: Installation | None) -> Response:
    """An installation, or 404 when there is none."""
    if installation is None:
        raise NotFound()
    return jsonify(serializer().installation(simulator().app(), installation))


@bp.get("/app")
def get_app() -> Response:
    """The authenticated App."""
    return jsonify(serializer().app(authenticated_app()))


@bp.get("/app/installations")
def installations() -> Response:
    """The App's installations, oldest first."""
    app = authenticated_app()
    out = serializer()
    found = sorted(app.installations.values(), key=lambda i: i.created_at)
    return paginate(found, lambda installation: out.installation(app, installation))


@bp.get(INSTALLATION)
def installation(installation_id: int) -> Response:
    """One installation of the App."""
    authenticated_app()
    return render_installation(simulator().installation(installation_id))


@bp.delete(INSTALLATION)
def uninstall(installation_id: int) -> Response:
    """Uninstall the App from an account; its tokens stop working."""
    app = authenticated_app()
    simulator().uninstall_app(installation_id, sender=app.bot_login)
    return no_content()


@bp.put(f"{INSTALLATION}/suspended")
def suspend(installation_id: int) -> Response:
    """Suspend an installation."""
    app = authenticated_app()
    simulator().suspend_installation(installation_id, sender=app.bot_login)
    return no_content()


@bp.delete(f"{INSTALLATION}/suspended")
def unsuspend(installation_id: int) -> Response:
    """Lift an installation's suspension."""
    app = authenticated_app()
    simulator().unsuspend_installation(installation_id, sender=app.bot_login)
    return no_content()


# the App's webhook


def app_delivery(delivery_id: int) -> Delivery:
    """A delivery to the App's webhook, once the JWT is checked (404 for another hook's)."""
    authenticated_app()
    sim = simulator()
    found = sim.store.delivery(delivery_id)
    if found.hook_id != sim.app_hook().id:
        raise NotFound()
    return found


@bp.get("/app/hook/config")
def hook_config() -> Response:
    """The App webhook's `url`, `content_type`, `insecure_ssl` and masked `secret`."""
    authenticated_app()
    return jsonify(serializer().hook_config(simulator().app_hook()))


@bp.patch("/app/hook/config")
def update_hook_config() -> Response:
    """Change any of the App webhook's `url`, `content_type`, `secret` and `insecure_ssl`."""
    authenticated_app()
    data = json_body()
    insecure_ssl = data.get("insecure_ssl")  # a string or a number, as GitHub takes it
    hook = simulator().configure_app_webhook(
        url=data.get("url"),
        content_type=data.get("content_type"),
        secret=data.get("secret"),
        insecure_ssl=None if insecure_ssl is None else str(insecure_ssl),
    )
    return jsonify(serializer().hook_config(hook))


@bp.get("/app/hook/deliveries")
def hook_deliveries() -> Response:
    """The App webhook's deliveries, newest first."""
    authenticated_app()
    sim = simulator()
    return paginate(sim.deliveries(hook_id=sim.app_hook().id), serializer().delivery)


@bp.get("/app/hook/deliveries/<int:delivery_id>")
def hook_delivery(delivery_id: int) -> Response:
    """One delivery of the App's webhook with its request and response."""
    return jsonify(serializer().delivery(app_delivery(delivery_id), full=True))


@bp.post("/app/hook/deliveries/<int:delivery_id>/attempts")
def redeliver_hook_delivery(delivery_id: int) -> tuple[Response, int]:
    """Send a delivery of the App's webhook again; 202 Accepted as GitHub answers."""
    simulator().redeliver(app_delivery(delivery_id).id)
    return jsonify({}), 202


def _list_in(data: dict, key: str, kind: type, kind_name: str) -> list:
    """``data[key]`` when it is a list of ``kind``; 422 worded as GitHub's schema check."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        bad, where = value, f"properties/{key}"
        expected = "an array"
    else:
        bad = next((item for item in value if not isinstance(item, kind)), None)
        if bad is None:
            return value
        where, expected = "items", kind_name
    raise ValidationFailed(
        message=f"Invalid request.\n\nFor '{where}', {json.dumps(bad)} is not {expected}.",
        documentation_url=MINTING_DOCS,
    )


@bp.post(f"{INSTALLATION}/access_tokens")
def access_token(installation_id: int) -> Response:
    """Exchange the App's JWT for an installation access token, optionally narrowed to some
    `repositories` (names without owner) or `repository_ids` and some `permissions`."""
    authenticated_app()
    sim, data = simulator(), json_body()
    permissions = data.get("permissions") or {}
    if not isinstance(permissions, dict):
        raise ValidationFailed(
            message=f"Invalid request.\n\nFor 'properties/permissions', "
            f"{json.dumps(permissions)} is not an object.",
            documentation_url=MINTING_DOCS,
        )
    token = sim.installation_token(
        installation_id,
        repositories=_list_in(data, "repositories", str, "a string"),
        repository_ids=_list_in(data, "repository_ids", int, "an integer"),
        permissions=permissions,
    )
    narrowed = token.repositories is not None
    selection = sim.installation(installation_id).repository_selection
    body: dict = {
        "token": token.value,
        "expires_at": iso(token.expires_at),
        "permissions": dict(token.permissions),
        "repository_selection": "selected" if narrowed else selection.value,
    }
    if narrowed:
        out = serializer()
        body["repositories"] = [out.repo(r) for r in sim.token_repos(token)]
    return created(body)


@bp.get("/repos/<owner>/<name>/installation")
def repo_installation(owner: str, name: str) -> Response:
    """The App's installation covering a repository (404 when not installed there)."""
    authenticated_app()
    sim = simulator()
    return render_installation(sim.installation_covering(sim.store.repo(owner, name)))


@bp.get("/orgs/<org>/installation")
def org_installation(org: str) -> Response:
    """The App's installation on an organization."""
    app = authenticated_app()
    account = simulator().store.find_user(org)
    if account is None or account.type != "Organization":
        raise NotFound()
    return render_installation(app.installation_on(account.login))


@bp.get("/users/<login>/installation")
def user_installation(login: str) -> Response:
    """The App's installation on a user's (or organization's) account."""
    app = authenticated_app()
    return render_installation(app.installation_on(simulator().store.user(login).login))


def calling_token() -> Token:
    """The installation access token the request presents (403 for any other credential)."""
    identity = require_caller()
    if identity.token is None or identity.token.installation_id is None:
        raise Forbidden()
    return identity.token


@bp.get("/installation/repositories")
def installation_repositories() -> Response:
    """Repositories the calling installation token reaches, paginated with `total_count`."""
    token = calling_token()
    sim = simulator()
    repos = sim.token_repos(token)
    installation = sim.installation(token.installation_id or 0)
    narrowed = token.repositories is not None
    selection = Selection.SELECTED if narrowed else installation.repository_selection
    chunk, links = page_of(repos)
    out = serializer()
    response = jsonify(
        {
            "total_count": len(repos),
            "repository_selection": selection.value,
            "repositories": [out.repo(r) for r in chunk],
        }
    )
    if links:
        response.headers["Link"] = links
    return response


@bp.delete("/installation/token")
def revoke_token() -> Response:
    """Revoke the calling installation token; it is "Bad credentials" from then on."""
    simulator().store.revoke_token(calling_token().value)
    return no_content()
