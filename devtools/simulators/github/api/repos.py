"""Accounts, repositories, branches, collaborators, hooks, deliveries and the rate limit."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from simulators.github.api.common import (
    caller,
    created,
    json_body,
    no_content,
    paginate,
    repo_access,
    require_caller,
    serializer,
    simulator,
)
from simulators.github.exceptions import Forbidden, NotFound, invalid_field
from simulators.github.models import Permission

bp = Blueprint("repos", __name__)

REPO = "/repos/<owner>/<name>"
# App permissions of the settings endpoints (not granted by default, as the cluster's App asks).
ADMINISTRATION = "administration=write"
HOOKS_READ = "repository_hooks=read"
HOOKS_WRITE = "repository_hooks=write"


@bp.get("/user")
def authenticated_user() -> Response:
    """The account the token belongs to (installations have none, as on GitHub)."""
    identity = require_caller()
    if identity.installation_id is not None:
        raise Forbidden("Resource not accessible by integration")
    return jsonify(serializer().full_user(simulator().store.user(identity.login)))


@bp.get("/users/<login>")
def user(login: str) -> Response:
    """A public profile."""
    return jsonify(serializer().full_user(simulator().store.user(login)))


@bp.get("/rate_limit")
def rate_limit() -> Response:
    """The caller's rate-limit window (never counted nor refused, as on GitHub)."""
    core = g.rate_status.as_dict()
    resources = {name: dict(core) for name in ("core", "search", "graphql", "integration_manifest")}
    return jsonify({"resources": resources, "rate": core})


@bp.get(REPO)
def repository(owner: str, name: str) -> Response:
    """A repository, with the caller's permissions."""
    repo = repo_access(owner, name, accepts="metadata=read")
    return jsonify(serializer().repo(repo, simulator().permission(caller(), repo)))


@bp.get(f"{REPO}/branches")
def branches(owner: str, name: str) -> Response:
    """The repository's branches."""
    repo = repo_access(owner, name, accepts="metadata=read")
    refs = simulator().git.refs(repo)
    heads = sorted((r.removeprefix("refs/heads/"), sha) for r, sha in refs.items() if "heads" in r)
    base = serializer().urls.repo(repo.full_name)
    return paginate(heads, lambda head: _branch(base, *head))


@bp.get(f"{REPO}/branches/<path:branch>")
def branch(owner: str, name: str, branch: str) -> Response:
    """One branch."""
    repo = repo_access(owner, name, accepts="metadata=read")
    sha = simulator().git.branch_sha(repo, branch)
    if sha is None:
        raise NotFound("Branch not found")
    return jsonify(_branch(serializer().urls.repo(repo.full_name), branch, sha))


def _branch(repo_url: str, branch: str, sha: str) -> dict:
    return {
        "name": branch,
        "commit": {"sha": sha, "url": f"{repo_url}/commits/{sha}"},
        "protected": False,
        "_links": {"self": f"{repo_url}/branches/{branch}", "html": ""},
    }


# collaborators


@bp.get(f"{REPO}/collaborators")
def collaborators(owner: str, name: str) -> Response:
    """Users with a role on the repository (needs push access)."""
    repo = repo_access(owner, name, Permission.WRITE, accepts="metadata=read")
    sim, out = simulator(), serializer()
    logins = [repo.owner, *(sim.store.user(login).login for login in repo.collaborators)]

    def render(login: str) -> dict:
        role = sim.permission(login, repo)
        return {
            **(out.user(login) or {}),
            "permissions": out.permissions(role),
            "role_name": role.value,
        }

    return paginate(list(dict.fromkeys(logins)), render)


@bp.get(f"{REPO}/collaborators/<login>/permission")
def collaborator_permission(owner: str, name: str, login: str) -> Response:
    """A user's role on the repository: admin, write, read or none, plus `role_name`."""
    sim = simulator()
    repo = repo_access(owner, name, accepts="metadata=read")
    if not sim.permission(caller(), repo).allows(Permission.WRITE):
        raise Forbidden("Must have push access to view repository collaborators.")
    user = sim.store.user(login)
    role_of_user = sim.permission(user.login, repo)
    return jsonify(serializer().collaborator_permission(user.login, role_of_user))


@bp.get(f"{REPO}/collaborators/<login>")
def is_collaborator(owner: str, name: str, login: str) -> Response:
    """204 when ``login`` is a collaborator, 404 otherwise."""
    repo = repo_access(owner, name, Permission.WRITE, accepts="metadata=read")
    if login.lower() != repo.owner.lower() and login.lower() not in repo.collaborators:
        raise NotFound()
    return no_content()


