"""A whole cluster in one process for agent tests: GitHub and Claude simulators, a running
coordinator on private PostgreSQL and Redis, and agents built exactly as `claude-agent run`
builds them."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import github
import pytest

from agent_app.config import AgentConfig
from agent_app.gitcmd import Git
from agent_app.github_access import Grant, TaskAccess
from agent_app.publisher import Publisher
from agent_app.worker import Worker
from agent_app.workspace import Workspaces
from coordinator_app.models import Task
from lab.local_cluster import LocalCluster
from simulators.claude import create_app as create_claude_app
from simulators.github.config import SimulatorConfig
from simulators.github.testing import TOKENS, running_simulator, sample_seed
from simulators.server import BackgroundServer
from tests.coordinator.conftest import as_github_app


def _bwrap_usable() -> bool:
    """Whether bubblewrap can make its namespaces here (it can as root, and for users where
    unprivileged user namespaces are allowed)."""
    argv = ["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--dev", "/dev", "--proc", "/proc",
            "true"]  # fmt: skip
    try:
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0
    except OSError:
        return False


BWRAP_USABLE = _bwrap_usable()
needs_bwrap = pytest.mark.skipif(not BWRAP_USABLE, reason="bubblewrap cannot run here")

REPO = "acme/widgets"
CLAUDE_KEY = "sk-ant-test-claude-key-0123456789"
# The virtualenv's console scripts (claude-agent). The model's commands and the repository's
# tests do not use it: like on agent hosts they find the system's python3 and pytest
# (python3-pytest, which `make test` installs), and a sandbox may hide the virtualenv anyway.
VENV_BIN = str(Path(sys.executable).parent)


def token_access(github_url: str, branch: str, token: str = TOKENS["cluster-bot"]) -> TaskAccess:
    """A task's GitHub access as token mode grants it (one token that does not expire)."""
    grant = Grant(
        token=token,
        expires_at=None,
        repository=REPO,
        branch=branch,
        api_url=f"{github_url}/api/v3",
        author=("cluster-bot", "cluster-bot@users.noreply.example.invalid"),
    )
    as_json = {
        "token": grant.token,
        "expires_at": None,
        "repository": grant.repository,
        "branch": grant.branch,
        "api_url": grant.api_url,
        "author": {"name": grant.author[0], "email": grant.author[1]},
    }

    def confirm(ref: str) -> dict:
        """The coordinator's answer before a push: the same token, for this branch only."""
        assert ref == f"refs/heads/{branch}", ref
        return as_json

    return TaskAccess(grant, renew=confirm)


class RecordingApp:
    """WSGI middleware keeping every request body the Claude simulator receives."""

    def __init__(self, app) -> None:
        self.app = app
        self.bodies: list[bytes] = []

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        self.bodies.append(body)
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


