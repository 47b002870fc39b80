"""The agent's own small HTTP API (health, status, metrics, direct execution, cancellation)."""

from __future__ import annotations

import hmac
import logging
import ssl
import threading

from flask import Flask, Response, jsonify, request
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from werkzeug.serving import WSGIRequestHandler, make_server

from agent_app import __version__
from agent_app.exceptions import AgentError, CoordinatorRefused

logger = logging.getLogger(__name__)


def create_api(worker, token: str) -> Flask:
    """The API for ``worker``; every endpoint but /health needs ``Authorization: Bearer token``."""
    app = Flask("agent_api")
    registry = CollectorRegistry()
    Gauge(
        "claude_agent_running_tasks", "Tasks running on this agent", registry=registry
    ).set_function(lambda: len(worker.tasks))
    Gauge("claude_agent_load", "Running tasks / max tasks", registry=registry).set_function(
        lambda: worker.load
    )
    Gauge(
        "claude_agent_workspace_bytes", "Bytes used by workspaces", registry=registry
    ).set_function(lambda: sum(worker.workspaces.disk_usage().values()))

    @app.before_request
    def _authenticate():
        if request.path == "/health":
            return None
        given = request.headers.get("Authorization", "")
        if not token or not hmac.compare_digest(given, f"Bearer {token}"):
            return jsonify(
                error={
                    "status": 401,
                    "code": "unauthorized",
                    "message": "missing or wrong bearer token",
                }
            ), 401
        return None

    @app.get("/health")
    def health():
        return {"status": "ok" if not worker.cold.is_set() else "stopping"}

    @app.get("/status")
    def status():
        return {
            "name": worker.config.name,
            "state": worker._state(),
            "load": worker.load,
            "version": __version__,
            "max_tasks": worker.config.max_tasks,
            "specialties": worker.config.specialties,
            "status": worker.status_line(),
            "tasks": [
                {
                    "id": t.id,
                    "repository": t.data["repository"],
                    "issue_number": t.data["issue_number"],
                    "phase": t.phase,
                }
                for t in list(worker.tasks.values())
            ],
        }

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    @app.post("/execute_task")
    def execute_task():
        data = request.get_json(silent=True) or {}
        task_id = data.get("task_id")
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            return jsonify(
                error={
                    "status": 400,
                    "code": "invalid_request",
                    "message": "task_id (integer) is required",
                }
            ), 400
        if worker.stopping.is_set() or len(worker.tasks) >= worker.config.max_tasks:
            return jsonify(
                error={"status": 409, "code": "conflict", "message": "agent is full or stopping"}
            ), 409
        try:
            # The same confirmation as a queue claim: the coordinator decides.
            task = worker.coordinator.claim(task_id)
        except CoordinatorRefused as exc:
            return jsonify(
                error={"status": exc.status, "code": "refused", "message": str(exc)}
            ), exc.status
        except AgentError as exc:
            return jsonify(error={"status": 503, "code": "unavailable", "message": str(exc)}), 503
        worker.start(task)
        return {"accepted": task_id}, 202

    @app.post("/cancel_task/<int:task_id>")
    def cancel_task(task_id: int):
        task = worker.tasks.get(task_id)
        if task is None:
            return jsonify(
                error={
                    "status": 404,
                    "code": "not_found",
                    "message": f"task {task_id} is not running here",
                }
            ), 404
        task.cancel.set()
        return {"cancelled": task_id}

    return app


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context for the API: TLS 1.2 or later, with this certificate and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class _RequestHandler(WSGIRequestHandler):
    # A client that stalls (in the TLS handshake or its request) loses its connection.
    timeout = 30


class ApiServer:
    """Serves the API in a daemon thread, over HTTPS when given a certificate and key."""

    def __init__(
        self, app: Flask, host: str, port: int, *, cert_file: str = "", key_file: str = ""
    ) -> None:
        context = tls_context(cert_file, key_file) if cert_file else None
        self._server = make_server(host, port, app, threaded=True, request_handler=_RequestHandler)
        if context is not None:
            # Not make_server(ssl_context=...): werkzeug's wrap shakes hands in accept(), so one
            # client that connects and stays silent would stall every other. Here each
            # connection's thread shakes hands on its first read, under the handler's timeout.
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self._server.ssl_context = context
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="agent-api", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
