"""The GitHub simulator's primary and secondary rate limits, as PyGithub sees them."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import pytest
import requests
from github import Auth, Github, GithubIntegration
from github.GithubException import RateLimitExceededException

from simulators.github import SimulatorConfig
from simulators.github.testing import (
    APP_ID,
    INSTALLATION_ID,
    TOKENS,
    pygithub,
    running_simulator,
    sample_seed,
)

PRIMARY_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)


@pytest.fixture
def start(tmp_path):
    """``start(**limits)`` runs a simulator with the sample seed: (simulator, base URL)."""
    with ExitStack() as stack:

        def run(**limits: int):
            config = SimulatorConfig(seed=sample_seed(), data_dir=tmp_path / "data", **limits)
            return stack.enter_context(running_simulator(config))

        yield run


@pytest.fixture
def client():
    """``client(url, login=None, token=None)``: PyGithub with its own retry off, as the project."""
    opened: list[Github] = []

    def make(url: str, login: str | None = None, token: str | None = None) -> Github:
        gh = pygithub(url, token or (TOKENS[login] if login else None))
        opened.append(gh)
        return gh

    yield make
    for gh in opened:
        gh.close()


def installation_tokens(sim, url: str, count: int) -> list[str]:
    """``count`` fresh tokens of the sample installation, minted with the App's JWT."""
    auth = Auth.AppAuth(APP_ID, sim.store.app.private_key_pem)
    with GithubIntegration(auth=auth, base_url=f"{url}/api/v3") as integration:
        return [integration.get_access_token(INSTALLATION_ID).token for _ in range(count)]


def counting_admits(sim, monkeypatch) -> list[str]:
    """Record the request ID of every request reaching the limiter."""
    seen: list[str] = []
    admit = sim.rate.admit

    def counted(who, limits, *, write, request_id):
        seen.append(request_id)
        return admit(who, limits, write=write, request_id=request_id)

    monkeypatch.setattr(sim.rate, "admit", counted)
    return seen


def test_config_fields_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("GHSIM_ANONYMOUS_RATE_LIMIT", "7")
    monkeypatch.setenv("GHSIM_RATE_LIMIT_WINDOW_SECONDS", "2")
    monkeypatch.setenv("GHSIM_SECONDARY_WRITES_PER_MINUTE", "0")
    config = SimulatorConfig.load(secondary_concurrent_requests="3")
    assert (config.rate_limit, config.anonymous_rate_limit, config.rate_limit_window_seconds) == (
        5000,
        7,
        2,
    )
    assert (config.secondary_writes_per_minute, config.secondary_writes_per_hour) == (0, 500)
    assert config.secondary_concurrent_requests == 3


