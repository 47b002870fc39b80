"""The coordinator's configuration: defaults in code, then a TOML file, then the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cluster_core.errors import ConfigError
from cluster_core.settings import from_mapping, load_settings

DEFAULT_CONFIG_FILE = "/etc/claude-coordinator/coordinator.toml"
ENV_PREFIX = "CCC_"


@dataclass
class Budget:
    """Per-task limits handed to the agent with each task."""

    max_turns: int = 40  # model round trips
    max_tokens: int = 2_000_000  # input + output tokens over the whole task
    max_dollars: float = 5.0  # priced by the agent from its model price table
    max_seconds: int = 3600  # wall time from claim to PR


@dataclass
class Scaling:
    """How GET /api/v1/scaling turns queues and load into a desired agent count per specialty."""

    target_load: float = 0.7  # busy share of task slots to aim for, as in the seed design
    # Agents to keep per specialty even when idle, e.g. {backend = 1}; unset means 0.
    floors: dict[str, int] = field(default_factory=dict)
    max_wait_seconds: int = 600  # queued work older than this asks for one more agent


@dataclass
class Autoscale:
    """The coordinator running playbooks/autoscale.yml itself (ansible-runner), once enabled.

    Needs the cluster's Ansible project and inventory on the coordinator host, and SSH access
    from it to the agent and spare hosts; an admin turns it on in the admin pages or with
    `ccc scale enable`.
    """

    project_dir: str = ""  # ansible.cfg, playbooks/, ansible_collections/; empty: not set up here
    inventory: str = ""  # the inventory the playbook reads and edits (file or directory)
    playbook: str = "playbooks/autoscale.yml"  # relative to project_dir
    # Variables for the playbook (coordinator_admin_password, ...): an owner-only YAML file,
    # passed as -e @FILE so the secrets are neither copied nor shown.
    extra_vars_file: str = ""
    data_dir: str = "/var/lib/claude-coordinator/autoscale"  # ansible-runner's working dirs
    interval_seconds: int = 300  # between scheduled runs while enabled
    timeout_seconds: int = 3600  # a run still going after this is stopped
    keep_runs: int = 200  # older runs and their events are deleted


@dataclass
class CoordinatorConfig:
    """Every coordinator setting; each field can be set in the file or as CCC_<FIELD>."""

    # Where state lives.
    database_url: str = "postgresql+psycopg://claude@localhost/claude"
    redis_url: str = "redis://localhost:6379/0"
    # Signs sessions, CSRF tokens and agent bearer tokens. Required outside tests.
    secret_key: str = ""
    # GitHub: the API base URL (api.github.com or <host>/api/v3) and who the cluster is there.
    github_api_url: str = "https://api.github.com"
    # App mode (recommended): the GitHub App's id and private key (PEM file). The cluster serves
    # the repositories of the App's installations (only those listed, when ids are given) and
    # gives each task a token for its own repository alone, expiring within the hour.
    github_app_id: int = 0
    github_app_private_key_file: str = ""
    github_app_installation_ids: list[int] = field(default_factory=list)
    # Token mode (github_app_id 0): one token for everything, handed to agents with each task,
    # and the repositories ("owner/name") the cluster serves.
    github_token: str = ""
    repositories: list[str] = field(default_factory=list)
    # How often the served repositories are read again (installations, or the list above).
    repository_sync_seconds: int = 600
    webhook_secret: str = ""
    max_webhook_bytes: int = 5 * 1024 * 1024  # GitHub caps payloads at 25 MB; ours are small
    # Triggers.
    trigger_label: str = "claude"
    trigger_phrase: str = "@claude"
    # Users who may trigger work without write permission on the repository.
    trigger_allowlist: list[str] = field(default_factory=list)
    # Repositories polled when webhooks cannot reach the coordinator ("owner/name").
    poll_repositories: list[str] = field(default_factory=list)
    poll_interval_seconds: int = 60
    # Pull requests in review: how often each one's state is read back from GitHub (a merge or
    # close whose webhook was lost still ends its task), and how long one may stay quiet before
    # it gets a reminder comment (0: no reminders).
    review_check_seconds: int = 300
    stale_review_seconds: int = 3 * 86400
    # Labels that mark a task restricted, and the level each means.
    security_labels: dict[str, str] = field(default_factory=lambda: {"security": "restricted"})
    # Limits.
    max_concurrent_tasks: int = 20  # cluster-wide cap on tasks held by agents
    max_concurrent_per_repo: int = 5
    max_attempts: int = 3  # runs of one task before it stays failed
    retry_backoff_seconds: int = 60  # doubled per attempt
    budget: Budget = field(default_factory=Budget)
    # Autoscaling decision ([scaling] table); the scaling playbook acts on it.
    scaling: Scaling = field(default_factory=Scaling)
    # Running the scaling playbook from the coordinator ([autoscale] table).
    autoscale: Autoscale = field(default_factory=Autoscale)
    # Liveness.
    # A claimed task is handed back when its lease is not renewed: a crashed agent host's task
    # runs elsewhere within about this long. Four heartbeats per lease: a busy agent on a
    # loaded host may miss three in a row and keep its task.
    lease_seconds: int = 20
    heartbeat_seconds: int = 5  # what agents are told to use
    agent_token_seconds: int = 3600  # lifetime of an agent's bearer token
    # Rate limits per client address, requests per minute. GitHub delivers from a few addresses
    # (one, behind a proxy), so the webhook limit is a guard against floods, not a quota.
    webhook_rate_per_minute: int = 60000
    api_rate_per_minute: int = 30000
    # Admin log-in attempts per minute, per client address and per user name.
    login_attempts_per_minute: int = 10
    # The session cookie is sent over HTTPS only (the coordinator serves HTTPS); false only
    # for plain-HTTP development on loopback.
    secure_cookies: bool = True
    # Bearer token Prometheus uses to scrape /metrics (API tokens work too).
    metrics_token: str = ""

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        environ: dict[str, str] | None = None,
        **overrides: Any,
    ) -> CoordinatorConfig:
        """Defaults, then the TOML file (if any), then CCC_* variables, then ``overrides``."""
        return load_settings(
            cls,
            path=path,
            default_path=DEFAULT_CONFIG_FILE,
            env_prefix=ENV_PREFIX,
            environ=environ,
            overrides=overrides,
        )

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> CoordinatorConfig:
        """Build and validate a config; a bad value fails naming its field."""
        return from_mapping(cls, values)

    def validate(self) -> None:
        """Refuse settings the coordinator cannot run with."""
        for name in ("lease_seconds", "heartbeat_seconds", "max_concurrent_tasks", "max_attempts"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ConfigError(
                f"lease_seconds ({self.lease_seconds}) must be at least twice heartbeat_seconds "
                f"({self.heartbeat_seconds}), or one late heartbeat loses the task"
            )
        self._validate_github()
        if self.review_check_seconds <= 0 or self.stale_review_seconds < 0:
            raise ConfigError(
                "review_check_seconds must be positive and stale_review_seconds at least 0"
            )
        if not self.database_url.startswith("postgresql"):
            raise ConfigError(f"database_url must be a PostgreSQL URL, got {self.database_url!r}")

    def _validate_github(self) -> None:
        """One way in to GitHub, completely configured."""
        if self.github_app_id < 0:
            raise ConfigError(f"github_app_id must be an App id, got {self.github_app_id}")
        if bool(self.github_app_id) != bool(self.github_app_private_key_file):
            raise ConfigError(
                "github_app_id and github_app_private_key_file go together: App mode needs both"
            )
        if self.github_app_id and (self.github_token or self.repositories):
            raise ConfigError(
                "github_token and repositories are for token mode; in App mode (github_app_id "
                "set) the App's installations say which repositories are served"
            )
        if self.github_app_installation_ids and not self.github_app_id:
            raise ConfigError("github_app_installation_ids needs github_app_id")
        for name in [*self.repositories, *self.poll_repositories]:
            owner, _, repo = name.partition("/")
            if not owner or not repo or "/" in repo:
                raise ConfigError(f"repositories are named owner/name, got {name!r}")
        unserved = {n.lower() for n in self.poll_repositories} - {
            n.lower() for n in self.repositories
        }
        if self.github_token and unserved:
            raise ConfigError(
                f"poll_repositories {sorted(unserved)} are not in repositories: polled "
                "repositories must be served"
            )
        if self.repository_sync_seconds <= 0:
            raise ConfigError("repository_sync_seconds must be positive")

    @property
    def app_mode(self) -> bool:
        """Whether the coordinator is a GitHub App (else it uses one token)."""
        return bool(self.github_app_id)
