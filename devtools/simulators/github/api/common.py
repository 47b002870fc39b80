"""Helpers every REST view uses: the simulator, the caller, JSON bodies and pagination."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, g, jsonify, request

from simulators.github.app_permissions import Requirement
from simulators.github.exceptions import BadRequest, Unauthorized
from simulators.github.issue_serializers import Serializer
from simulators.github.models import Permission, Repo
from simulators.github.simulator import GitHubSimulator, Identity
from simulators.github.urls import Urls

EXTENSION = "github_sim"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
READ_METHODS = frozenset({"GET", "HEAD"})


def simulator() -> GitHubSimulator:
    """The simulator behind the current app."""
    return current_app.extensions[EXTENSION]


def request_urls() -> Urls:
    """URLs as this request's client reaches us (unless a public URL is configured)."""
    sim = simulator()
    return Urls((sim.config.public_url or request.host_url).rstrip("/"))


def serializer() -> Serializer:
    """A serializer whose URLs point at the address the client used."""
    return simulator().serializer(request_urls())


def caller() -> Identity | None:
    """Who the request authenticated as (None: anonymous or an App JWT)."""
    return g.get("identity")


def require_caller() -> Identity:
    """The caller, or 401 "Requires authentication"."""
    identity = caller()
    if identity is None:
        raise Unauthorized("Requires authentication")
    return identity


def repo_access(
    owner: str,
    name: str,
    needed: Permission = Permission.READ,
    *,
    accepts: str,
    number: int | None = None,
) -> Repo:
    """The repository, if the caller may make this request on it (else 404/403 like GitHub).

    Users need the role ``needed``. Installation tokens need the repository in reach and the
    App permissions ``accepts``, spelled as GitHub's X-Accepted-GitHub-Permissions header
    (e.g. "issues=write"); for an issue ``number`` that is a pull request, `pull_requests`
    does wherever `issues` is asked, as on GitHub.
    """
    sim = simulator()
    repo = sim.store.repo(owner, name)
    identity = caller()
    if identity is None or identity.installation_id is None:
        sim.require(identity, repo, needed)
        return repo
    requirement = Requirement.parse(accepts)
    issue = repo.issues.get(number) if number is not None else None
    if issue is not None and issue.pull is not None:
        requirement = requirement.or_pull_requests()
    write = request.method not in READ_METHODS
    sim.authorize_installation(identity, repo, requirement, needed=needed, write=write)
    return repo


def json_body(*, kind: type = dict) -> Any:
    """The request's JSON body (an empty ``kind`` when there is none); 400 when unparsable."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return kind()
    data = request.get_json(force=True, silent=True)
    if data is None or not isinstance(data, kind):
        raise BadRequest()
    return data


def created(data: dict) -> Response:
    """201 with the new resource and its Location, as GitHub answers creations."""
    response = jsonify(data)
    response.status_code = 201
    if isinstance(data.get("url"), str):
        response.headers["Location"] = data["url"]
    return response


def no_content() -> Response:
    """204 with an empty body."""
    return Response(status=204)


def int_arg(name: str, default: int) -> int:
    """An integer query argument (GitHub ignores junk and uses the default)."""
    try:
        return int(request.args.get(name, default))
    except ValueError:
        return default


def page_of(items: Sequence) -> tuple[Sequence, str | None]:
    """One page of ``items`` per `page`/`per_page`, and GitHub's `Link` header for it."""
    per_page = min(max(int_arg("per_page", DEFAULT_PER_PAGE), 1), MAX_PER_PAGE)
    page = max(int_arg("page", 1), 1)
    last = max(math.ceil(len(items) / per_page), 1)
    chunk = items[(page - 1) * per_page : page * per_page]
    base = request_urls().web + request.path

    def link(target: int, rel: str) -> str:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "page"]
        return f'<{base}?{urlencode([*args, ("page", target)])}>; rel="{rel}"'

    links = []
    if page > 1:
        links.append(link(page - 1, "prev"))
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links.append(link(1, "first"))
    return chunk, ", ".join(links) or None


def paginate(items: Sequence, render: Callable[[Any], dict]) -> Response:
    """One page of ``items`` as a JSON list, with GitHub's `Link` header."""
    chunk, links = page_of(items)
    response = jsonify([render(item) for item in chunk])
    if links:
        response.headers["Link"] = links
    return response