def test_primary_limit_per_user_then_the_window_resets(start, client, monkeypatch):
    sim, url = start(rate_limit=3, rate_limit_window_seconds=2)
    bob = client(url, "bob")
    for _ in range(3):
        repo = bob.get_repo("acme/widgets")
    admits = counting_admits(sim, monkeypatch)
    began = time.monotonic()
    with pytest.raises(RateLimitExceededException) as raised:
        repo.create_issue("never filed")
    assert time.monotonic() - began < 1 and len(admits) == 1  # answered once, not retried
    error = raised.value
    bob_id = sim.store.user("bob").id
    assert error.status == 403
    assert error.data == {
        "message": f"API rate limit exceeded for user ID {bob_id}.",
        "documentation_url": PRIMARY_DOCS,
        "status": "403",
    }
    headers = error.headers
    assert (headers["x-ratelimit-remaining"], headers["x-ratelimit-limit"]) == ("0", "3")
    assert (headers["x-ratelimit-used"], headers["x-ratelimit-resource"]) == ("3", "core")
    reset = int(headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 3
    assert "retry-after" not in headers

    # The refused write never ran and the refusals were not counted.
    assert sim.store.repo("acme", "widgets").issues == {}
    assert bob.get_rate_limit().resources.core.used == 3
    # Others have windows of their own.
    assert client(url, "carol").get_repo("acme/widgets").full_name == "acme/widgets"

    time.sleep(max(reset - time.time(), 0) + 0.05)
    assert repo.create_issue("filed in the new window").number == 1
    core = bob.get_rate_limit().resources.core
    assert (core.used, core.remaining) == (1, 2)


def test_anonymous_limit_per_address(start, client):
    _, url = start(anonymous_rate_limit=2)
    anonymous = client(url)
    for _ in range(2):
        anonymous.get_repo("acme/public-site")
    with pytest.raises(RateLimitExceededException) as raised:
        anonymous.get_repo("acme/public-site")
    assert raised.value.data["message"] == (
        "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests"
        " get a higher rate limit. Check out the documentation for more details.)"
    )
    assert raised.value.headers["x-ratelimit-limit"] == "2"
    assert raised.value.headers["x-ratelimit-remaining"] == "0"
    # A token counts against its user, not the address.
    bob = client(url, "bob")
    assert bob.get_repo("acme/public-site").full_name == "acme/public-site"
    assert bob.get_rate_limit().rate.limit == 5000


def test_installation_limit_is_shared_by_its_tokens(start, client):
    sim, url = start(rate_limit=3)
    first, second = (client(url, token=t) for t in installation_tokens(sim, url, 2))
    first.get_repo("acme/widgets")
    first.get_repo("acme/widgets")
    second.get_repo("acme/widgets")
    for gh in (second, first):
        with pytest.raises(RateLimitExceededException) as raised:
            gh.get_repo("acme/widgets")
        assert raised.value.data["message"] == (
            f"API rate limit exceeded for installation ID {INSTALLATION_ID}."
        )
        assert raised.value.headers["x-ratelimit-used"] == "3"
    # Users keep their own windows, and minting with the App's JWT is not limited.
    assert client(url, "bob").get_repo("acme/widgets").full_name == "acme/widgets"
    (third,) = installation_tokens(sim, url, 1)
    with pytest.raises(RateLimitExceededException):
        client(url, token=third).get_repo("acme/widgets")


def test_secondary_write_limit_gives_retry_after(start, client, monkeypatch):
    sim, url = start(secondary_writes_per_minute=2)
    frozen, skipped = time.time(), 0
    sim.rate.clock = lambda: frozen + skipped  # a still clock, stepped past the minute at will
    repo = client(url, "bob").get_repo("acme/widgets")
    repo.create_issue("one")
    repo.create_issue("two")

    admits = counting_admits(sim, monkeypatch)
    with pytest.raises(RateLimitExceededException) as raised:
        repo.create_issue("three")
    assert len(admits) == 1
    error = raised.value
    request_id = error.headers["x-github-request-id"]
    assert error.status == 403
    assert error.data["message"] == (
        f"{SECONDARY} If you reach out to GitHub Support for help, please include the request ID"
        f" {request_id}."
    )
    assert error.data["documentation_url"].startswith(PRIMARY_DOCS)
    retry_after = int(error.headers["retry-after"])
    assert retry_after == 60  # both writes were at the same instant of the still clock
    assert int(error.headers["x-ratelimit-remaining"]) > 0  # the primary window is not the issue

    # Reads still work, other callers may write, and the refused write never ran.
    assert [i.title for i in repo.get_issues()] == ["two", "one"]
    client(url, "alice").get_repo("acme/widgets").create_issue("alice's")

    skipped = retry_after - 1
    with pytest.raises(RateLimitExceededException):
        repo.create_issue("three")
    skipped = retry_after
    assert repo.create_issue("three").title == "three"


def test_hourly_write_limit_and_zero_disables(start, client):
    sim, url = start(secondary_writes_per_minute=0, secondary_writes_per_hour=3)
    repo = client(url, "bob").get_repo("acme/widgets")
    for n in range(3):
        repo.create_issue(f"issue {n}")
    with pytest.raises(RateLimitExceededException) as raised:
        repo.create_issue("too many this hour")
    assert 3500 < int(raised.value.headers["retry-after"]) <= 3600
    sim.rate.configure(sim.config, {"secondary_writes_per_hour": 0})
    assert repo.create_issue("unlimited again").number == 4


def test_concurrent_requests_limit(start, client, monkeypatch):
    sim, url = start(secondary_concurrent_requests=1)
    repo = client(url, "bob").get_repo("acme/widgets")
    entered, release = threading.Event(), threading.Event()
    refs = sim.git.refs

    def slow_refs(*args, **kwargs):
        entered.set()
        release.wait(10)
        return refs(*args, **kwargs)

    monkeypatch.setattr(sim.git, "refs", slow_refs)
    slow = threading.Thread(target=lambda: list(repo.get_branches()))
    slow.start()
    try:
        assert entered.wait(10)
        with pytest.raises(RateLimitExceededException) as raised:
            repo.get_issues().totalCount  # noqa: B018  # the request is the point
        assert raised.value.data["message"].startswith(SECONDARY)
        assert raised.value.headers["retry-after"] == "1"
        assert client(url, "carol").get_repo("acme/widgets").name == "widgets"
    finally:
        release.set()
        slow.join(10)
    assert repo.get_issues().totalCount == 0  # the slot was freed


def test_rate_limit_endpoint_reports_truthfully_and_is_never_refused(start, client):
    _, url = start(rate_limit=2, anonymous_rate_limit=1)
    bob = client(url, "bob")
    bob.get_repo("acme/widgets")
    bob.get_repo("acme/widgets")
    with pytest.raises(RateLimitExceededException) as raised:
        bob.get_repo("acme/widgets")
    for _ in range(3):
        limits = bob.get_rate_limit()
        assert (limits.resources.core.used, limits.resources.core.remaining) == (2, 0)
        assert limits.rate.limit == 2
        assert int(limits.rate.reset.timestamp()) == int(raised.value.headers["x-ratelimit-reset"])
    response = requests.get(f"{url}/api/v3/rate_limit", timeout=10)
    assert response.status_code == 200
    assert response.json()["rate"] == {
        "limit": 1,
        "used": 0,
        "remaining": 1,
        "reset": int(response.headers["X-RateLimit-Reset"]),
    }


def test_admin_route_changes_limits_at_runtime(start, client):
    _, url = start()
    repo = client(url, "bob").get_repo("acme/widgets")
    repo.create_issue("before")
    admin = f"{url}/_sim/rate-limits"

    response = requests.post(admin, json={"rate_limit": 1}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "rate_limit": 1,
        "anonymous_rate_limit": 60,
        "rate_limit_window_seconds": 3600,
        "secondary_writes_per_minute": 80,
        "secondary_writes_per_hour": 500,
        "secondary_concurrent_requests": 100,
    }
    assert repo.get_issue(1).title == "before"  # the counts started afresh
    with pytest.raises(RateLimitExceededException):
        repo.get_issue(1)

    requests.post(admin, json={"rate_limit": 5000, "secondary_writes_per_minute": 1}, timeout=10)
    repo.create_issue("after")
    with pytest.raises(RateLimitExceededException) as raised:
        repo.create_issue("one too many")
    assert "retry-after" in raised.value.headers

    for bad in ({"rate_limit": -1}, {"rate_limit_window_seconds": 0}, {"burst": 3}):
        response = requests.post(admin, json=bad, timeout=10)
        assert response.status_code == 422, bad
    assert requests.post(admin, json={}, timeout=10).json()["rate_limit"] == 5000
