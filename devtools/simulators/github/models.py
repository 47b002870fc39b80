"""The simulated GitHub's records: plain dataclasses, owned and locked by the store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now in UTC, to the second as GitHub reports times."""
    return datetime.now(UTC).replace(microsecond=0)


class Permission(str, enum.Enum):
    """A repository role, ordered from least to most access."""

    NONE = "none"
    READ = "read"
    TRIAGE = "triage"
    WRITE = "write"
    MAINTAIN = "maintain"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the ordering, for comparisons."""
        return list(Permission).index(self)

    def allows(self, needed: Permission) -> bool:
        """Whether this role includes ``needed``."""
        return self.rank >= needed.rank

    @property
    def legacy(self) -> str:
        """The coarse `permission` field GitHub reports beside `role_name`."""
        return {
            Permission.MAINTAIN: "write",
            Permission.TRIAGE: "read",
        }.get(self, self.value)


@dataclass
class User:
    """A user, bot or organization account."""

    id: int
    login: str
    type: str = "User"  # User, Bot or Organization
    site_admin: bool = False
    name: str | None = None
    email: str | None = None
    created_at: datetime = field(default_factory=utcnow)


# OAuth scopes a seeded personal token has unless its seed names others (X-OAuth-Scopes).
DEFAULT_SCOPES = ("repo", "workflow", "admin:repo_hook", "read:org")


@dataclass
class Token:
    """A credential: a user's personal token or an App installation's short-lived token."""

    value: str
    login: str  # the account acting: the user, or the App's bot user
    installation_id: int | None = None
    expires_at: datetime | None = None
    # Installation tokens: lower-cased full names the token was narrowed to (None: every
    # repository the installation covers, now or later) and the permissions it carries.
    repositories: frozenset[str] | None = None
    permissions: dict[str, str] = field(default_factory=dict)
    # Personal tokens: the OAuth scopes (`workflow` lets a push change .github/workflows/).
    scopes: tuple[str, ...] = DEFAULT_SCOPES


@dataclass
class Label:
    """A repository label."""

    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


@dataclass
class PullData:
    """What a pull request adds to its issue."""

    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    id: int
    draft: bool = False
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None


@dataclass
class Issue:
    """An issue or, with ``pull`` set, a pull request (they share numbers as on GitHub)."""

    id: int
    number: int
    title: str
    user: str
    body: str | None = None
    state: str = "open"
    state_reason: str | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    locked: bool = False
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    closed_at: datetime | None = None
    closed_by: str | None = None
    pull: PullData | None = None


@dataclass
class Comment:
    """A comment on an issue or on a pull request's conversation."""

    id: int
    issue_number: int
    user: str
    body: str
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class IssueEvent:
    """A timeline event of an issue (labeled, unlabeled, closed, reopened, renamed, ...)."""

    id: int
    issue_number: int
    actor: str
    event: str
    label: str | None = None
    rename: dict | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class Review:
    """A submitted pull request review."""

    id: int
    pull_number: int
    user: str
    state: str  # APPROVED, CHANGES_REQUESTED or COMMENTED
    commit_id: str
    body: str = ""
    submitted_at: datetime = field(default_factory=utcnow)


@dataclass
class ReviewComment:
    """A comment on a line of a pull request's diff."""

    id: int
    pull_number: int
    user: str
    body: str
    path: str
    commit_id: str
    line: int | None = None
    side: str = "RIGHT"
    review_id: int | None = None
    in_reply_to_id: int | None = None
    diff_hunk: str = ""
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass
class Hook:
    """A repository webhook."""

    id: int
    url: str
    secret: str | None = None
    events: list[str] = field(default_factory=lambda: ["push"])
    active: bool = True
    content_type: str = "json"
    insecure_ssl: str = "0"
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    last_response: dict = field(
        default_factory=lambda: {"code": None, "status": "unused", "message": None}
    )

    def wants(self, event: str) -> bool:
        """Whether this hook subscribes to ``event`` (ping always goes through)."""
        return self.active and (event == "ping" or "*" in self.events or event in self.events)


@dataclass
class Delivery:
    """One attempt to deliver a webhook, as GitHub records it."""

    id: int
    guid: str
    hook_id: int
    repo: str | None  # full name; None for events about no repository (App installations)
    event: str
    action: str | None
    request_headers: dict[str, str]
    body: bytes
    url: str
    installation_id: int | None = None  # set on deliveries to the App's webhook
    redelivery: bool = False
    delivered_at: datetime = field(default_factory=utcnow)
    status_code: int = 0
    status: str = "pending"
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    duration: float = 0.0

    @property
    def success(self) -> bool:
        """A 2xx answer; anything else (including no answer) counts as failed."""
        return 200 <= self.status_code < 300


@dataclass
class Repo:
    """A repository with its issues, pulls, comments and hooks."""

    id: int
    owner: str
    name: str
    private: bool = False
    default_branch: str = "main"
    description: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    pushed_at: datetime = field(default_factory=utcnow)
    collaborators: dict[str, Permission] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # keyed by lower-cased name
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    issue_events: list[IssueEvent] = field(default_factory=list)
    reviews: dict[int, Review] = field(default_factory=dict)
    review_comments: dict[int, ReviewComment] = field(default_factory=dict)
    hooks: dict[int, Hook] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """``owner/name``."""
        return f"{self.owner}/{self.name}"

    @property
    def open_issues_count(self) -> int:
        """Open issues and pulls, as GitHub counts them."""
        return sum(1 for issue in self.issues.values() if issue.state == "open")

    def next_number(self) -> int:
        """The number the next issue or pull request gets."""
        return max(self.issues, default=0) + 1

    def label(self, name: str) -> Label | None:
        """The label called ``name``, case-insensitively."""
        return self.labels.get(name.lower())


class Selection(str, enum.Enum):
    """Which of its account's repositories an installation covers."""

    ALL = "all"
    SELECTED = "selected"


@dataclass
class Installation:
    """The App installed on one account, for all or some of its repositories."""

    id: int
    account: str  # login of the user or organization
    permissions: dict[str, str]
    repository_selection: Selection = Selection.ALL
    repositories: set[str] = field(default_factory=set)  # lower-cased full names when selected
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    suspended_at: datetime | None = None
    suspended_by: str | None = None

    def covers(self, repo: Repo) -> bool:
        """Whether ``repo`` is one of the installation's repositories."""
        if repo.owner.lower() != self.account.lower():
            return False
        return (
            self.repository_selection is Selection.ALL
            or repo.full_name.lower() in self.repositories
        )


@dataclass
class App:
    """The GitHub App, its installations and its webhook."""

    id: int
    slug: str
    name: str
    owner: str
    public_key_pem: str
    private_key_pem: str
    permissions: dict[str, str]  # what the App asks of the accounts installing it
    events: list[str]  # events its webhook subscribes to
    client_id: str = "Iv1.simulated"
    created_at: datetime = field(default_factory=utcnow)
    installations: dict[int, Installation] = field(default_factory=dict)
    hook: Hook | None = None  # the App's webhook, when it has a URL

    @property
    def bot_login(self) -> str:
        """The bot account the App acts as."""
        return f"{self.slug}[bot]"

    def installation_on(self, account: str) -> Installation | None:
        """The installation on ``account`` (an App is installed at most once per account)."""
        return next(
            (i for i in self.installations.values() if i.account.lower() == account.lower()),
            None,
        )
