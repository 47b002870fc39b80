"""The agent's side of the coordinator API: token, heartbeats, claims, progress and results."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests

from agent_app.exceptions import CoordinatorRefused, CoordinatorUnavailable
from agent_app.redaction import Redactor

logger = logging.getLogger(__name__)
TOKEN_MARGIN_SECONDS = 60  # renew the bearer token this long before it expires


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
                "POST",
                "/api/v1/agents/token",
                json={"name": self.name, "key": self._key},
                token=None,
            )
            self._token = data["token"]
            self._token_expires = time.monotonic() + data["expires_in"]
            self.agent_id = data["agent_id"]
            return self._token

    def request(self, method: str, path: str, json: Any = None) -> dict:
        """An authenticated call; renews the token once when the coordinator says it expired."""
        for attempt in range(2):
            token = self._authenticate()
            try:
                return self._send(method, path, json=self._redact.scrub(json), token=token)
            except CoordinatorRefused as exc:
                if exc.status != 401 or attempt:
                    raise
                with self._lock:
                    self._token = None
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, json: Any, token: str | None) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = self._session.request(
                method, self.url + path, json=json, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise CoordinatorUnavailable(f"{method} {path}: {exc.__class__.__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise CoordinatorUnavailable(f"{method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise CoordinatorRefused(response.status_code, message)
        return response.json() if response.content else {}

    # Calls ------------------------------------------------------------------------------

    def heartbeat(
        self,
        state: str,
        load: float,
        tasks: list[int],
        version: str,
        instance: str,
        address: str | None = None,
        error: str | None = None,
    ) -> dict:
        """Report liveness and renew task leases; the answer lists tasks to stop. ``error``:
        why the agent takes no work (with state "error")."""
        self._authenticate()
        body = {
            "state": state,
            "load": load,
            "tasks": tasks,
            "version": version,
            "instance": instance,
            "address": address,
        }
        if error:
            body["error"] = error
        return self.request("POST", f"/api/v1/agents/{self.agent_id}/heartbeat", body)

    def claim(self, task_id: int) -> dict:
        return self.request("POST", f"/api/v1/tasks/{task_id}/claim")

    def update(self, task_id: int, **fields: Any) -> dict:
        return self.request("PATCH", f"/api/v1/tasks/{task_id}", fields)

    def events(self, task_id: int, events: list[dict]) -> dict:
        return self.request("POST", f"/api/v1/tasks/{task_id}/events", {"events": events})

    def github_token(self, task_id: int, ref: str) -> dict:
        """A renewed GitHub grant for the task, to push ``ref`` (its own branch)."""
        return self.request("POST", f"/api/v1/tasks/{task_id}/github-token", {"ref": ref})

    def release(self, task_id: int, reason: str) -> dict:
        return self.request("POST", f"/api/v1/tasks/{task_id}/release", {"reason": reason})

    def finish(self, task_id: int, **result: Any) -> dict:
        return self.request("POST", f"/api/v1/tasks/{task_id}/result", result)

    def me(self) -> dict:
        self._authenticate()
        return self.request("GET", f"/api/v1/agents/{self.agent_id}")
