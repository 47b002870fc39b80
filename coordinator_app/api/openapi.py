"""``/api/v1/openapi.json``, generated from the routes and their declared operations
(``operations.OPERATIONS``), so it cannot drift from what the API checks and answers."""

from __future__ import annotations

import re

from flask import current_app

from coordinator_app import __version__
from coordinator_app.api import bp
from coordinator_app.api.operations import OPERATIONS, Operation
from coordinator_app.api.schemas import COMPONENTS, ID, ref

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
PUBLIC_ENDPOINTS = {"api.agent_token", "api.admin_token", "api.openapi_document"}
ERROR = {"$ref": "#/components/responses/Error"}


def build_document() -> dict:
    """An OpenAPI 3.1 document of every ``/api/v1`` route: who may call it, what it takes,
    what it answers with each status, and the links from its answer to the next operations."""
    paths: dict[str, dict] = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        path = _PARAM.sub(r"{\2}", rule.rule)
        path_ids = [name for _, name in _PARAM.findall(rule.rule)]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule.endpoint, path_ids)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Claude Code Cluster coordinator", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "Every error: {error: {status, code, message}}",
                    "content": {"application/json": {"schema": ref("Error")}},
                }
            },
        },
    }


def _operation(endpoint: str, path_ids: list[str]) -> dict:
    view = current_app.view_functions[endpoint]
    declared = OPERATIONS[endpoint.removeprefix("api.")]
    parameters = [{"name": n, "in": "path", "required": True, "schema": ID} for n in path_ids]
    parameters += [{"name": n, "in": "query", "schema": s} for n, s in declared.query.items()]
    parameters += [
        {"name": n, "in": "header", "required": True, "schema": s}
        for n, s in declared.headers.items()
    ]
    operation = {
        "operationId": endpoint.removeprefix("api."),
        "summary": (view.__doc__ or endpoint).strip().splitlines()[0],
        "parameters": parameters,
    }
    if declared.body:
        operation["requestBody"] = {
            "required": declared.body_required,
            "content": {"application/json": {"schema": declared.body}},
        }
    public = endpoint in PUBLIC_ENDPOINTS
    operation["responses"] = _responses(declared, public, bool(path_ids))
    if public:
        operation["security"] = []
    else:
        operation["security"] = [{"bearer": []}]
        operation["x-allowed-callers"] = list(getattr(view, "required_kinds", ()))
    return operation


def _responses(declared: Operation, public: bool, has_ids: bool) -> dict:
    """The success answer with its links, then every error status the operation may answer."""
    success: dict = {"description": declared.returns or "No content"}
    if declared.returns:
        success["content"] = {"application/json": {"schema": ref(declared.returns)}}
    if declared.links:
        success["links"] = {
            name: {"operationId": target, "parameters": parameters}
            for name, (target, parameters) in declared.links.items()
        }
    errors = {429, *declared.refusals}  # every /api/v1 request is rate-limited
    if not public:
        errors |= {401, 403}
    if has_ids:
        errors |= {400, 404}
    if declared.body:
        errors |= {400, 413, 415}
    if declared.query or declared.headers:
        errors.add(400)
    return {str(declared.status): success} | {str(status): ERROR for status in sorted(errors)}


@bp.get("/openapi.json")
def openapi_document():
    """This API's OpenAPI document."""
    return build_document()
