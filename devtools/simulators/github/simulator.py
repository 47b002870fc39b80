"""The simulated GitHub: state, identities, permissions, hooks and the App, for every surface."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from simulators.github.config import SimulatorConfig
from simulators.github.exceptions import Forbidden, NotFound, Unauthorized, invalid_field
from simulators.github.git_repos import GitStorage
from simulators.github.installations import SUSPENDED, InstallationActions
from simulators.github.issue_actions import IssueActions
from simulators.github.issue_serializers import Serializer
from simulators.github.models import DEFAULT_SCOPES, Delivery, Hook, Permission, Repo, Token, utcnow
from simulators.github.payloads import Payloads
from simulators.github.pull_actions import PullActions
from simulators.github.rate_limit import RateLimiter
from simulators.github.review_actions import ReviewActions
from simulators.github.seed import load_seed
from simulators.github.store import Store
from simulators.github.urls import Urls
from simulators.github.webhooks import WebhookDispatcher

logger = logging.getLogger(__name__)

# Until a request shows the address clients use, payloads name this one.
FALLBACK_URL = "http://localhost"


@dataclass(frozen=True)
class Identity:
    """Who a request acts as: a user, or an App installation's bot; ``token`` is the credential
    presented, whose narrowing, permissions or scopes limit what the request may do."""

    login: str
    installation_id: int | None = None
    token: Token | None = field(default=None, compare=False, repr=False)

    @property
    def scopes(self) -> tuple[str, ...]:
        """The OAuth scopes of a personal token (X-OAuth-Scopes)."""
        return self.token.scopes if self.token is not None else DEFAULT_SCOPES


class GitHubSimulator(IssueActions, PullActions, ReviewActions, InstallationActions):
    """One simulated GitHub: the store, the bare repositories and the webhook worker.

    The REST API, git over HTTP, the /_sim/ admin pages and tests all go through these methods, so
    an issue opened from a test fires the same webhooks as one opened through PyGithub.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._own_data_dir = self.config.data_dir is None
        data_dir = self.config.data_dir or Path(tempfile.mkdtemp(prefix="ghsim-"))
        self.data_dir = Path(data_dir)
        self.store = Store()
        self.git = GitStorage(self.data_dir / "repositories")
        self.webhooks = WebhookDispatcher(
            self.store, timeout=self.config.webhook_timeout, ca_file=self.config.webhook_ca_file
        )
        self.rate = RateLimiter()
        self._seen_url: str | None = None
        self.load_seed()

    # addresses and rendering

    @property
    def urls(self) -> Urls:
        """URLs for payloads made outside a request: public_url, else the last request's host."""
        return Urls((self.config.public_url or self._seen_url or FALLBACK_URL).rstrip("/"))

    def remember_url(self, root: str) -> None:
        """Note the address a client reached us at (used for webhook payload URLs)."""
        if not self.config.public_url:
            self._seen_url = root.rstrip("/")

    def serializer(self, urls: Urls | None = None) -> Serializer:
        """A serializer for ``urls`` (default: :attr:`urls`)."""
        return Serializer(self.store, urls or self.urls, self.git)

    @property
    def payloads(self) -> Payloads:
        """Webhook payload builder on the current public address."""
        return Payloads(self.serializer())

    def emit(self, repo: Repo, event: str, payload: dict) -> None:
        """Queue ``event`` for ``repo``'s hooks and for the App installed on it."""
        self.webhooks.enqueue(repo, event, payload)
        self.emit_to_app(repo, event, payload)

    # identities and permissions

    def authenticate(self, token: str) -> Identity:
        """The identity behind ``token``: Unauthorized ("Bad credentials") when it is unknown,
        expired, revoked or its installation is gone; Forbidden while that is suspended."""
        found: Token | None = self.store.token(token)
        if found is None:
            raise Unauthorized()
        if found.installation_id is not None:
            app = self.store.app
            installation = app.installations.get(found.installation_id) if app else None
            if installation is None:
                raise Unauthorized()
            if installation.suspended_at is not None:
                raise Forbidden(SUSPENDED)
        return Identity(found.login, found.installation_id, found)

    def permission(self, who: Identity | str | None, repo: Repo) -> Permission:
        """The role ``who`` (anonymous when None) has on ``repo``."""
        default = Permission.NONE if repo.private else Permission.READ
        if who is None:
            return default
        identity = who if isinstance(who, Identity) else Identity(who)
        if identity.installation_id is not None:
            # Endpoints check the token's App permissions (authorize_installation); the role
            # only says whether the repository is in its reach.
            return Permission.WRITE if self.reaches(identity, repo) else default
        user = self.store.find_user(identity.login)
        if user is None:
            return default
        if user.site_admin or user.login.lower() == repo.owner.lower():
            return Permission.ADMIN
        return repo.collaborators.get(user.login.lower(), default)

    def require(self, who: Identity | str | None, repo: Repo, needed: Permission) -> Permission:
        """``who``'s role on ``repo`` if it includes ``needed``; else 404 or 403 like GitHub."""
        role = self.permission(who, repo)
        if not role.allows(Permission.READ) or (
            needed is Permission.ADMIN and not role.allows(needed)
        ):
            raise NotFound()  # GitHub hides private repos and admin-only endpoints alike
        if not role.allows(needed):
            integration = isinstance(who, Identity) and who.installation_id is not None
            raise Forbidden(
                "Resource not accessible by integration"
                if integration
                else f"Must have {needed.value} access to repository."
            )
        return role

    def repo(self, repo: Repo | str) -> Repo:
        """``repo`` itself, or the repository named "owner/name"."""
        if isinstance(repo, Repo):
            return repo
        owner, _, name = repo.partition("/")
        return self.store.repo(owner, name)

    def set_collaborator(self, repo: Repo | str, login: str, permission: str) -> None:
        """Give ``login`` a role on ``repo`` (GitHub would invite; we add at once)."""
        repo = self.repo(repo)
        user = self.store.user(login)
        try:
            role = Permission({"pull": "read", "push": "write"}.get(permission, permission))
        except ValueError:
            raise invalid_field("Collaborator", "permission") from None
        with self.store.lock:
            repo.collaborators[user.login.lower()] = role

    # hooks and deliveries

    def create_hook(
        self,
        repo: Repo | str,
        url: str,
        *,
        secret: str | None = None,
        events: list[str] | None = None,
        active: bool = True,
        content_type: str = "json",
        insecure_ssl: str = "0",
        sender: str | None = None,
    ) -> Hook:
        """Add a webhook to ``repo`` and ping it, as GitHub does on creation."""
        repo = self.repo(repo)
        if not url:
            raise invalid_field("Hook", "url")
        hook = Hook(
            id=self.store.next_id(),
            url=url,
            secret=secret or None,
            events=list(events or ["push"]),
            active=active,
            content_type=content_type,
            insecure_ssl=str(insecure_ssl),
        )
        with self.store.lock:
            repo.hooks[hook.id] = hook
        if active:
            self.ping_hook(repo, hook.id, sender=sender or repo.owner)
        return hook

    def hook(self, repo: Repo | str, hook_id: int) -> Hook:
        """The hook ``hook_id`` of ``repo``, or NotFound."""
        hook = self.repo(repo).hooks.get(hook_id)
        if hook is None:
            raise NotFound()
        return hook

    def delete_hook(self, repo: Repo | str, hook_id: int) -> None:
        """Remove a webhook."""
        repo = self.repo(repo)
        self.hook(repo, hook_id)
        with self.store.lock:
            del repo.hooks[hook_id]

    def ping_hook(self, repo: Repo | str, hook_id: int, *, sender: str | None = None) -> None:
        """Send `ping` to one hook."""
        repo = self.repo(repo)
        hook = self.hook(repo, hook_id)
        with self.store.lock:
            payload = self.payloads.ping(repo, hook, sender or repo.owner)
        self.webhooks.enqueue(repo, "ping", payload, hook=hook)

    def deliveries(self, *, failed: bool | None = None, hook_id: int | None = None) -> list:
        """Recorded deliveries, newest first; ``failed`` filters on success."""
        found = self.store.deliveries_for(hook_id)
        if failed is None:
            return found
        return [d for d in found if d.status != "pending" and d.success is not failed]

    def redeliver(self, delivery_id: int) -> Delivery:
        """Send a recorded delivery again."""
        try:
            return self.webhooks.redeliver(delivery_id)
        except LookupError:
            raise NotFound() from None

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every queued webhook has been attempted (tests call this before asserting)."""
        return self.webhooks.wait_idle(timeout)

    flush = wait_idle

    # lifecycle

    def load_seed(self) -> None:
        """Load the configured seed (nothing when there is none)."""
        if self.config.seed is not None:
            load_seed(self, self.config.seed)

    def reset(self) -> None:
        """Drop every record and repository and load the seed again."""
        self.wait_idle()
        with self.store.lock:
            for repo in list(self.store.repos.values()):
                self.git.delete(repo)
            self.store.clear()
            self.load_seed()
        logger.info("Simulator reset at %s", utcnow().isoformat())

    def close(self) -> None:
        """Stop the webhook worker and remove a temporary data directory."""
        self.webhooks.close()
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> GitHubSimulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
