"""/_sim/: the control surface for tests and demos (act as any user, inspect deliveries, reset)."""

from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, current_app, jsonify, request

from simulators.github.api.common import created, json_body, no_content, request_urls
from simulators.github.exceptions import ApiError, Forbidden, NotFound, missing_field
from simulators.github.models import Installation
from simulators.github.simulator import GitHubSimulator

bp = Blueprint("github_sim_admin", __name__, url_prefix="/_sim")

REPO = "/repos/<owner>/<name>"
INSTALLATION = "/app/installations/<int:installation_id>"


def _sim() -> GitHubSimulator:
    return current_app.extensions["github_sim"]


def _actor(data: dict) -> str:
    """The user to act as (`as` or `user` in the body); must exist."""
    login = data.get("as") or data.get("user")
    if not login:
        raise missing_field("Simulator", "as")
    return _sim().store.user(login).login


@bp.before_request
def admin_only() -> None:
    """The admin token when one is configured, otherwise loopback callers only."""
    token = _sim().config.admin_token
    if token:
        _, _, given = request.headers.get("Authorization", "").partition(" ")
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise Forbidden("Simulator admin token required")
    elif not ipaddress.ip_address(request.remote_addr or "0.0.0.0").is_loopback:  # noqa: S104
        raise Forbidden("The simulator admin surface only answers loopback callers")


@bp.errorhandler(ApiError)
def admin_error(error: ApiError) -> tuple[Response, int]:
    """Errors in GitHub's JSON shape, like the API's."""
    return jsonify(error.body()), error.status


@bp.get("/")
def overview() -> Response:
    """Users, repositories and delivery counts."""
    sim = _sim()
    with sim.store.lock:
        deliveries = list(sim.store.deliveries.values())
        return jsonify(
            {
                "users": sorted(u.login for u in sim.store.users.values()),
                "repos": sorted(r.full_name for r in sim.store.repos.values()),
                "app": sim.store.app.slug if sim.store.app else None,
                "deliveries": len(deliveries),
                "failed_deliveries": sum(1 for d in deliveries if not d.success),
            }
        )


@bp.post(f"{REPO}/issues")
def open_issue(owner: str, name: str) -> Response:
    """Open an issue as `as`, with optional `labels`."""
    sim, data = _sim(), json_body()
    repo = sim.store.repo(owner, name)
    issue = sim.create_issue(
        repo, _actor(data), data.get("title") or "", data.get("body"), labels=data.get("labels")
    )
    return created(sim.serializer(request_urls()).issue(repo, issue))


@bp.post(f"{REPO}/issues/<int:number>/labels")
def label_issue(owner: str, name: str, number: int) -> Response:
    """Add `labels` to an issue as `as`."""
    sim, data = _sim(), json_body()
    repo = sim.store.repo(owner, name)
    labels = sim.add_labels(repo, _actor(data), number, list(data.get("labels") or []))
    out = sim.serializer(request_urls())
    return jsonify([out.label(repo, label) for label in labels])


@bp.post(f"{REPO}/issues/<int:number>/comments")
def comment_issue(owner: str, name: str, number: int) -> Response:
    """Comment on an issue or pull request as `as`."""
    sim, data = _sim(), json_body()
    repo = sim.store.repo(owner, name)
    comment = sim.create_comment(repo, _actor(data), number, data.get("body") or "")
    return created(sim.serializer(request_urls()).comment(repo, comment))


@bp.post(f"{REPO}/issues/<int:number>/close")
def close_issue(owner: str, name: str, number: int) -> Response:
    """Close an issue or pull request as `as` (`reason`: completed or not_planned)."""
    sim, data = _sim(), json_body()
    repo = sim.store.repo(owner, name)
    issue = sim.close_issue(repo, _actor(data), number, data.get("reason") or "completed")
    return jsonify(sim.serializer(request_urls()).issue(repo, issue))


@bp.post(f"{REPO}/pulls/<int:number>/reviews")
def review_pull(owner: str, name: str, number: int) -> Response:
    """Review a pull request as `as` (`event`, `body`, `comments` with path/line/body)."""
    sim, data = _sim(), json_body()
    repo = sim.store.repo(owner, name)
    review = sim.create_review(
        repo,
        _actor(data),
        number,
        data.get("event") or "COMMENT",
        data.get("body") or "",
        comments=data.get("comments") or [],
    )
    return created(sim.serializer(request_urls()).review(repo, review))


# the GitHub App


def _sender(data: dict) -> str | None:
    """Who the change is attributed to in webhooks (`as`, in the body or the query), if given."""
    login = data.get("as") or request.args.get("as")
    return _sim().store.user(login).login if login else None


