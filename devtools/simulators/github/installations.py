"""The GitHub App: its JWT, webhook, installations, installation tokens and what tokens reach."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import jwt

from simulators.github.app_permissions import (
    ACCEPTED_HEADER,
    INTEGRATION_DENIED,
    MANDATORY,
    Requirement,
    grants,
    permissions_with,
)
from simulators.github.exceptions import (
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
    custom_error,
    invalid_field,
)
from simulators.github.models import (
    App,
    Hook,
    Installation,
    Permission,
    Repo,
    Selection,
    Token,
    utcnow,
)
from simulators.github.payloads import Payloads

if TYPE_CHECKING:
    from simulators.github.config import SimulatorConfig
    from simulators.github.simulator import Identity
    from simulators.github.store import Store
    from simulators.github.webhooks import WebhookDispatcher

logger = logging.getLogger(__name__)

# GitHub accepts App JWTs issued up to 10 minutes long and allows a little clock drift.
JWT_LEEWAY_SECONDS = 60
# What the App's webhook subscribes to unless the seed says otherwise.
DEFAULT_EVENTS = [
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "push",
]
MINTING_DOCS = (
    "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"
)
SUSPENDED = "This installation has been suspended"
NOT_IN_INSTALLATION = (
    "There is at least one repository that does not exist or is not accessible to the parent "
    "installation."
)
NOT_GRANTED = "The permissions requested are not granted to this installation."


def _http_url(url: object) -> bool:
    """Whether ``url`` is an http(s) URL with a host, as GitHub wants of a webhook's."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)


