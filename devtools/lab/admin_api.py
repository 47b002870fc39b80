"""The coordinator's REST API as an admin: what the demo, the local cluster and the lab's
checks call it through."""

from __future__ import annotations

import requests

# The admin account the lab's clusters create and drive the coordinator as.
ADMIN = "admin"


class AdminApi:
    """Logs in on first use (``POST /api/v1/auth/token``), then calls with the bearer token;
    an HTTP error raises ``requests.HTTPError``."""

    def __init__(self, url: str, username: str, password: str, verify: str | bool = True) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self._password = password
        self.verify = verify
        self._token: str | None = None

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """``method`` on ``path`` (from ``/api/v1/...``); the decoded JSON answer."""
        answer = requests.request(
            method,
            self.url + path,
            json=body,
            timeout=10,
            verify=self.verify,
            headers=self.headers(),
        )
        answer.raise_for_status()
        return answer.json()

    def headers(self) -> dict[str, str]:
        """The Authorization header of the admin's token."""
        if self._token is None:
            answer = requests.post(
                f"{self.url}/api/v1/auth/token",
                timeout=10,
                verify=self.verify,
                json={"username": self.username, "password": self._password},
            )
            answer.raise_for_status()
            self._token = answer.json()["token"]
        return {"Authorization": f"Bearer {self._token}"}
