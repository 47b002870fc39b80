"""A whole cluster in one process for agent tests: GitHub and Claude simulators, a running
coordinator on private PostgreSQL and Redis, and agents built exactly as `claude-agent run`
builds them."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import github
import pytest
from werkzeug.security import generate_password_hash

from agent_app.cli import build_worker
from agent_app.config import AgentConfig
from agent_app.gitcmd import Git
from agent_app.github_access import Grant, TaskAccess
from agent_app.publisher import Publisher
from agent_app.worker import Worker
from agent_app.workspace import Workspaces
from coordinator_app.app import create_app
from coordinator_app.models import AdminUser, Task
from simulators.claude import create_app as create_claude_app
from simulators.github.config import SimulatorConfig
from simulators.github.testing import TOKENS, running_simulator, sample_seed
from simulators.server import BackgroundServer
from tests.coordinator.conftest import ADMIN_PASSWORD, WEBHOOK_SECRET, as_github_app, make_config


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
    """Handles a test needs."""

    github_sim: object
    github_url: str
    claude_sim: object
    claude_url: str
    claude_bodies: list[bytes]
    ccc: object
    coordinator_url: str
    admin_headers: dict
    client: object
    tmp: Path
    workers: list[Worker] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    configs: dict[str, AgentConfig] = field(default_factory=dict)
    processes: list = field(default_factory=list)

    def gh(self, login: str = "bob") -> github.Github:
        return github.Github(
            base_url=f"{self.github_url}/api/v3", auth=github.Auth.Token(TOKENS[login])
        )

    def agent_config(self, name: str, specialties=("backend", "general"), **overrides) -> Path:
        """Register an agent with the coordinator and write its agent.toml (0600)."""
        answer = self.client.post(
            "/api/v1/agents",
            json={"name": name, "specialties": list(specialties), "max_tasks": 2},
            headers=self.admin_headers,
        )
        assert answer.status_code == 201, answer.json
        values = {
            "name": name,
            "specialties": list(specialties),
            "max_tasks": 2,
            "coordinator_url": self.coordinator_url,
            "agent_key": answer.json["key"],
            "redis_url": self.ccc.config.redis_url,
            "workspace_root": str(self.tmp / name),
            "anthropic_base_url": self.claude_url,
            "anthropic_api_key": CLAUDE_KEY,
            "heartbeat_seconds": 1,
            "claim_block_seconds": 1,
            "stop_timeout_seconds": 5,
        }
        values.update(overrides)
        config_file = self.tmp / f"{name}.toml"
        config_file.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items()))
        config_file.chmod(0o600)
        self.configs[name] = AgentConfig.load(config_file, environ={})
        return config_file

    def agent(self, name: str = "agent-1", specialties=("backend", "general"), **overrides):
        """An agent built as `claude-agent run` builds it, running in a thread."""
        config_file = self.agent_config(name, specialties, **overrides)
        worker = build_worker(self.configs[name], str(config_file))
        self.workers.append(worker)
        thread = threading.Thread(target=worker.run, name=f"agent-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)
        return worker

    def agent_process(self, name: str = "agent-1", **overrides) -> subprocess.Popen:
        """The real `claude-agent run` in its own process (for signals from outside)."""
        config_file = self.agent_config(name, **overrides)
        log = (self.tmp / f"{name}.log").open("w")
        process = subprocess.Popen(
            [f"{VENV_BIN}/claude-agent", "--config", str(config_file), "run"],
            stdout=log, stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"]},
        )  # fmt: skip
        self.processes.append((process, log))
        return process

    def stop_agents(self) -> None:
        for worker in self.workers:
            worker.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def close_agents(self) -> None:
        for process, log in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            log.close()
        for worker in self.workers:
            worker.coordinator.close()
            worker.queues.redis.close()

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
        claude_app = create_claude_app(scenarios, api_keys={CLAUDE_KEY})
        recorder = RecordingApp(claude_app)
        config = make_config(
            database_url,
            redis_url,
            **as_github_app(gh_sim, gh_url, tmp),
            heartbeat_seconds=1,
            lease_seconds=5,
            **coordinator_overrides,
        )
        app = create_app(config)
        ccc = app.extensions["ccc"]
        stack.callback(ccc.redis.close)
        stack.callback(ccc.database.dispose)
        stack.callback(ccc.gateway.close)
        ccc.queues.ensure()
        with ccc.database.session() as session:
            session.add(
                AdminUser(username="alice", password_hash=generate_password_hash(ADMIN_PASSWORD))
            )
        client = app.test_client()
        login = {"username": "alice", "password": ADMIN_PASSWORD}
        token = client.post("/api/v1/auth/token", json=login).json["token"]
        claude = stack.enter_context(BackgroundServer(recorder))
        coordinator = stack.enter_context(BackgroundServer(app))
        stack.callback(gh_sim.wait_idle, 10)
        gh_sim.create_hook(
            REPO,
            f"{coordinator.url}/webhooks/github",
            secret=WEBHOOK_SECRET,
            events=[
                "issues",
                "issue_comment",
                "pull_request",
                "pull_request_review",
                "pull_request_review_comment",
            ],
        )
        ccc.processor.start(interval=0.2)
        stack.callback(ccc.processor.stop)
        cluster = Cluster(
            gh_sim,
            gh_url,
            claude_app.extensions["claude_sim"],
            claude.url,
            recorder.bodies,
            ccc,
            coordinator.url,
            {"Authorization": f"Bearer {token}"},
            client,
            tmp,
        )
        stack.callback(cluster.close_agents)
        stack.callback(cluster.stop_agents)
        yield cluster


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
