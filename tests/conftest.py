"""Shared fixtures: private PostgreSQL and Redis servers, and the real webhook fixtures."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis

from coordinator_app import migrate
from lab.services import PostgresServer, RedisServer

pytest_plugins = ["lab.pytest_plugin"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# ../shared sits beside the checkout in development and CI, but not in a user's clone.
SHARED_FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def postgres_server():
    """One private PostgreSQL for the whole run; tests get their own database from it."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server):
    """SQLAlchemy URL of a fresh, empty database, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def database_url(postgres_url):
    """A fresh database migrated to the coordinator's newest schema."""
    migrate.upgrade(postgres_url)
    return postgres_url


@pytest.fixture(scope="session")
def redis_server():
    """One private Redis for the whole run; ``redis_url`` empties it around each test."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server):
    """URL of the private Redis, empty at the start of the test and flushed after it."""
    client = redis.Redis.from_url(redis_server.url())
    if not redis_server.running:  # a previous test may have stopped it on purpose
        redis_server.start()
    client.flushall()
    try:
        yield redis_server.url()
    finally:
        if redis_server.running:
            client.flushall()
        client.close()


@pytest.fixture(scope="session")
def webhook_fixtures() -> Path:
    """Folder of real GitHub webhook payloads (one subfolder per X-GitHub-Event)."""
    folder = SHARED_FIXTURES / "github-webhooks"
    if not folder.is_dir():
        pytest.skip(f"real webhook payloads not found at {folder} (no ../shared beside the clone)")
    return folder
