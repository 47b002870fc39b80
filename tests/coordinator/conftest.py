"""Coordinator fixtures: a migrated database, the app bound to private PostgreSQL and Redis."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import github
import pytest
import redis
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from coordinator_app import schedules
from coordinator_app.app import create_app
from coordinator_app.config import CoordinatorConfig
from coordinator_app.models import AdminUser, Task
from simulators.github.config import SimulatorConfig
from simulators.github.testing import TOKENS, running_simulator, sample_seed
from simulators.server import BackgroundServer

WEBHOOK_SECRET = "test-webhook-secret"
ADMIN_PASSWORD = "correct horse battery staple"


def make_config(database_url: str, redis_url: str, **overrides) -> CoordinatorConfig:
    values = {
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": "test-secret-key-0123456789",
        "webhook_secret": WEBHOOK_SECRET,
        # Unreachable unless a test binds the GitHub simulator: nothing here may call GitHub.
        "github_api_url": "http://127.0.0.1:9/api/v3",
        "github_token": "unused",
        # Token mode serves these (test tasks name them); App mode serves its installations'.
        "repositories": ["octo/app", "acme/widgets", "acme/api"],
        # The test servers speak plain HTTP (tests/coordinator/test_admin_security.py checks
        # the default, Secure).
        "secure_cookies": False,
    }
    values.update(overrides)
    return CoordinatorConfig.from_mapping(values)


def as_github_app(sim, url: str, folder) -> dict:
    """Coordinator settings that make it the simulator's GitHub App (its key kept in
    ``folder``, owner-only) instead of a token."""
    key = folder / "github-app.pem"
    key.write_text(sim.store.app.private_key_pem)
    key.chmod(0o600)
    return {
        "github_api_url": f"{url}/api/v3",
        "github_token": "",
        "repositories": [],
        "github_app_id": sim.store.app.id,
        "github_app_private_key_file": str(key),
    }


@pytest.fixture(scope="session")
def github_url(tmp_path_factory):
    """A GitHub simulator for what a claim asks of GitHub (the cluster's identity); the
    repositories of the tasks it claims need not exist there in token mode."""
    data = tmp_path_factory.mktemp("github")
    with running_simulator(SimulatorConfig(seed=sample_seed(), data_dir=data)) as (_, url):
        yield url


@pytest.fixture
def config(database_url, redis_url, github_url):
    return make_config(
        database_url,
        redis_url,
        github_api_url=f"{github_url}/api/v3",
        github_token=TOKENS["cluster-bot"],
    )


@pytest.fixture
def app(config):
    app = create_app(config)
    app.config["TESTING"] = True
    ccc = app.extensions["ccc"]
    ccc.queues.ensure()
    yield app
    ccc.database.dispose()
    ccc.redis.close()
    ccc.gateway.close()


@pytest.fixture
def ccc(app):
    """The app's collaborators (config, database, redis, queues, processor)."""
    return app.extensions["ccc"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_user(ccc):
    with ccc.database.session() as session:
        session.add(
            AdminUser(username="alice", password_hash=generate_password_hash(ADMIN_PASSWORD))
        )
    return "alice"


@pytest.fixture
def admin_headers(client, admin_user):
    answer = client.post(
        "/api/v1/auth/token", json={"username": admin_user, "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 200, answer.json
    return {"Authorization": f"Bearer {answer.json['token']}"}


@pytest.fixture
def admin_headers_for():
    """Bearer headers of a new admin on a coordinator a test made itself."""

    def make(ccc, client):
        with ccc.database.session() as session:
            session.add(
                AdminUser(username="alice", password_hash=generate_password_hash(ADMIN_PASSWORD))
            )
        answer = client.post(
            "/api/v1/auth/token", json={"username": "alice", "password": ADMIN_PASSWORD}
        )
        return {"Authorization": f"Bearer {answer.json['token']}"}

    return make


class AgentHandle:
    """A registered agent as a test drives it: its id, key and bearer headers."""

    def __init__(self, client, admin_headers, name, specialties, **extra):
        answer = client.post(
            "/api/v1/agents",
            json={"name": name, "specialties": specialties, **extra},
            headers=admin_headers,
        )
        assert answer.status_code == 201, answer.json
        self.id, self.name, self.key = answer.json["id"], name, answer.json["key"]
        token = client.post("/api/v1/agents/token", json={"name": name, "key": self.key})
        assert token.status_code == 200, token.json
        self.headers = {"Authorization": f"Bearer {token.json['token']}"}
        self.client = client
        self.attempts: dict[int, str] = {}  # task id -> the attempt its last claim began

    def claim(self, task_id: int):
        """Confirm a claim, as the daemon does; remembers the attempt it began."""
        answer = self.client.post(f"/api/v1/tasks/{task_id}/claim", headers=self.headers)
        if answer.status_code == 200:
            self.attempts[task_id] = answer.json["attempt"]
        return answer

    def reporting(self, task_id: int) -> dict:
        """Headers for reports on a task: the bearer token and the attempt."""
        return {**self.headers, "X-Task-Attempt": self.attempts.get(task_id, "none")}

    def heartbeat(self, tasks=(), state="idle", load=0.0):
        """A heartbeat naming ``tasks`` (ids) by the attempts this agent claimed them in."""
        reported = [{"id": t, "attempt": self.attempts.get(t, "none")} for t in tasks]
        answer = self.client.post(
            f"/api/v1/agents/{self.id}/heartbeat",
            json={"state": state, "load": load, "tasks": reported, "version": "test"},
            headers=self.headers,
        )
        assert answer.status_code == 200, answer.json
        return answer.json


@pytest.fixture
def server(app):
    """The coordinator served over HTTP on loopback (for the admin pages and browsers)."""
    with BackgroundServer(app) as running:
        yield running


@pytest.fixture
def make_agent(client, admin_headers):
    def factory(name="agent-1", specialties=("backend",), **extra):
        return AgentHandle(client, admin_headers, name, list(specialties), **extra)

    return factory


def signed_delivery(
    payload: dict | bytes, event: str, delivery: str | None = None, secret: str = WEBHOOK_SECRET
) -> tuple[bytes, dict]:
    """A webhook body and headers as GitHub sends them."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={signature}",
        "Content-Type": "application/json",
    }
    return body, headers


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


# A GitHub simulator delivering webhooks to a running coordinator ------------------------------

REPO = "acme/widgets"
HOOK_EVENTS = [
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
]


@pytest.fixture
def world(database_url, redis_url, tmp_path):
    """(simulator, coordinator services, PyGithub client factory) with the hook installed."""
    with running_simulator(SimulatorConfig(seed=sample_seed(), data_dir=tmp_path / "gh")) as (
        sim,
        url,
    ):
        config = make_config(
            database_url,
            redis_url,
            github_api_url=f"{url}/api/v3",
            github_token=TOKENS["cluster-bot"],
        )
        app = create_app(config)
        ccc = app.extensions["ccc"]
        ccc.queues.ensure()
        clients = []

        def as_user(login: str) -> github.Github:
            client = github.Github(base_url=f"{url}/api/v3", auth=github.Auth.Token(TOKENS[login]))
            clients.append(client)
            return client

        with BackgroundServer(app) as coordinator:
            sim.create_hook(
                REPO,
                f"{coordinator.url}/webhooks/github",
                secret=WEBHOOK_SECRET,
                events=HOOK_EVENTS,
            )
            yield sim, ccc, as_user, url
            sim.wait_idle()
        for client in clients:
            client.close()
        ccc.gateway.close()
        ccc.database.dispose()
        ccc.redis.close()


def settle(sim, ccc) -> None:
    """Deliver every pending webhook, then run the coordinator's background pass twice
    (the second sends the outbox messages the first created)."""
    assert sim.wait_idle(10)
    ccc.processor.run_once()
    ccc.processor.run_once()


def tasks_for(ccc, number: int) -> list[Task]:
    with ccc.database.session() as session:
        return list(
            session.scalars(select(Task).where(Task.issue_number == number).order_by(Task.id))
        )


def labels(gh: github.Github, number: int) -> set[str]:
    return {label.name for label in gh.get_repo(REPO).get_issue(number).labels}


def make_due(ccc, name: str) -> None:
    """Let the processor's periodic duty ``name`` run on its next pass (not in its interval)."""
    with ccc.database.session() as session:
        schedules.make_due(session, name)
