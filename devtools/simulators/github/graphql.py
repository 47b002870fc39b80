"""The GraphQL endpoint, for the two mutations REST cannot do: a pull request's draft state.

GitHub Enterprise Server serves GraphQL at /api/graphql. Like GitHub, it answers 200 with an
``errors`` list for a document it cannot run (unknown field, missing node, no permission), and
401 only when the request is not authenticated.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, request

from simulators.github.api import credential
from simulators.github.api.common import simulator
from simulators.github.exceptions import ApiError, Forbidden, NotFound, Unauthorized

bp = Blueprint("github_graphql", __name__)

GRAPHQL_DOCS = "https://docs.github.com/graphql"
# The mutation each supported field performs: the pull request's draft flag after it.
DRAFT_AFTER = {"markPullRequestReadyForReview": False, "convertPullRequestToDraft": True}
MUTATION = re.compile(r"^\s*mutation\b[^{]*\{\s*(\w+)\s*\(\s*input\s*:\s*\$input\s*\)", re.S)


@bp.post("/api/graphql")
def graphql() -> Response | tuple[Response, int]:
    """Run one named mutation document as PyGithub sends it."""
    sim = simulator()
    sim.remember_url(request.host_url)
    try:
        found = credential()
        if found is None:
            raise Unauthorized("This endpoint requires you to be authenticated.")
        identity = sim.authenticate(found[1])
    except ApiError as error:
        body = {"message": error.message, "documentation_url": GRAPHQL_DOCS}
        return jsonify(body), error.status
    document = request.get_json(force=True, silent=True)
    if not isinstance(document, dict) or not isinstance(document.get("query"), str):
        return jsonify({"message": "Problems parsing JSON", "documentation_url": GRAPHQL_DOCS}), 400
    match = MUTATION.match(document["query"])
    field = match.group(1) if match else None
    if field not in DRAFT_AFTER:
        name = field or "the document"
        return _errors(None, "undefinedField", f"Field '{name}' doesn't exist on type 'Mutation'")
    variables = document.get("variables") or {}
    given = variables.get("input") if isinstance(variables, dict) else None
    if not isinstance(given, dict) or not isinstance(given.get("pullRequestId"), str):
        return _errors(field, "INVALID", "Variable $input is missing pullRequestId")
    try:
        repo, issue = sim.pull_by_node_id(given["pullRequestId"])
        issue = sim.set_draft(repo, identity, issue.number, DRAFT_AFTER[field])
    except NotFound as error:
        return _errors(field, "NOT_FOUND", error.message)
    except Forbidden:
        return _errors(field, "FORBIDDEN", f"{identity.login} does not have permission to {field}.")
    except ApiError as error:
        return _errors(
            field, "UNPROCESSABLE", (error.errors or [{}])[0].get("message", error.message)
        )
    assert issue.pull is not None  # noqa: S101 (set_draft works on pulls)
    result = {"clientMutationId": given.get("clientMutationId"),
              "pullRequest": {"isDraft": issue.pull.draft}}  # fmt: skip
    return jsonify({"data": {field: result}})


def _errors(field: str | None, kind: str, message: str) -> Response:
    error: dict = {"type": kind, "message": message}
    if field:
        error["path"] = [field]
    return jsonify({"data": {field: None} if field else None, "errors": [error]})
