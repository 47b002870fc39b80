"""Webhooks from the GitHub simulator: signatures, recorded deliveries, redelivery, real shapes."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import uuid
from urllib.parse import parse_qs

import pytest
import requests
from github import Auth, Github

from simulators.github import SimulatorConfig
from simulators.github.testing import TOKENS, WebhookReceiver, running_simulator, sample_seed

SECRET = "It's a Secret to Everybody"
REPO = "acme/widgets"

# Fields GitHub has added to payloads since the published examples were captured; the simulator
# sends today's shape, so these may appear beside the examples' keys (and nothing else may).
NEWER_FIELDS = {
    "repository": {"allow_forking", "custom_properties"},
    "issue": {"performed_via_github_app", "state_reason", "timeline_url"},
    "pull_request": {"draft", "auto_merge"},
}
# Present because the sample repository belongs to an organization.
CONTEXT_FIELDS = {"organization"}
# Only the App's own copy of an event names its installation (test_github_simulator_app checks
# it); a repository hook's does not, although some examples were captured from App deliveries.
APP_ONLY_FIELDS = {"installation"}


@pytest.fixture
def receiver():
    """A local webhook receiver."""
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def server(tmp_path):
    """The simulator with the sample seed (no hooks yet)."""
    with running_simulator(
        SimulatorConfig(seed=sample_seed(), data_dir=tmp_path / "data")
    ) as running:
        yield running


@pytest.fixture
def admin(server):
    """PyGithub as alice, who administers the repository."""
    _, url = server
    client = Github(
        base_url=f"{url}/api/v3",
        auth=Auth.Token(TOKENS["alice"]),
        seconds_between_requests=0,
        seconds_between_writes=0,
    )
    yield client
    client.close()


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_signed_deliveries_reach_the_receiver(server, admin, receiver):
    sim, _ = server
    repo = admin.get_repo(REPO)
    hook = repo.create_hook(
        "web",
        {"url": receiver.url, "secret": SECRET, "content_type": "json"},
        events=["issues", "issue_comment"],
    )
    assert hook.config["secret"] == "********"
    issue = repo.create_issue("Add dark mode", labels=["claude"])
    issue.create_comment("@claude please")
    assert sim.wait_idle()

    assert [r.event for r in receiver.received] == ["ping", "issues", "issues", "issue_comment"]
    assert [r.json().get("action") for r in receiver.received[1:]] == [
        "opened",
        "labeled",
        "created",
    ]
    for request in receiver.received:
        headers = request.headers
        digest = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Hub-Signature-256"], f"sha256={digest}")
        sha1 = hmac.new(SECRET.encode(), request.body, hashlib.sha1).hexdigest()
        assert headers["X-Hub-Signature"] == f"sha1={sha1}"
        assert uuid.UUID(headers["X-GitHub-Delivery"])
        assert headers["X-GitHub-Hook-ID"] == str(hook.id)
        assert headers["User-Agent"].startswith("GitHub-Hookshot/")
        assert headers["Content-Type"] == "application/json"
    labeled = receiver.received[2].json()
    assert labeled["label"]["name"] == "claude"
    assert labeled["issue"]["number"] == issue.number
    assert labeled["sender"]["login"] == "alice"

    hook.ping()
    assert sim.wait_idle()
    assert receiver.received[-1].event == "ping"
    assert receiver.received[-1].json()["hook_id"] == hook.id


def test_failed_delivery_is_recorded_and_redelivered(server, admin, receiver):
    sim, url = server
    receiver.status = 500
    repo = admin.get_repo(REPO)
    hook = repo.create_hook("web", {"url": receiver.url, "content_type": "json"}, events=["*"])
    sim.create_issue(REPO, "bob", "Broken receiver")
    assert sim.wait_idle()

    failed = sim.deliveries(failed=True, hook_id=hook.id)
    assert [d.event for d in failed] == ["issues", "ping"]
    assert failed[0].status_code == 500
    assert failed[0].response_body == "broken"
    summaries = list(repo.get_hook_deliveries(hook.id))
    assert [s.status_code for s in summaries] == [500, 500]
    detail = repo.get_hook_delivery(hook.id, failed[0].id)
    assert detail.request.headers["X-GitHub-Event"] == "issues"
    assert detail.request.payload["issue"]["title"] == "Broken receiver"

    receiver.status = 200
    response = requests.post(
        f"{url}/api/v3/repos/{REPO}/hooks/{hook.id}/deliveries/{failed[0].id}/attempts",
        headers={"Authorization": f"token {TOKENS['alice']}"},
        timeout=10,
    )
    assert response.status_code == 202
    sim.redeliver(failed[1].id)  # the Python surface does the same
    assert sim.wait_idle()
    redelivered = [d for d in sim.deliveries(hook_id=hook.id) if d.redelivery]
    assert all(d.success for d in redelivered)
    assert {d.guid for d in redelivered} == {d.guid for d in failed}
    assert receiver.received[-2].body == failed[0].body  # the very same payload


def test_form_hooks_are_signed_over_the_form_body(server, receiver):
    sim, _ = server
    sim.create_hook(REPO, receiver.url, secret=SECRET, content_type="form", events=["*"])
    assert sim.wait_idle()
    (ping,) = receiver.received
    assert ping.headers["Content-Type"] == "application/x-www-form-urlencoded"
    digest = hmac.new(SECRET.encode(), ping.body, hashlib.sha256).hexdigest()
    assert ping.headers["X-Hub-Signature-256"] == f"sha256={digest}"
    payload = json.loads(parse_qs(ping.body.decode())["payload"][0])
    assert payload["zen"]


def test_unreachable_receiver_is_a_failed_delivery(server):
    sim, _ = server
    hook = sim.create_hook(REPO, f"http://127.0.0.1:{free_port()}/hook", events=["issues"])
    assert sim.wait_idle()
    (ping,) = sim.deliveries(failed=True, hook_id=hook.id)
    assert ping.status_code == 0
    assert ping.status.startswith("failed to connect")
    assert hook.last_response["status"] == "failed"


@pytest.fixture
def simulated_payloads(server, receiver, tmp_path) -> dict:
    """Make the simulator fire every event the fixtures cover; payloads by (event, action)."""
    sim, url = server
    sim.create_hook(REPO, receiver.url, secret=SECRET, events=["*"])
    sim.create_issue(REPO, "bob", "A bug", "Details", labels=["bug"])
    sim.create_comment(REPO, "carol", 1, "Me too")
    clone_url = url.replace("http://", f"http://bob:{TOKENS['bob']}@") + f"/{REPO}.git"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    script = (
        f"git clone -q {clone_url} repo && cd repo && git checkout -q -b fix "
        "&& echo 'def half(x):\n    return x / 2' >> widgets/__init__.py "
        "&& git -c user.name=Bob -c user.email=bob@example.com commit -q -am 'Add half' "
        "&& git push -q origin fix"
    )
    subprocess.run(["sh", "-c", script], cwd=tmp_path, env=env, check=True, capture_output=True)
    pull = sim.create_pull(REPO, "bob", "Add half", head="fix", base="main")
    sha = pull.pull.head_sha
    sim.create_review_comment(
        REPO,
        "alice",
        pull.number,
        "Division by zero?",
        path="widgets/__init__.py",
        line=5,
        commit_id=sha,
    )
    sim.close_issue(REPO, "alice", pull.number)
    assert sim.wait_idle()
    return {(r.event, r.json().get("action")): r.json() for r in receiver.received}


@pytest.mark.parametrize(
    "case",
    [
        ("ping", None, "ping/payload.json"),
        ("issues", "opened", "issues/opened.json"),
        ("issues", "labeled", "issues/labeled.json"),
        ("issue_comment", "created", "issue_comment/created.json"),
        ("pull_request", "closed", "pull_request/closed.json"),
        ("pull_request_review_comment", "created", "pull_request_review_comment/created.json"),
    ],
    ids=lambda case: f"{case[0]}.{case[1]}",
)
def test_payloads_have_githubs_shape(simulated_payloads, server, webhook_fixtures, case):
    _, url = server
    event, action, fixture = case
    simulated = simulated_payloads[(event, action)]
    real = json.loads((webhook_fixtures / fixture).read_text())
    missing = set(real) - set(simulated) - APP_ONLY_FIELDS
    assert not missing, f"{event}.{action}: top-level keys missing: {missing}"
    assert set(simulated) - set(real) <= CONTEXT_FIELDS
    for key, value in real.items():
        if not isinstance(value, dict) or key in ("changes", "installation"):
            continue
        ours = simulated[key]
        assert set(value) <= set(ours), f"{key}: missing {set(value) - set(ours)}"
        extra = set(ours) - set(value) - NEWER_FIELDS.get(key, set())
        assert not extra, f"{key}: keys GitHub does not send: {extra}"
    if "pull_request" in real:
        for side in ("head", "base"):
            assert set(real["pull_request"][side]) == set(simulated["pull_request"][side])
    assert simulated["sender"]["url"].startswith(url + "/api/v3/")
    assert simulated["repository"]["clone_url"] == f"{url}/{REPO}.git"


def test_admin_surface(server, receiver):
    sim, url = server
    sim.create_hook(REPO, receiver.url, events=["*"])
    base = f"{url}/_sim/repos/{REPO}"
    with requests.Session() as http:
        opened = http.post(
            f"{base}/issues", json={"as": "carol", "title": "From a test"}, timeout=10
        )
        assert opened.status_code == 201
        number = opened.json()["number"]
        labels = http.post(
            f"{base}/issues/{number}/labels", json={"as": "alice", "labels": ["claude"]}, timeout=10
        )
        assert [label["name"] for label in labels.json()] == ["claude"]
        http.post(
            f"{base}/issues/{number}/comments", json={"as": "bob", "body": "On it"}, timeout=10
        )
        closed = http.post(f"{base}/issues/{number}/close", json={"as": "alice"}, timeout=10)
        assert closed.json()["state"] == "closed"
        denied = http.post(
            f"{base}/issues/{number}/labels", json={"as": "carol", "labels": ["bug"]}, timeout=10
        )
        assert denied.status_code == 403  # the admin surface acts with the user's rights

        assert http.post(f"{url}/_sim/flush", timeout=30).json() == {"idle": True}
        deliveries = http.get(f"{url}/_sim/deliveries", params={"event": "issues"}, timeout=10)
        actions = [d["request"]["payload"]["action"] for d in deliveries.json()]
        assert actions == ["closed", "labeled", "opened"]  # newest first
        assert http.get(f"{url}/_sim/", timeout=10).json()["deliveries"] == len(receiver.received)

        assert http.post(f"{url}/_sim/reset", timeout=30).json() == {"reset": True}
    assert sim.store.repo("acme", "widgets").issues == {}
    assert sim.deliveries() == []