@bp.put(f"{REPO}/collaborators/<login>")
def add_collaborator(owner: str, name: str, login: str) -> Response:
    """Give a user a role (admin only; applied at once instead of an invitation)."""
    repo = repo_access(owner, name, Permission.ADMIN, accepts=ADMINISTRATION)
    simulator().set_collaborator(repo, login, json_body().get("permission", "write"))
    return no_content()


@bp.delete(f"{REPO}/collaborators/<login>")
def remove_collaborator(owner: str, name: str, login: str) -> Response:
    """Take a user's role away (admin only)."""
    repo = repo_access(owner, name, Permission.ADMIN, accepts=ADMINISTRATION)
    repo.collaborators.pop(login.lower(), None)
    return no_content()


# hooks and deliveries


@bp.get(f"{REPO}/hooks")
def hooks(owner: str, name: str) -> Response:
    """The repository's webhooks (admin only)."""
    repo = repo_access(owner, name, Permission.ADMIN, accepts=HOOKS_READ)
    out = serializer()
    return paginate(list(repo.hooks.values()), lambda hook: out.hook(repo, hook))


@bp.post(f"{REPO}/hooks")
def create_hook(owner: str, name: str) -> Response:
    """Add a webhook (`config.url`, `config.secret`, `events`, `active`) and ping it."""
    repo = repo_access(owner, name, Permission.ADMIN, accepts=HOOKS_WRITE)
    data = json_body()
    config = data.get("config") or {}
    if not isinstance(config, dict) or not config.get("url"):
        raise invalid_field("Hook", "url")
    hook = simulator().create_hook(
        repo,
        config["url"],
        secret=config.get("secret"),
        events=data.get("events") or ["push"],
        active=bool(data.get("active", True)),
        content_type=config.get("content_type", "form"),
        insecure_ssl=str(config.get("insecure_ssl", "0")),
        sender=require_caller().login,
    )
    return created(serializer().hook(repo, hook))


@bp.get(f"{REPO}/hooks/<int:hook_id>")
def get_hook(owner: str, name: str, hook_id: int) -> Response:
    """One webhook."""
    repo = repo_access(owner, name, Permission.ADMIN, accepts=HOOKS_READ)
    return jsonify(serializer().hook(repo, simulator().hook(repo, hook_id)))


@bp.delete(f"{REPO}/hooks/<int:hook_id>")
def delete_hook(owner: str, name: str, hook_id: int) -> Response:
    """Remove a webhook."""
    repo = repo_access(owner, name, Permission.ADMIN, accepts=HOOKS_WRITE)
    simulator().delete_hook(repo, hook_id)
    return no_content()


@bp.post(f"{REPO}/hooks/<int:hook_id>/pings")
def ping_hook(owner: str, name: str, hook_id: int) -> Response:
    """Send `ping` to the hook."""
    repo = repo_access(owner, name, Permission.ADMIN, accepts=HOOKS_WRITE)
    simulator().ping_hook(repo, hook_id, sender=require_caller().login)
    return no_content()


@bp.get(f"{REPO}/hooks/<int:hook_id>/deliveries")
def deliveries(owner: str, name: str, hook_id: int) -> Response:
    """The hook's deliveries, newest first."""
    repo = repo_access(owner, name, Permission.ADMIN, accepts=HOOKS_READ)
    sim, out = simulator(), serializer()
    sim.hook(repo, hook_id)
    return paginate(sim.deliveries(hook_id=hook_id), out.delivery)


@bp.get(f"{REPO}/hooks/<int:hook_id>/deliveries/<int:delivery_id>")
def delivery(owner: str, name: str, hook_id: int, delivery_id: int) -> Response:
    """One delivery with its request and response."""
    repo = repo_access(owner, name, Permission.ADMIN, accepts=HOOKS_READ)
    found = simulator().store.delivery(delivery_id)
    if found.hook_id != simulator().hook(repo, hook_id).id:
        raise NotFound()
    return jsonify(serializer().delivery(found, full=True))


@bp.post(f"{REPO}/hooks/<int:hook_id>/deliveries/<int:delivery_id>/attempts")
def redeliver(owner: str, name: str, hook_id: int, delivery_id: int) -> tuple[Response, int]:
    """Send a delivery again; 202 Accepted as GitHub answers."""
    repo = repo_access(owner, name, Permission.ADMIN, accepts=HOOKS_WRITE)
    sim = simulator()
    if sim.store.delivery(delivery_id).hook_id != sim.hook(repo, hook_id).id:
        raise NotFound()
    sim.redeliver(delivery_id)
    return jsonify({}), 202
