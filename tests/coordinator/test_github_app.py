"""The coordinator as a GitHub App against the simulator's App: the served repositories follow
the installations, a claim carries a token for its task's repository alone, and token requests
name the task's branch only."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from coordinator_app import served
from coordinator_app.app import create_app
from coordinator_app.github_auth import TASK_PERMISSIONS
from coordinator_app.models import OutboxMessage, Task, WebhookDelivery
from simulators.github.config import SimulatorConfig
from simulators.github.testing import INSTALLATION_ID, running_simulator, sample_seed
from simulators.server import BackgroundServer
from tests.coordinator.conftest import WEBHOOK_SECRET, AgentHandle, as_github_app, make_config
from tests.coordinator.test_api_tasks import claim_next

SECRET_REPO = "acme/secret-plans"  # private, covered by the installation
ELSEWHERE = "elsewhere/tool"  # private, on an account the App is not installed on


def seed() -> dict:
    world = sample_seed()
    world["users"].append({"login": "elsewhere", "type": "Organization"})
    world["repos"] += [
        {"name": SECRET_REPO, "private": True, "files": {"PLANS.md": "secret\n"}},
        {"name": ELSEWHERE, "private": True, "collaborators": {"bob": "admin"},
         "labels": [{"name": "claude"}], "files": {"README.md": "tool\n"}},
    ]  # fmt: skip
    return world


@pytest.fixture
def world(database_url, redis_url, tmp_path, admin_headers_for):
    """(simulator, API URL, coordinator services, test client, admin headers); the App's
    webhook and a repository hook of the uninstalled account point at the coordinator."""
    with running_simulator(SimulatorConfig(seed=seed(), data_dir=tmp_path / "gh")) as (sim, url):
        config = make_config(database_url, redis_url, **as_github_app(sim, url, tmp_path))
        app = create_app(config)
        ccc = app.extensions["ccc"]
        ccc.queues.ensure()
        client = app.test_client()
        with BackgroundServer(app) as coordinator:
            hook_url = f"{coordinator.url}/webhooks/github"
            sim.set_app_webhook(hook_url, secret=WEBHOOK_SECRET)
            sim.create_hook(ELSEWHERE, hook_url, secret=WEBHOOK_SECRET, events=["*"])
            yield sim, f"{url}/api/v3", ccc, client, admin_headers_for(ccc, client)
            sim.wait_idle()
        ccc.gateway.close()
        ccc.database.dispose()
        ccc.redis.close()


def settle(sim, ccc) -> None:
    assert sim.wait_idle(10)
    ccc.processor.run_once()


def served_now(ccc) -> set[str]:
    with ccc.database.session() as session:
        return set(served.listing(session, ccc.config))


def test_the_served_repositories_follow_the_installation(world):
    sim, _, ccc, _, _ = world
    assert ccc.processor.sync_repositories_if_due() == 3
    assert served_now(ccc) == {"acme/widgets", "acme/public-site", SECRET_REPO}
    sim.remove_installation_repositories(INSTALLATION_ID, [SECRET_REPO])
    settle(sim, ccc)
    assert served_now(ccc) == {"acme/widgets", "acme/public-site"}
    sim.add_installation_repositories(INSTALLATION_ID, [SECRET_REPO])
    settle(sim, ccc)
    assert served_now(ccc) == {"acme/widgets", "acme/public-site", SECRET_REPO}
    sim.uninstall_app(INSTALLATION_ID)
    settle(sim, ccc)
    assert served_now(ccc) == set()
    with ccc.database.session() as session:
        outcomes = [d.outcome for d in session.scalars(select(WebhookDelivery))]
    assert any("1 removed" in o for o in outcomes) and any("1 added" in o for o in outcomes)


def test_an_unserved_repository_creates_nothing_and_sends_nothing(world):
    sim, _, ccc, _, _ = world
    ccc.processor.sync_repositories_if_due()
    issue = sim.create_issue(ELSEWHERE, "bob", "Please do this")
    sim.add_labels(ELSEWHERE, "bob", issue.number, ["claude"])
    settle(sim, ccc)
    with ccc.database.session() as session:
        labelled = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.action == "labeled")
        ).all()
        assert [(d.status, d.outcome) for d in labelled] == [
            ("ignored", f"ignored: {ELSEWHERE} is not served by this cluster")
        ]
        assert session.scalars(select(Task)).all() == []
        assert session.scalars(select(OutboxMessage)).all() == []


def api(url: str, token: str, method: str, path: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"token {token}"}
    return requests.request(method, f"{url}{path}", headers=headers, timeout=10, **kwargs)


def test_a_claim_carries_a_token_for_its_repository_alone(world):
    _, url, ccc, client, admin = world
    ccc.processor.sync_repositories_if_due()
    created = client.post(
        "/api/v1/tasks",
        json={"repository": "acme/widgets", "issue_number": 1, "title": "Add a health check"},
        headers=admin,
    )
    assert created.status_code == 201, created.json
    agent = AgentHandle(client, admin, "be-1", ["backend", "general"])
    claimed = claim_next(ccc, client, agent, ("backend", "general"))
    assert claimed.status_code == 200, claimed.json
    grant = claimed.json["github"]
    token = grant["token"]
    assert grant["permissions"] == TASK_PERMISSIONS and grant["expires_at"]
    assert grant["author"]["name"] == "test-cluster[bot]"
    assert grant["branch"] == "claude/issue-1-add-a-health-check" == claimed.json["branch"]
    # GitHub's own answers: its repository, yes; another private one is not found; a public
    # one can be read but not written; nothing outside the task's permissions.
    assert api(url, token, "GET", "/repos/acme/widgets").status_code == 200
    assert api(url, token, "GET", f"/repos/{SECRET_REPO}").status_code == 404
    assert api(url, token, "GET", "/repos/acme/public-site").status_code == 200
    comment = {"body": "hi"}
    assert api(url, token, "POST", "/repos/acme/public-site/issues/1/comments",
               json=comment).status_code in (403, 404)  # fmt: skip
    assert api(url, token, "GET", "/repos/acme/widgets/hooks").status_code == 403
    # The token is never stored by the coordinator.
    with ccc.database.session() as session:
        task = session.scalars(select(Task)).one()
        assert token not in repr((task.result, task.analysis, task.error))

    # A new token names the task's branch and no other ref.
    path = f"/api/v1/tasks/{task.id}/github-token"
    for ref in ("refs/heads/main", "refs/heads/claude/issue-2-other", "refs/tags/v1"):
        refused = client.post(path, json={"ref": ref}, headers=agent.reporting(task.id))
        assert refused.status_code == 403, refused.json
        assert "may push refs/heads/claude/issue-1-add-a-health-check only" in refused.json[
            "error"]["message"]  # fmt: skip
    renewed = client.post(path, json={"ref": f"refs/heads/{grant['branch']}"},
                          headers=agent.reporting(task.id))  # fmt: skip
    assert renewed.status_code == 200 and renewed.json["token"] != token
    # Nor may the agent report another branch as the task's.
    moved = client.patch(f"/api/v1/tasks/{task.id}", json={"branch": "main"},
                         headers=agent.reporting(task.id))  # fmt: skip
    assert moved.status_code == 400 and "works on claude/issue-1" in moved.json["error"]["message"]
    # Another agent gets nothing for this task.
    other = AgentHandle(client, admin, "be-2", ["backend"])
    stolen = client.post(path, json={"ref": f"refs/heads/{grant['branch']}"},
                         headers=other.headers)  # fmt: skip
    assert stolen.status_code == 403


def test_a_repository_out_of_the_installation_fails_its_task_for_good(world):
    sim, _, ccc, client, admin = world
    ccc.processor.sync_repositories_if_due()
    created = client.post(
        "/api/v1/tasks",
        json={"repository": SECRET_REPO, "issue_number": 1, "title": "Read the plans"},
        headers=admin,
    )
    assert created.status_code == 201, created.json
    # Taken out of the installation before an agent claims it (the webhook not yet processed).
    sim.remove_installation_repositories(INSTALLATION_ID, [SECRET_REPO])
    agent = AgentHandle(client, admin, "gen-1", ["general"])
    refused = claim_next(ccc, client, agent, ("general",))
    assert refused.status_code == 409, refused.json
    assert "GitHub gives no access to acme/secret-plans" in refused.json["error"]["message"]
    task = client.get(f"/api/v1/tasks/{created.json['id']}", headers=admin).json
    assert task["state"] == "failed" and task["retry_at"] is None
    assert "GitHub answered 422" in task["error"]