@dataclass
class Cluster:
    """Handles a test needs: the simulators in this process, the coordinator and the agents on
    a :class:`LocalCluster` (the demo's and the benchmarks' builder)."""

    local: LocalCluster
    github_sim: object
    github_url: str
    claude_sim: object
    claude_url: str
    claude_bodies: list[bytes]
    configs: dict[str, AgentConfig] = field(default_factory=dict)

    @property
    def ccc(self):
        """The coordinator's services (database, queues, processor), in this process."""
        return self.local.app.extensions["ccc"]

    @property
    def client(self):
        """A Flask test client of the coordinator."""
        return self.local.app.test_client()

    @property
    def coordinator_url(self) -> str:
        return self.local.urls["coordinator"]

    @property
    def admin_headers(self) -> dict[str, str]:
        return self.local.admin.headers()

    @property
    def tmp(self) -> Path:
        return self.local.root

    @property
    def workers(self) -> list[Worker]:
        return list(self.local.workers.values())

    def gh(self, login: str = "bob") -> github.Github:
        return github.Github(
            base_url=f"{self.github_url}/api/v3", auth=github.Auth.Token(TOKENS[login])
        )

    def agent_settings(self, **overrides) -> dict:
        """agent.toml settings of a test agent: the Claude simulator, quick intervals."""
        return {
            "anthropic_base_url": self.claude_url,
            "anthropic_api_key": CLAUDE_KEY,
            "heartbeat_seconds": 1,
            "claim_block_seconds": 1,
            "stop_timeout_seconds": 5,
            **overrides,
        }

    def agent_config(self, name: str, specialties=("backend", "general"), **overrides) -> Path:
        """Register an agent with the coordinator and write its agent.toml (0600)."""
        path = self.local.agent_config(name, list(specialties), **self.agent_settings(**overrides))
        self.configs[name] = AgentConfig.load(path, environ={})
        return path

    def agent(self, name: str = "agent-1", specialties=("backend", "general"), **overrides):
        """An agent built as `claude-agent run` builds it, running in a thread."""
        worker = self.local.start_agent(
            name, list(specialties), in_process=True, **self.agent_settings(**overrides)
        )
        self.configs[name] = worker.config
        return worker

    def agent_process(self, name: str = "agent-1", **overrides) -> subprocess.Popen:
        """The real `claude-agent run` in its own process (for signals from outside)."""
        process = self.local.start_agent(
            name,
            ["backend", "general"],
            env={"PATH": os.environ["PATH"]},
            **self.agent_settings(**overrides),
        )
        self.configs[name] = AgentConfig.load(self.tmp / f"{name}.toml", environ={})
        return process

    def label_issue(self, title: str, body: str = "", labels=("claude",)) -> int:
        issue = self.gh().get_repo(REPO).create_issue(title, body=body)
        for label in labels:
            issue.add_to_labels(label)
        return issue.number

    def task(self, issue_number: int) -> dict:
        with self.ccc.database.session() as session:
            task = (
                session.query(Task)
                .filter_by(issue_number=issue_number)
                .order_by(Task.id.desc())
                .first()
            )
            assert task is not None, f"no task for issue #{issue_number}"
            task_id = task.id
        return self.client.get(f"/api/v1/tasks/{task_id}", headers=self.admin_headers).json

    def events(self, task_id: int) -> list[dict]:
        answer = self.client.get(f"/api/v1/tasks/{task_id}/events?per_page=100",
                                 headers=self.admin_headers)  # fmt: skip
        return answer.json["items"]

    def wait_for(self, issue_number: int, states=("review", "failed"), timeout=90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                task = self.task(issue_number)
                if task["state"] in states:
                    return task
            except AssertionError:
                pass
            time.sleep(0.3)
        raise AssertionError(
            f"issue #{issue_number} did not reach {states}: {self.task(issue_number)}"
        )


@contextmanager
def running_cluster(
    database_url,
    redis_url,
    tmp: Path,
    scenarios: list[dict],
    github: dict | None = None,
    **coordinator_overrides,
) -> Iterator[Cluster]:
    """Everything started here is stopped and closed on the way out, also when a test fails.

    The coordinator is the simulator's GitHub App (as `make demo` runs it): each task gets a
    token for its repository alone. ``github``: settings of the simulator (SimulatorConfig
    fields, e.g. a short token lifetime or low rate limits).
    """
    with contextlib.ExitStack() as stack:
        gh_config = SimulatorConfig(seed=sample_seed(), data_dir=tmp / "github", **(github or {}))
        gh_sim, gh_url = stack.enter_context(running_simulator(gh_config))
        stack.callback(gh_sim.wait_idle, 10)
        claude_app = create_claude_app(scenarios, api_keys={CLAUDE_KEY})
        recorder = RecordingApp(claude_app)
        claude = stack.enter_context(BackgroundServer(recorder))
        local = stack.enter_context(LocalCluster(tmp))
        local.start_services(database_url, redis_url)
        local.start_coordinator(
            {
                **as_github_app(gh_sim, gh_url, tmp),
                "heartbeat_seconds": 1,
                "lease_seconds": 5,
                **coordinator_overrides,
            },
            in_process=True,
            processor_interval=0.2,
        )
        gh_sim.create_hook(
            REPO,
            f"{local.urls['coordinator']}/webhooks/github",
            secret=local.webhook_secret,
            events=[
                "issues",
                "issue_comment",
                "pull_request",
                "pull_request_review",
                "pull_request_review_comment",
            ],
        )
        yield Cluster(
            local, gh_sim, gh_url, claude_app.extensions["claude_sim"], claude.url, recorder.bodies
        )


@pytest.fixture
def cluster_factory(database_url, redis_url, tmp_path):
    """``with cluster_factory(scenarios, **coordinator_settings) as cluster: ...``"""

    def factory(scenarios, **overrides):
        return running_cluster(database_url, redis_url, tmp_path, scenarios, **overrides)

    return factory


@pytest.fixture
def checkout(tmp_path):
    """A prepared task workspace on the GitHub simulator, and the publisher that commits it."""
    with running_simulator(SimulatorConfig(seed=sample_seed(), data_dir=tmp_path / "gh")) as (
        _sim,
        url,
    ):
        workspaces = Workspaces(tmp_path / "agent", Git())
        access = token_access(url, "claude/issue-1-x")
        workspace = workspaces.prepare(
            1, REPO, f"{url}/{REPO}.git", "claude/issue-1-x", "main", access.token()
        )
        publisher = Publisher(workspaces.git, access)
        yield workspace, publisher, workspaces.mirror_path(REPO), tmp_path