def _installation(installation: Installation) -> Response:
    sim = _sim()
    return jsonify(sim.serializer(request_urls()).installation(sim.app(), installation))


@bp.put("/app/webhook")
def app_webhook() -> Response:
    """Set the App's webhook: `url` (empty turns it off), `secret`, optional `events`."""
    data = json_body()
    hook = _sim().set_app_webhook(
        data.get("url"), secret=data.get("secret"), events=data.get("events")
    )
    return jsonify({"url": hook.url if hook else None, "events": _sim().app().events})


@bp.post("/app/installations")
def install() -> Response:
    """Install the App on `account`: all its repositories, or `repositories` (full names);
    `permissions` change the defaults, `id` picks the installation id, `as` the sender."""
    sim, data = _sim(), json_body()
    if not data.get("account"):
        raise missing_field("Installation", "account")
    installation = sim.install_app(
        data["account"],
        repositories=data.get("repositories"),
        permissions=data.get("permissions"),
        installation_id=data.get("id"),
        sender=_sender(data),
    )
    response = _installation(installation)
    response.status_code = 201
    return response


@bp.delete(INSTALLATION)
def uninstall(installation_id: int) -> Response:
    """Uninstall the App (its tokens stop working)."""
    _sim().uninstall_app(installation_id, sender=_sender(json_body()))
    return no_content()


@bp.post(f"{INSTALLATION}/suspend")
def suspend(installation_id: int) -> Response:
    """Suspend an installation."""
    sim = _sim()
    sim.suspend_installation(installation_id, sender=_sender(json_body()))
    return _installation(sim.installation(installation_id))


@bp.post(f"{INSTALLATION}/unsuspend")
def unsuspend(installation_id: int) -> Response:
    """Lift an installation's suspension."""
    sim = _sim()
    sim.unsuspend_installation(installation_id, sender=_sender(json_body()))
    return _installation(sim.installation(installation_id))


@bp.put(f"{INSTALLATION}/repositories/<owner>/<name>")
def add_installation_repository(installation_id: int, owner: str, name: str) -> Response:
    """Add a repository to an installation."""
    sim = _sim()
    sim.add_installation_repositories(
        installation_id, [f"{owner}/{name}"], sender=_sender(json_body())
    )
    return _installation(sim.installation(installation_id))


@bp.delete(f"{INSTALLATION}/repositories/<owner>/<name>")
def remove_installation_repository(installation_id: int, owner: str, name: str) -> Response:
    """Take a repository out of an installation (its tokens lose it at once)."""
    sim = _sim()
    sim.remove_installation_repositories(
        installation_id, [f"{owner}/{name}"], sender=_sender(json_body())
    )
    return _installation(sim.installation(installation_id))


@bp.get("/deliveries")
def deliveries() -> Response:
    """Every delivery with request and response; `?failed=1` for failures, `?event=` to filter."""
    sim = _sim()
    failed = request.args.get("failed")
    found = sim.deliveries(failed=None if failed is None else failed not in ("0", "false"))
    if request.args.get("event"):
        found = [d for d in found if d.event == request.args["event"]]
    out = sim.serializer(request_urls())
    return jsonify([out.delivery(d, full=True) for d in found])


@bp.post("/deliveries/<int:delivery_id>/redeliver")
def redeliver(delivery_id: int) -> Response:
    """Send one delivery again."""
    delivery = _sim().redeliver(delivery_id)
    return created({"id": delivery.id, "guid": delivery.guid})


@bp.post("/deliveries/redeliver-failed")
def redeliver_failed() -> Response:
    """Send every failed delivery again (the latest attempt per GUID only)."""
    sim = _sim()
    latest: dict[str, int] = {}
    for delivery in sim.deliveries():  # newest first: the first seen per GUID is the latest
        latest.setdefault(delivery.guid, delivery.id)
    failed = [d for d in sim.deliveries(failed=True) if latest[d.guid] == d.id]
    sent = [sim.redeliver(d.id).id for d in failed]
    return jsonify({"redelivered": sent})


@bp.post("/flush")
def flush() -> Response:
    """Wait until queued webhooks have been attempted."""
    if not _sim().wait_idle(float(request.args.get("timeout", 30))):
        raise NotFound("Webhook queue did not drain in time")
    return jsonify({"idle": True})


@bp.post("/rate-limits")
def rate_limits() -> Response:
    """Change any rate limit (config field names, e.g. `rate_limit`) and reset every count."""
    sim = _sim()
    return jsonify(sim.rate.configure(sim.config, json_body()))


@bp.post("/reset")
def reset() -> Response:
    """Drop everything and load the seed again."""
    _sim().reset()
    return jsonify({"reset": True})
