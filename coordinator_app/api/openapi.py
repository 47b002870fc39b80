"""``/api/v1/openapi.json``, generated from the routes themselves so it cannot drift."""

from __future__ import annotations

import re

from flask import current_app

from coordinator_app import __version__
from coordinator_app.api import bp

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
PUBLIC_ENDPOINTS = {"api.agent_token", "api.admin_token", "api.openapi_document"}


def build_document() -> dict:
    """An OpenAPI 3.1 document listing every ``/api/v1`` route, its method and who may call it."""
    paths: dict[str, dict] = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        view = current_app.view_functions[rule.endpoint]
        path = _PARAM.sub(r"{\2}", rule.rule)
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if conv == "int" else "string"},
            }
            for conv, name in _PARAM.findall(rule.rule)
        ]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            doc = (view.__doc__ or rule.endpoint).strip().splitlines()[0]
            operation = {
                "operationId": rule.endpoint.removeprefix("api."),
                "summary": doc,
                "parameters": parameters,
                "responses": {"default": {"$ref": "#/components/responses/Error"}},
            }
            kinds = getattr(view, "required_kinds", ())
            if rule.endpoint in PUBLIC_ENDPOINTS:
                operation["security"] = []
            else:
                operation["security"] = [{"bearer": []}]
                operation["x-allowed-callers"] = list(kinds)
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Claude Code Cluster coordinator", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "Every error: {error: {status, code, message}}",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "required": ["status", "code", "message"],
                                    }
                                },
                            }
                        }
                    },
                }
            },
        },
    }


@bp.get("/openapi.json")
def openapi_document():
    """This API's OpenAPI document."""
    return build_document()
