# Copyright: Claude Code Cluster contributors
# MIT License
"""The coordinator's REST API as the cluster's Ansible modules use it.

One transport function (``send``, on ``ansible.module_utils.urls.open_url``; tests replace it),
one client that logs in as an admin and turns every failure into a ``CoordinatorAPIError``
carrying what a ``fail_json`` needs: the method, URL, HTTP status and the coordinator's message.
"""

from __future__ import annotations

import json
import os
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ansible.module_utils.urls import SSLValidationError, open_url

# Ansible imports this file on its own, without the project's packages: the lists below copy
# cluster_core's, and tests/test_architecture.py checks that they agree.
# Task states in which an agent holds a task (cluster_core.states.RUNNING_STATES): a task in
# review does not hold its agent.
RUNNING_STATES = ("assigned", "in_progress", "testing")
# Every specialty the coordinator knows (cluster_core.specialties.SPECIALTIES).
SPECIALTIES = (
    "backend",
    "frontend",
    "testing",
    "devops",
    "database",
    "security",
    "documentation",
    "general",
)
PAGE_SIZE = 100


def coordinator_argument_spec() -> dict[str, dict[str, Any]]:
    """The options every cluster module takes to reach the coordinator as an admin."""
    return {
        "coordinator_url": {"type": "str", "required": True},
        "ca_path": {"type": "path"},
        "validate_certs": {"type": "bool", "default": True},
        "admin_username": {"type": "str", "default": "admin"},
        "admin_password": {"type": "str", "required": True, "no_log": True},
        "timeout": {"type": "float", "default": 30.0},
    }


@dataclass
class Response:
    """What the coordinator answered: the HTTP status and the decoded JSON body (or None)."""

    status: int
    data: Any


class CoordinatorAPIError(Exception):
    """A call to the coordinator failed; ``context()`` is extra fields for ``fail_json``."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        status: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.status = status
        self.body = body

    def context(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "status": self.status, "body": self.body}


def send(
    method: str,
    url: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    ca_path: str | None = None,
    validate_certs: bool = True,
    timeout: float = 30.0,
) -> Response:
    """One HTTP exchange. HTTP errors are answers (a Response); no answer at all raises."""
    data = None
    all_headers = {"Accept": "application/json", **(headers or {})}
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    try:
        handle = open_url(
            url,
            data=data,
            headers=all_headers,
            method=method,
            timeout=timeout,
            validate_certs=validate_certs,
            ca_path=ca_path,
            follow_redirects="none",
            use_netrc=False,
        )
        status, raw = handle.getcode(), handle.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read() if exc.fp else b""
    except SSLValidationError as exc:
        raise CoordinatorAPIError(
            f"cannot verify the coordinator's certificate at {url} (set ca_path to the cluster "
            f"CA, or validate_certs: false for a throwaway lab): {exc}",
            method=method,
            url=url,
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CoordinatorAPIError(
            f"cannot reach the coordinator at {url}: {reason}", method=method, url=url
        ) from exc
    return Response(status, _decode(raw))


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")[:500]


def error_message(data: Any) -> str:
    """The coordinator's message from its one error format, or the raw body."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("message", ""))
    return "" if data is None else str(data)


class CoordinatorClient:
    """The coordinator's admin API: logs in on first use, raises CoordinatorAPIError."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        ca_path: str | None = None,
        validate_certs: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.base = url.rstrip("/")
        self.username = username
        self._password = password
        if not self.base.startswith("https://"):
            ca_path = None  # plain HTTP (a test coordinator): no certificate to check
        elif ca_path and not os.path.isfile(ca_path):
            raise CoordinatorAPIError(
                f"ca_path {ca_path} is not a file: it should be the PEM of the CA that signed "
                f"the coordinator's certificate ({self.base})",
                url=self.base,
            )
        self._transport = {"ca_path": ca_path, "validate_certs": validate_certs, "timeout": timeout}
        self._token: str | None = None

    @classmethod
    def from_module(cls, module) -> CoordinatorClient:
        """A client from the options of ``coordinator_argument_spec()``."""
        p = module.params
        return cls(
            p["coordinator_url"],
            p["admin_username"],
            p["admin_password"],
            ca_path=p["ca_path"],
            validate_certs=p["validate_certs"],
            timeout=p["timeout"],
        )

    def _url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = f"{self.base}/api/v1{path}"
        return f"{url}?{urlencode(params)}" if params else url

    def login(self) -> None:
        """Trade the admin's username and password for a bearer token."""
        url = self._url("/auth/token")
        answer = send(
            "POST",
            url,
            body={"username": self.username, "password": self._password},
            **self._transport,
        )
        if answer.status == 401:
            raise CoordinatorAPIError(
                f"the coordinator refused the admin credentials for {self.username!r}: "
                f"{error_message(answer.data)}",
                method="POST",
                url=url,
                status=401,
                body=answer.data,
            )
        if answer.status != 200 or not isinstance(answer.data, dict) or "token" not in answer.data:
            raise CoordinatorAPIError(
                f"admin login at {url} failed with HTTP {answer.status}: "
                f"{error_message(answer.data)} (is this the coordinator's URL?)",
                method="POST",
                url=url,
                status=answer.status,
                body=answer.data,
            )
        self._token = answer.data["token"]

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> Response:
        """Call the API as the admin; a status outside ``expect`` raises with context."""
        if self._token is None:
            self.login()
        url = self._url(path, params)
        answer = send(
            method,
            url,
            body=body,
            headers={"Authorization": f"Bearer {self._token}"},
            **self._transport,
        )
        if answer.status not in expect:
            raise CoordinatorAPIError(
                f"{method} {url} answered HTTP {answer.status}: {error_message(answer.data)}",
                method=method,
                url=url,
                status=answer.status,
                body=answer.data,
            )
        return answer

    def agents(self) -> Iterator[dict[str, Any]]:
        """Every registered agent, page after page, in the coordinator's order."""
        page = 1
        while True:
            data = self.request("GET", "/agents", params={"per_page": PAGE_SIZE, "page": page}).data
            yield from data["items"]
            if not data["_links"].get("next"):
                return
            page += 1

    def find_agent(self, name: str) -> dict[str, Any] | None:
        """The registered agent called ``name``, or None."""
        return next((agent for agent in self.agents() if agent["name"] == name), None)

    def accepts_agent_key(self, name: str, key: str) -> bool:
        """Whether the coordinator trades this agent's name and key for a token (as it would
        for the agent itself): False when it refuses them, an error when it cannot say."""
        url = self._url("/agents/token")
        answer = send("POST", url, body={"name": name, "key": key}, **self._transport)
        if answer.status == 200:
            return True
        if answer.status in (400, 401):  # a malformed or wrong key, or no such agent
            return False
        raise CoordinatorAPIError(
            f"POST {url} answered HTTP {answer.status}: {error_message(answer.data)}",
            method="POST",
            url=url,
            status=answer.status,
            body=answer.data,
        )

    def get_agent(self, agent_id: int) -> dict[str, Any]:
        return self.request("GET", f"/agents/{agent_id}").data

    def held_task_ids(self, agent_id: int) -> list[int]:
        """Ids of the tasks the agent holds now (assigned through testing), oldest first."""
        data = self.request("GET", f"/agents/{agent_id}/tasks", params={"per_page": PAGE_SIZE}).data
        return sorted(t["id"] for t in data["items"] if t["state"] in RUNNING_STATES)
