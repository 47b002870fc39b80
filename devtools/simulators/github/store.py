"""Thread-safe in-memory store of the simulated GitHub's users, tokens, repos and deliveries."""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from simulators.github.exceptions import NotFound
from simulators.github.models import DEFAULT_SCOPES, App, Delivery, Repo, Token, User


class Store:
    """Every record of the simulator, behind one re-entrant lock.

    One coarse lock keeps the invariants simple (issue numbers, ids, label sets) and is plenty for
    a test double; callers hold ``store.lock`` across a read-modify-write.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}  # keyed by lower-cased login
        self.tokens: dict[str, Token] = {}
        self.repos: dict[str, Repo] = {}  # keyed by lower-cased full name
        self.deliveries: dict[int, Delivery] = {}
        self.app: App | None = None
        # Ids look like GitHub's (large, distinct per record) so clients never confuse kinds.
        self._ids = itertools.count(1_000_001)

    def next_id(self) -> int:
        """A fresh id, unique across all records."""
        with self.lock:
            return next(self._ids)

    def clear(self) -> None:
        """Forget everything (the seed is loaded again by the caller)."""
        with self.lock:
            self.users.clear()
            self.tokens.clear()
            self.repos.clear()
            self.deliveries.clear()
            self.app = None

    # users and tokens

    def add_user(
        self, login: str, *, type: str = "User", site_admin: bool = False, name: str | None = None
    ) -> User:
        """Create (or return the existing) account ``login``."""
        with self.lock:
            existing = self.users.get(login.lower())
            if existing:
                return existing
            user = User(id=self.next_id(), login=login, type=type, site_admin=site_admin, name=name)
            self.users[login.lower()] = user
            return user

    def user(self, login: str) -> User:
        """The account ``login``, or NotFound."""
        with self.lock:
            user = self.users.get(login.lower())
        if user is None:
            raise NotFound()
        return user

    def find_user(self, login: str) -> User | None:
        """The account ``login`` or None."""
        with self.lock:
            return self.users.get(login.lower())

    def add_token(self, value: str, login: str, scopes: tuple[str, ...] = DEFAULT_SCOPES) -> Token:
        """Register a personal access token for ``login`` with OAuth ``scopes``."""
        with self.lock:
            token = Token(value=value, login=self.user(login).login, scopes=tuple(scopes))
            self.tokens[value] = token
            return token

    def issue_installation_token(
        self,
        installation_id: int,
        login: str,
        *,
        lifetime: timedelta,
        repositories: frozenset[str] | None,
        permissions: Mapping[str, str],
    ) -> Token:
        """Mint an installation access token acting as ``login`` that expires after ``lifetime``."""
        token = Token(
            value="ghs_" + secrets.token_hex(18),
            login=login,
            installation_id=installation_id,
            # Precise to the microsecond: a one-second token must not die early.
            expires_at=datetime.now(UTC) + lifetime,
            repositories=repositories,
            permissions=dict(permissions),
            scopes=(),
        )
        with self.lock:
            self.tokens[token.value] = token
        return token

    def token(self, value: str) -> Token | None:
        """The live token ``value``; expired installation tokens are dropped."""
        with self.lock:
            token = self.tokens.get(value)
            if token and token.expires_at and token.expires_at <= datetime.now(UTC):
                del self.tokens[value]
                return None
            return token

    def revoke_token(self, value: str) -> None:
        """Forget the token ``value`` (it is "Bad credentials" from now on)."""
        with self.lock:
            self.tokens.pop(value, None)

    def revoke_installation_tokens(self, installation_id: int) -> None:
        """Forget every token of installation ``installation_id``."""
        with self.lock:
            for value in [
                v for v, t in self.tokens.items() if t.installation_id == installation_id
            ]:
                del self.tokens[value]

    # repositories

    def add_repo(self, repo: Repo) -> Repo:
        """Register ``repo`` under its full name."""
        with self.lock:
            self.repos[repo.full_name.lower()] = repo
            return repo

    def repo(self, owner: str, name: str) -> Repo:
        """The repository ``owner/name``, or NotFound."""
        with self.lock:
            repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None:
            raise NotFound()
        return repo

    def find_repo(self, full_name: str) -> Repo | None:
        """The repository ``owner/name`` or None."""
        with self.lock:
            return self.repos.get(full_name.lower())

    # deliveries

    def add_delivery(self, delivery: Delivery) -> None:
        """Record a delivery attempt."""
        with self.lock:
            self.deliveries[delivery.id] = delivery

    def delivery(self, delivery_id: int) -> Delivery:
        """The delivery ``delivery_id``, or NotFound."""
        with self.lock:
            delivery = self.deliveries.get(delivery_id)
        if delivery is None:
            raise NotFound()
        return delivery

    def deliveries_for(self, hook_id: int | None = None) -> list[Delivery]:
        """Deliveries, newest first as GitHub lists them, optionally of one hook."""
        with self.lock:
            found = [d for d in self.deliveries.values() if hook_id in (None, d.hook_id)]
        return sorted(found, key=lambda d: d.id, reverse=True)
