"""How the coordinator signs in to GitHub: as a GitHub App (recommended) or with one token.

App mode: an RS256 JWT signed with the App's private key, reused for most of its life, is
exchanged for installation access tokens (PyGithub's App auth): one per installation for the
coordinator's own calls (PyGithub renews it), and one per task, narrowed to the task's
repository and ``TASK_PERMISSIONS``, for the agent that runs it.

Token mode: one token (a personal access token) does everything; a task's grant is that same
token, neither narrowed nor short-lived, which is why App mode is recommended.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from github import Auth, Github, GithubIntegration, UnknownObjectException

from cluster_core.errors import ConfigError
from cluster_core.github_client import client_with_auth, github_client
from coordinator_app.config import CoordinatorConfig

logger = logging.getLogger(__name__)

# What an agent may do with its task's token: push its branch, open the pull request, comment.
# Never `workflows` (workflow files run with the repository's secrets) nor `administration`.
TASK_PERMISSIONS = {
    "contents": "write",
    "pull_requests": "write",
    "issues": "write",
    "metadata": "read",
}
# GitHub refuses App JWTs that live longer than ten minutes; leave room for clock drift.
JWT_SECONDS = 540
JWT_RENEW_SECONDS = 420


@dataclass(frozen=True)
class Grant:
    """A GitHub credential for one task's repository."""

    token: str
    expires_at: datetime | None  # None: a personal token (token mode)
    repository: str
    permissions: dict[str, str] | None  # None: whatever the token's scopes allow (token mode)


@dataclass(frozen=True)
class Identity:
    """The account the cluster acts as on GitHub: the App's bot, or the token's user."""

    login: str
    id: int

    def commit_author(self, api_url: str) -> tuple[str, str]:
        """(name, email) for commits, with GitHub's no-reply address so they link to the
        account."""
        return self.login, noreply_email(api_url, self.login, self.id)


def noreply_email(api_url: str, login: str, user_id: int | None) -> str:
    """GitHub's private commit address for an account: ``ID+login@users.noreply.<host>``."""
    host = urlsplit(api_url).hostname or "github.com"
    host = "github.com" if host == "api.github.com" else host
    return f"{user_id}+{login}@users.noreply.{host}" if user_id else f"{login}@users.noreply.{host}"


class TokenAuth:
    """Token mode: every call, and every task, uses the one configured token."""

    mode = "token"

    def __init__(self, api_url: str, token: str, timeout: int = 15) -> None:
        self.api_url = api_url
        self._token = token
        self._client = github_client(api_url, token, timeout)
        self._user: Identity | None = None

    def client(self, repository: str | None = None) -> Github:
        return self._client

    def grant(self, repository: str) -> Grant:
        return Grant(self._token, None, repository, None)

    def identity(self, repository: str | None = None) -> Identity:
        """The token's user (read once)."""
        if self._user is None:
            user = self._client.get_user()
            self._user = Identity(user.login, user.id)
        return self._user

    @property
    def login(self) -> str:
        return self.identity().login

    @property
    def known_login(self) -> str | None:
        """The login if it has been read already."""
        return self._user.login if self._user else None

    def installations(self) -> dict[int, list[str]]:
        raise NotImplementedError("token mode has no installations")

    def forget(self) -> None:
        """Nothing is cached per repository in token mode."""

    def close(self) -> None:
        self._client.close()


class _ReusedJWT(Auth.AppAuth):
    """The App's JWT, signed once and reused until shortly before it expires: minting a
    task's token then costs one API call, not a signature as well."""

    def __init__(self, app_id: int, private_key: str) -> None:
        super().__init__(app_id, private_key, jwt_expiry=JWT_SECONDS)
        self._lock = threading.Lock()
        self._jwt, self._renew_at = "", 0.0

    @property
    def token(self) -> str:
        with self._lock:
            if time.monotonic() >= self._renew_at:
                self._jwt = self.create_jwt()
                self._renew_at = time.monotonic() + JWT_RENEW_SECONDS
            return self._jwt