class InstallationActions:
    """App operations of :class:`~simulators.github.simulator.GitHubSimulator` (a mixin).

    Reach is decided live: a repository taken out of an installation is out of every one of its
    tokens' reach at once, as on GitHub.
    """

    store: Store
    config: SimulatorConfig
    webhooks: WebhookDispatcher
    if TYPE_CHECKING:
        payloads: Payloads

        def repo(self, repo: Repo | str) -> Repo: ...
        def permission(self, who: Identity | str | None, repo: Repo) -> Permission: ...
        def require(
            self, who: Identity | str | None, repo: Repo, needed: Permission
        ) -> Permission: ...

    # the App

    def app(self) -> App:
        """The App, or NotFound when the seed made none."""
        app = self.store.app
        if app is None:
            raise NotFound()
        return app

    def verify_app_jwt(self, token: str) -> App:
        """The App whose key signed ``token`` (RS256, unexpired, `iss` = App id), or 401."""
        app = self.store.app
        if app is None:
            raise Unauthorized("A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                token,
                app.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=JWT_LEEWAY_SECONDS,
            )
        except jwt.PyJWTError as exc:
            logger.info("App JWT rejected: %s", exc)
            raise Unauthorized("A JSON web token could not be decoded") from None
        if str(claims["iss"]) not in (str(app.id), app.client_id):
            raise Unauthorized("'Issuer' claim ('iss') must be an Integer")
        if claims["exp"] - claims["iat"] > 600 + JWT_LEEWAY_SECONDS:
            raise Unauthorized("'Expiration time' claim ('exp') is too far in the future")
        return app

    def set_app_webhook(
        self, url: str | None, *, secret: str | None = None, events: list[str] | None = None
    ) -> Hook | None:
        """Point the App's webhook at ``url`` signed with ``secret``; None or "" turns it off
        (its deliveries stay recorded and can be sent again)."""
        app = self.app()
        with self.store.lock:
            if events is not None:
                app.events = list(events)
            if app.hook is None:
                if not url:
                    return None
                app.hook = Hook(id=self.store.next_id(), url=url)
            hook = app.hook
            hook.url, hook.secret, hook.events = url or hook.url, secret or None, app.events
            hook.active = bool(url)
            return hook if hook.active else None

    def app_hook(self) -> Hook:
        """The App's webhook, on or off, or NotFound when it never had one."""
        hook = self.app().hook
        if hook is None:
            raise NotFound()
        return hook

    def configure_app_webhook(
        self,
        *,
        url: str | None = None,
        content_type: str | None = None,
        secret: str | None = None,
        insecure_ssl: str | None = None,
    ) -> Hook:
        """Change what is given of the App webhook's config, as `PATCH /app/hook/config` does
        ("" removes the secret); its events and whether it is on stay. 422 for a url that is not
        http(s), a content type other than json or form, an insecure_ssl other than 0 or 1."""
        if url is not None and not _http_url(url):
            raise invalid_field("Hook", "url")
        if content_type not in (None, "json", "form"):
            raise invalid_field("Hook", "content_type")
        if secret is not None and not isinstance(secret, str):
            raise invalid_field("Hook", "secret")
        if insecure_ssl not in (None, "0", "1"):
            raise invalid_field("Hook", "insecure_ssl")
        with self.store.lock:
            if self.app().hook is None and url:
                self.set_app_webhook(url)
            hook = self.app_hook()
            hook.url = url or hook.url
            hook.content_type = content_type or hook.content_type
            hook.secret = hook.secret if secret is None else secret or None
            hook.insecure_ssl = insecure_ssl or hook.insecure_ssl
            hook.updated_at = utcnow()
            return hook

    # installations

    def installation(self, installation_id: int) -> Installation:
        """Installation ``installation_id`` of the App, or NotFound."""
        found = self.app().installations.get(installation_id)
        if found is None:
            raise NotFound()
        return found

    def installation_covering(self, repo: Repo) -> Installation | None:
        """The installation whose repositories include ``repo``, if any."""
        app = self.store.app
        installation = app.installation_on(repo.owner) if app else None
        return installation if installation and installation.covers(repo) else None

    def installation_repos(self, installation: Installation) -> list[Repo]:
        """The repositories ``installation`` covers, by full name."""
        with self.store.lock:
            found = [r for r in self.store.repos.values() if installation.covers(r)]
        return sorted(found, key=lambda r: r.full_name.lower())

    def install_app(
        self,
        account: str,
        *,
        repositories: Iterable[str] | None = None,
        permissions: Mapping[str, str | None] | None = None,
        installation_id: int | None = None,
        sender: str | None = None,
        notify: bool = True,
    ) -> Installation:
        """Install the App on ``account``: every repository, or only ``repositories`` (full
        names). ``permissions`` change the defaults. Fires `installation` created unless
        ``notify`` is False (seeds describe installations that already exist)."""
        app = self.app()
        login = self.store.user(account).login
        selected = {self._repo_name(login, name) for name in repositories or []}
        selection = Selection.ALL if repositories is None else Selection.SELECTED
        try:
            granted = permissions_with(permissions)
        except ValueError:
            raise invalid_field("Installation", "permissions") from None
        with self.store.lock:
            if app.installation_on(login) is not None:
                raise custom_error("Installation", f"{app.slug} is already installed on {login}")
            installation = Installation(
                id=installation_id or self.store.next_id(),
                account=login,
                permissions=granted,
                repository_selection=selection,
                repositories=selected,
            )
            if installation.id in app.installations:
                raise custom_error("Installation", f"installation {installation.id} exists")
            app.installations[installation.id] = installation
        logger.info("App %s: installed on %s (%s)", app.slug, login, installation.id)
        if notify:
            self._announce_installation("created", installation, sender)
        return installation

    def uninstall_app(self, installation_id: int, *, sender: str | None = None) -> None:
        """Remove an installation; its tokens stop working. Fires `installation` deleted."""
        app = self.app()
        installation = self.installation(installation_id)
        payload = self._installation_payload("deleted", installation, sender)
        with self.store.lock:
            del app.installations[installation_id]
            self.store.revoke_installation_tokens(installation_id)
        self._deliver_to_app("installation", payload, installation)

    def suspend_installation(self, installation_id: int, *, sender: str | None = None) -> None:
        """Suspend an installation: no tokens, no webhooks until unsuspended."""
        installation = self.installation(installation_id)
        with self.store.lock:
            installation.suspended_at = installation.updated_at = utcnow()
            installation.suspended_by = sender or installation.account
        self._announce_installation("suspend", installation, sender)

    def unsuspend_installation(self, installation_id: int, *, sender: str | None = None) -> None:
        """Lift a suspension."""
        installation = self.installation(installation_id)
        with self.store.lock:
            installation.suspended_at = installation.suspended_by = None
            installation.updated_at = utcnow()
        self._announce_installation("unsuspend", installation, sender)

    def add_installation_repositories(
        self, installation_id: int, repositories: Iterable[str], *, sender: str | None = None
    ) -> None:
        """Add repositories (full names) to a selected installation. Fires
        `installation_repositories` added; nothing for repositories it already covers."""
        installation = self.installation(installation_id)
        repos = [self._owned_repo(installation, name) for name in repositories]
        with self.store.lock:
            added = [r for r in repos if not installation.covers(r)]
            installation.repositories |= {r.full_name.lower() for r in added}
            installation.updated_at = utcnow()
        if added:
            self._announce_repositories("added", installation, sender, added=added, removed=[])

    def remove_installation_repositories(
        self, installation_id: int, repositories: Iterable[str], *, sender: str | None = None
    ) -> None:
        """Take repositories out of an installation (an "all" one becomes "selected" with the
        rest, as on GitHub). Its tokens lose them at once. Fires `installation_repositories`."""
        installation = self.installation(installation_id)
        repos = [self._owned_repo(installation, name) for name in repositories]
        with self.store.lock:
            removed = [r for r in repos if installation.covers(r)]
            if not removed:
                return
            gone = {r.id for r in removed}
            kept = [r for r in self.installation_repos(installation) if r.id not in gone]
            installation.repositories = {r.full_name.lower() for r in kept}
            installation.repository_selection = Selection.SELECTED
            installation.updated_at = utcnow()
        self._announce_repositories("removed", installation, sender, added=[], removed=removed)

    def _repo_name(self, account: str, full_name: str) -> str:
        """``full_name`` lower-cased, if it belongs to ``account`` (repositories of other
        accounts cannot be in an installation)."""
        owner, _, name = full_name.partition("/")
        if owner.lower() != account.lower() or not name:
            raise custom_error("Installation", f"{full_name} is not a repository of {account}")
        return full_name.lower()

    def _owned_repo(self, installation: Installation, full_name: str) -> Repo:
        self._repo_name(installation.account, full_name)
        return self.repo(full_name)

    # installation tokens

    def installation_token(
        self,
        installation_id: int,
        *,
        repositories: Iterable[str] | None = None,
        repository_ids: Iterable[int] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> Token:
        """A fresh installation access token acting as the App's bot, optionally narrowed to
        some of the installation's ``repositories`` (names without the owner, as GitHub wants)
        or ``repository_ids``, and to some of its ``permissions``; 422/403/404 as on GitHub."""
        app = self.app()
        installation = self.installation(installation_id)
        if installation.suspended_at is not None:
            raise Forbidden(SUSPENDED, documentation_url=MINTING_DOCS)
        names = [str(name) for name in repositories or []]
        ids = set(repository_ids or [])
        narrowed: frozenset[str] | None = None
        if names or ids:
            covered = self.installation_repos(installation)
            by_name = {r.name.lower(): r for r in covered}
            by_id = {r.id: r for r in covered}
            if any(n.lower() not in by_name for n in names) or not ids <= set(by_id):
                raise ValidationFailed(message=NOT_IN_INSTALLATION, documentation_url=MINTING_DOCS)
            chosen = [by_name[n.lower()] for n in names] + [by_id[i] for i in ids]
            narrowed = frozenset(r.full_name.lower() for r in chosen)
        if permissions:
            if not all(grants(installation.permissions, n, lv) for n, lv in permissions.items()):
                raise ValidationFailed(message=NOT_GRANTED, documentation_url=MINTING_DOCS)
            carried = {**permissions, **MANDATORY}
        else:
            carried = dict(installation.permissions)
        return self.store.issue_installation_token(
            installation_id,
            app.bot_login,
            lifetime=timedelta(seconds=self.config.installation_token_seconds),
            repositories=narrowed,
            permissions=carried,
        )

    def token_repos(self, token: Token) -> list[Repo]:
        """The repositories an installation token reaches now."""
        installation = self._live_installation(token.installation_id)
        if installation is None:
            return []
        return [r for r in self.installation_repos(installation) if self._within(token, r)]

    # what installation tokens reach

    def reaches(self, identity: Identity, repo: Repo) -> bool:
        """Whether an installation identity's token reaches ``repo``: in its live installation
        and, for a narrowed token, among the repositories it was narrowed to."""
        installation = self._live_installation(identity.installation_id)
        if installation is None or not installation.covers(repo):
            return False
        return identity.token is None or self._within(identity.token, repo)

    def app_permissions(self, identity: Identity) -> Mapping[str, str]:
        """The permissions an installation identity carries."""
        if identity.token is not None:
            return identity.token.permissions
        installation = self._live_installation(identity.installation_id)
        return installation.permissions if installation else {}

    def authorize_installation(
        self,
        identity: Identity,
        repo: Repo,
        requirement: Requirement,
        *,
        needed: Permission,
        write: bool,
    ) -> None:
        """Let an installation token act on ``repo`` as GitHub does, or raise: a private
        repository out of reach is 404; a public one is read-only as to anyone anonymous; in
        reach, the token needs ``requirement`` (403 with X-Accepted-GitHub-Permissions)."""
        denied = Forbidden(INTEGRATION_DENIED, headers={ACCEPTED_HEADER: requirement.header})
        if not self.reaches(identity, repo):
            if repo.private:
                raise NotFound()
            if write:
                raise denied
            self.require(None, repo, needed)
            return
        if not requirement.met_by(self.app_permissions(identity)):
            raise denied

    def git_permission(self, identity: Identity | None, repo: Repo) -> Permission:
        """The role git over HTTP gives ``identity``: a user's role on the repository; for an
        installation token, its `contents` permission."""
        if identity is None or identity.installation_id is None:
            return self.permission(identity, repo)
        public = Permission.NONE if repo.private else Permission.READ
        if not self.reaches(identity, repo):
            return public
        permissions = self.app_permissions(identity)
        if grants(permissions, "contents", "write"):
            return Permission.WRITE
        return Permission.READ if grants(permissions, "contents", "read") else public

    def _live_installation(self, installation_id: int | None) -> Installation | None:
        app = self.store.app
        installation = app.installations.get(installation_id) if app and installation_id else None
        return installation if installation and installation.suspended_at is None else None

    @staticmethod
    def _within(token: Token, repo: Repo) -> bool:
        return token.repositories is None or repo.full_name.lower() in token.repositories

    # webhooks

    def emit_to_app(self, repo: Repo, event: str, payload: dict) -> None:
        """Send a repository event to the App's webhook when an active installation covers it."""
        installation = self.installation_covering(repo)
        if installation is None or installation.suspended_at is not None:
            return
        app = self.app()
        self.webhooks.enqueue_app(
            app,
            event,
            Payloads.for_installation(payload, installation),
            installation_id=installation.id,
            repo=repo,
        )

    def _installation_payload(
        self, action: str, installation: Installation, sender: str | None
    ) -> dict:
        with self.store.lock:
            return self.payloads.installation(
                action,
                self.app(),
                installation,
                sender or installation.account,
                self.installation_repos(installation),
            )

    def _announce_installation(
        self, action: str, installation: Installation, sender: str | None
    ) -> None:
        payload = self._installation_payload(action, installation, sender)
        self._deliver_to_app("installation", payload, installation)

    def _announce_repositories(
        self,
        action: str,
        installation: Installation,
        sender: str | None,
        *,
        added: list[Repo],
        removed: list[Repo],
    ) -> None:
        with self.store.lock:
            payload = self.payloads.installation_repositories(
                action,
                self.app(),
                installation,
                sender or installation.account,
                added=added,
                removed=removed,
            )
        self._deliver_to_app("installation_repositories", payload, installation)

    def _deliver_to_app(self, event: str, payload: dict, installation: Installation) -> None:
        self.webhooks.enqueue_app(
            self.app(), event, payload, installation_id=installation.id, repo=None
        )
