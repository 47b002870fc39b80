"""Where things live on the simulated server: every `url`/`html_url` in a response is made here."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

API_PREFIX = "/api/v3"  # GitHub Enterprise Server's REST prefix, what PyGithub expects of a GHES


def iso(moment: datetime | None) -> str | None:
    """GitHub's timestamp format (UTC, seconds, trailing Z)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def node_id(kind: str, number: int) -> str:
    """A GraphQL-style global id, opaque but stable like GitHub's legacy node ids."""
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


@dataclass(frozen=True)
class Urls:
    """URL builder for one server address (``web`` is scheme://host[:port], no trailing slash)."""

    web: str

    @property
    def api(self) -> str:
        """Root of the REST API."""
        return self.web + API_PREFIX

    def user(self, login: str) -> str:
        """API URL of an account."""
        return f"{self.api}/users/{login}"

    def user_html(self, login: str) -> str:
        """Web page of an account."""
        return f"{self.web}/{login}"

    def avatar(self, user_id: int) -> str:
        """Avatar image of an account (GHES serves them under /avatars)."""
        return f"{self.web}/avatars/u/{user_id}?v=4"

    def repo(self, full_name: str) -> str:
        """API URL of a repository."""
        return f"{self.api}/repos/{full_name}"

    def repo_html(self, full_name: str) -> str:
        """Web page of a repository."""
        return f"{self.web}/{full_name}"

    def clone(self, full_name: str) -> str:
        """Smart-HTTP clone URL of a repository."""
        return f"{self.web}/{full_name}.git"

    def issue(self, full_name: str, number: int) -> str:
        """API URL of an issue (pull requests have one too)."""
        return f"{self.repo(full_name)}/issues/{number}"

    def pull(self, full_name: str, number: int) -> str:
        """API URL of a pull request."""
        return f"{self.repo(full_name)}/pulls/{number}"

    def hook(self, full_name: str, hook_id: int) -> str:
        """API URL of a repository webhook."""
        return f"{self.repo(full_name)}/hooks/{hook_id}"

    def installation(self, installation_id: int) -> str:
        """API URL of an App installation."""
        return f"{self.api}/app/installations/{installation_id}"