class AppAuth:
    """App mode: the App's JWT for App endpoints, installation tokens for everything else."""

    mode = "app"

    def __init__(
        self,
        api_url: str,
        app_id: int,
        private_key: str,
        installation_ids: list[int] = (),
        timeout: int = 15,
    ) -> None:
        self.api_url = api_url
        self.installation_ids = set(installation_ids)
        self._auth = _ReusedJWT(app_id, private_key)
        self._timeout = timeout
        self._app = client_with_auth(api_url, self._auth, timeout)
        self._integration = GithubIntegration(
            auth=self._auth,
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
        self._lock = threading.Lock()
        self._clients: dict[int, Github] = {}
        self._installation_of: dict[str, int] = {}
        self._login: str | None = None
        self._bot: Identity | None = None

    def check_key(self) -> None:
        """Sign a JWT once: a missing, empty or malformed key fails here."""
        self._auth.create_jwt()

    def installation_of(self, repository: str) -> int:
        """The installation covering ``repository``; GitHub's 404 (UnknownObjectException)
        when there is none, or when it is not one of ``installation_ids``."""
        key = repository.lower()
        with self._lock:
            found = self._installation_of.get(key)
        if found is None:
            owner, _, name = repository.partition("/")
            found = self._integration.get_repo_installation(owner, name).id
            if self.installation_ids and found not in self.installation_ids:
                raise UnknownObjectException(404, {"message": "Not an installation served"}, {})
            self.remember(repository, found)
        return found

    def remember(self, repository: str, installation_id: int) -> None:
        """Note which installation covers ``repository`` (from a sync or a delivery)."""
        with self._lock:
            self._installation_of[repository.lower()] = installation_id

    def forget(self) -> None:
        """Drop what is known of repositories' installations (an installation changed)."""
        with self._lock:
            self._installation_of.clear()

    def client(self, repository: str | None = None) -> Github:
        """A client acting as the installation that covers ``repository``."""
        if repository is None:
            return self._app
        return self._client_of(self.installation_of(repository))

    def _client_of(self, installation_id: int) -> Github:
        """The installation's client (its token renewed by PyGithub), made once."""
        with self._lock:
            client = self._clients.get(installation_id)
            if client is None:
                auth = self._auth.get_installation_auth(installation_id)
                client = client_with_auth(self.api_url, auth, self._timeout)
                self._clients[installation_id] = client
        return client

    def grant(self, repository: str) -> Grant:
        """A new installation token for ``repository`` alone, with ``TASK_PERMISSIONS``."""
        installation_id = self.installation_of(repository)
        _, data = self._app.requester.requestJsonAndCheck(
            "POST",
            f"/app/installations/{installation_id}/access_tokens",
            input={
                "repositories": [repository.partition("/")[2]],
                "permissions": TASK_PERMISSIONS,
            },
        )
        expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
        return Grant(data["token"], expires, repository, dict(data.get("permissions") or {}))

    @property
    def login(self) -> str:
        """The App's bot account: ``<slug>[bot]`` (read once)."""
        if self._login is None:
            self._login = f"{self._integration.get_app().slug}[bot]"
        return self._login

    @property
    def known_login(self) -> str | None:
        """The login if it has been read already."""
        return self._login

    def identity(self, repository: str) -> Identity:
        """The bot account with its user id (read as the installation covering
        ``repository``: an App's JWT is good for App endpoints only)."""
        if self._bot is None:
            self._bot = Identity(self.login, self.client(repository).get_user(self.login).id)
        return self._bot

    def installations(self) -> dict[int, list[str]]:
        """Each installation's repositories (``installation_ids`` only, when set; suspended
        installations have none: GitHub refuses their tokens)."""
        found: dict[int, list[str]] = {}
        for installation in self._integration.get_installations():
            if self.installation_ids and installation.id not in self.installation_ids:
                continue
            if installation.suspended_at is not None:
                logger.warning("Installation %s is suspended: not served", installation.id)
                continue
            client = self._client_of(installation.id)
            names = [r["full_name"] for r in _paged(client, "/installation/repositories")]
            found[installation.id] = names
            for name in names:
                self.remember(name, installation.id)
        return found

    def close(self) -> None:
        self._app.close()
        self._integration.close()
        with self._lock:
            for client in self._clients.values():
                client.close()


def _paged(client: Github, path: str) -> list[dict]:
    """Every item of a paginated listing that wraps its items (``/installation/repositories``
    lists under ``repositories``)."""
    items: list[dict] = []
    page = 1
    while True:
        _, data = client.requester.requestJsonAndCheck(
            "GET", path, parameters={"per_page": 100, "page": page}
        )
        batch = data.get("repositories") or []
        items += batch
        if len(batch) < 100:
            return items
        page += 1


def from_config(config: CoordinatorConfig) -> TokenAuth | AppAuth:
    """The configured way in: App mode when ``github_app_id`` is set, else token mode. A key
    that cannot sign a JWT is refused here, not at the first claim."""
    if not config.github_app_id:
        return TokenAuth(config.github_api_url, config.github_token)
    path = config.github_app_private_key_file
    try:
        with open(path) as handle:
            key = handle.read()
        auth = AppAuth(
            config.github_api_url, config.github_app_id, key, config.github_app_installation_ids
        )
        auth.check_key()
    except (OSError, ValueError, TypeError, AssertionError) as exc:
        raise ConfigError(f"github_app_private_key_file {path!r} cannot sign: {exc!r}") from exc
    return auth
