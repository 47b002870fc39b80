"""`create_app`: the Flask app serving the REST API, git over HTTP and /_sim/."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from simulators.github import admin, api, git_http, graphql
from simulators.github.api.common import EXTENSION
from simulators.github.config import SimulatorConfig
from simulators.github.exceptions import DOCS
from simulators.github.simulator import GitHubSimulator
from simulators.github.urls import API_PREFIX


def create_app(
    config: SimulatorConfig | None = None, simulator: GitHubSimulator | None = None
) -> Flask:
    """The simulator's WSGI app; its state is ``app.extensions["github_sim"]``.

    The caller owns the simulator: ``app.extensions["github_sim"].close()`` stops its webhook
    worker and removes its temporary data directory.
    """
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # GitHub's field order, not sorted
    app.json.compact = True  # type: ignore[attr-defined]
    sim = simulator or GitHubSimulator(config or SimulatorConfig.load())
    app.extensions[EXTENSION] = sim
    app.register_blueprint(api.bp)
    app.register_blueprint(graphql.bp)
    app.register_blueprint(git_http.bp)
    app.register_blueprint(admin.bp)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(error: HTTPException) -> Response | HTTPException:
    """Routing errors (unknown path, wrong method) in GitHub's JSON shape under the API."""
    if not request.path.startswith((API_PREFIX, "/_sim")):
        return error
    message = "Not Found" if error.code == 404 else (error.name or "Error")
    response = jsonify({"message": message, "documentation_url": DOCS, "status": str(error.code)})
    response.status_code = error.code or 500
    return response
