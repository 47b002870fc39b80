"""The agent's side of the coordinator API: token, heartbeats, claims, progress and results."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests

from agent_app.exceptions import AttemptOver, CoordinatorRefused, CoordinatorUnavailable
from agent_app.redaction import Redactor
from cluster_core.storable import storable

logger = logging.getLogger(__name__)
TOKEN_MARGIN_SECONDS = 60  # renew the bearer token this long before it expires
ATTEMPT_HEADER = "X-Task-Attempt"


class CoordinatorClient:
    """Thread-safe client; one per agent process, shared by its task threads."""

    def __init__(
        self,
        url: str,
        name: str,
        key: str,
        ca_file: str = "",
        timeout: float = 15,
        secrets: list[str] = (),
    ) -> None:
        self.url = url.rstrip("/")
        self.name = name
        self._key = key
        # Every request body (progress, results, errors) passes the outbound filter; only the
        # token exchange, which must carry the key, does not.
        self._redact = Redactor([key, *secrets])
        self._timeout = timeout
        self._session = requests.Session()
        # An empty CA file means the system store (a public certificate) or plain HTTP.
        self._session.verify = ca_file or True
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_expires = 0.0
        self.agent_id: int | None = None

    def close(self) -> None:
        self._session.close()

    # Transport --------------------------------------------------------------------------

    def _authenticate(self) -> str:
        with self._lock:
            if self._token and time.monotonic() < self._token_expires - TOKEN_MARGIN_SECONDS:
                return self._token
            data = self._send(
                "POST", "/api/v1/agents/token", {"name": self.name, "key": self._key}, token=None
            )
            self._token = data["token"]
            self._token_expires = time.monotonic() + data["expires_in"]
            self.agent_id = data["agent_id"]
            return self._token

    def request(
        self, method: str, path: str, json: Any = None, attempt: str | None = None, timeout=None
    ) -> dict:
        """An authenticated call; renews the token once when the coordinator says it expired.
        ``attempt``: the task attempt a report is about (the coordinator refuses any but the
        current one: AttemptOver)."""
        headers = {ATTEMPT_HEADER: attempt} if attempt else {}
        for retry in range(2):
            token = self._authenticate()
            try:
                # Test output and model text may hold NULs, which the coordinator refuses.
                body = storable(self._redact.scrub(json))
                return self._send(method, path, body, token, headers, timeout or self._timeout)
            except CoordinatorRefused as exc:
                if attempt and (exc.status == 403 or exc.code == "attempt_over"):
                    # Not ours any more (reaped, cancelled, done) or another attempt's now.
                    raise AttemptOver(exc.status, exc.message, exc.code) from None
                if exc.status != 401 or retry:
                    raise
                with self._lock:
                    self._token = None
        raise AssertionError("unreachable")

    def _send(
        self,
        method: str,
        path: str,
        json: Any,
        token: str | None,
        headers: dict | None = None,
        timeout: float | None = None,
    ) -> dict:
        headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        try:
            response = self._session.request(
                method,
                self.url + path,
                json=json,
                headers=headers,
                timeout=timeout or self._timeout,
            )
        except requests.RequestException as exc:
            raise CoordinatorUnavailable(f"{method} {path}: {exc.__class__.__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise CoordinatorUnavailable(f"{method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                message, code = error["message"], str(error.get("code") or "")
            except (ValueError, KeyError, TypeError):
                message, code = response.text[:200], ""
            raise CoordinatorRefused(response.status_code, message, code)
        return response.json() if response.content else {}

    # Calls ------------------------------------------------------------------------------

    def heartbeat(
        self,
        state: str,
        load: float,
        tasks: dict[int, str],
        version: str,
        instance: str,
        address: str | None = None,
        error: str | None = None,
        timeout: float | None = None,
    ) -> dict:
        """Report liveness and renew the leases of ``tasks`` (task id -> attempt); the answer
        lists tasks to stop. ``error``: why the agent takes no work (with state "error").
        ``timeout``: a heartbeat that hangs must not outlast the lease it renews."""
        self._authenticate()
        body = {
            "state": state,
            "load": load,
            "tasks": [{"id": t, "attempt": a} for t, a in sorted(tasks.items())],
            "version": version,
            "instance": instance,
            "address": address,
        }
        if error:
            body["error"] = error
        path = f"/api/v1/agents/{self.agent_id}/heartbeat"
        return self.request("POST", path, body, timeout=timeout)

    def claim(self, task_id: int) -> dict:
        """Confirm an offer: the task, its ``attempt`` id and its ``github`` grant."""
        return self.request("POST", f"/api/v1/tasks/{task_id}/claim")

    # Reports on a task name the attempt they belong to.

    def update(self, task_id: int, attempt: str, **fields: Any) -> dict:
        return self.request("PATCH", f"/api/v1/tasks/{task_id}", fields, attempt)

    def events(self, task_id: int, attempt: str, events: list[dict]) -> dict:
        return self.request("POST", f"/api/v1/tasks/{task_id}/events", {"events": events}, attempt)

    def github_token(self, task_id: int, attempt: str, ref: str) -> dict:
        """A renewed GitHub grant for the task, to push ``ref`` (its own branch)."""
        path = f"/api/v1/tasks/{task_id}/github-token"
        return self.request("POST", path, {"ref": ref}, attempt)

    def release(self, task_id: int, attempt: str, reason: str) -> dict:
        path = f"/api/v1/tasks/{task_id}/release"
        return self.request("POST", path, {"reason": reason}, attempt)

    def finish(self, task_id: int, attempt: str, **result: Any) -> dict:
        return self.request("POST", f"/api/v1/tasks/{task_id}/result", result, attempt)

    def me(self) -> dict:
        self._authenticate()
        return self.request("GET", f"/api/v1/agents/{self.agent_id}")
