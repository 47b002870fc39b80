"""Every API route is authenticated, and each caller reaches only what it may."""

from __future__ import annotations

import time

import pytest

from coordinator_app.app import create_app
from tests.coordinator.conftest import ADMIN_PASSWORD, make_config
from tests.coordinator.test_admin_security import at_the_start_of_a_rate_window

PUBLIC = {"/api/v1/agents/token", "/api/v1/auth/token", "/api/v1/openapi.json"}


def _api_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1") and rule.rule not in PUBLIC:
            path = rule.rule.replace("<int:task_id>", "1").replace("<int:agent_id>", "1")
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, path


def test_every_api_route_needs_a_token(app, client):
    routes = list(_api_routes(app))
    assert len(routes) >= 20
    for method, path in routes:
        answer = client.open(path, method=method, json={})
        assert answer.status_code == 401, (method, path, answer.status_code)
        assert answer.json["error"]["code"] == "unauthorized"


def test_metrics_need_a_token(client, admin_headers):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=admin_headers).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"name": "be-1", "key": "ccca_wrong"}, {"name": "nobody", "key": "ccca_wrong"}],
    ids=["wrong key", "unknown agent"],
)
def test_wrong_agent_credentials(client, make_agent, body):
    make_agent("be-1")
    answer = client.post("/api/v1/agents/token", json=body)
    assert answer.status_code == 401
    assert answer.json["error"]["message"] == "unknown agent or wrong key"


def test_wrong_admin_password(client, admin_user):
    answer = client.post("/api/v1/auth/token", json={"username": "alice", "password": "guess"})
    assert answer.status_code == 401


def test_tampered_token(client, admin_headers):
    token = admin_headers["Authorization"] + "x"
    answer = client.get("/api/v1/tasks", headers={"Authorization": token})
    assert answer.status_code == 401 and answer.json["error"]["message"] == "invalid token"


def test_expired_token(database_url, redis_url, admin_user):
    app = create_app(make_config(database_url, redis_url, agent_token_seconds=1))
    client = app.test_client()
    token = client.post(
        "/api/v1/auth/token", json={"username": "alice", "password": ADMIN_PASSWORD}
    ).json["token"]
    time.sleep(2.1)
    answer = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and "expired" in answer.json["error"]["message"]
    app.extensions["ccc"].database.dispose()
    app.extensions["ccc"].redis.close()


def test_rotated_key_revokes_old_tokens(client, admin_headers, make_agent):
    agent = make_agent("be-1")
    assert client.post(f"/api/v1/agents/{agent.id}/key", headers=admin_headers).status_code == 200
    answer = client.get(f"/api/v1/agents/{agent.id}", headers=agent.headers)
    assert answer.status_code == 401


def test_agents_are_not_admins(client, make_agent):
    agent = make_agent("be-1")
    for method, path in [
        ("GET", "/api/v1/tasks"),
        ("POST", "/api/v1/agents"),
        ("POST", "/api/v1/tasks/1/cancel"),
        ("GET", "/api/v1/agents"),
    ]:
        answer = client.open(path, method=method, json={}, headers=agent.headers)
        assert answer.status_code == 403, (method, path)


def test_an_agent_cannot_touch_another_agents_task(client, admin_headers, make_agent, ccc):
    from tests.coordinator.test_api_tasks import claim_next, create

    task = create(client, admin_headers)
    owner, other = make_agent("be-1"), make_agent("be-2")
    claim_next(ccc, client, owner)
    tid = task["id"]
    for method, path, body in [
        ("GET", f"/api/v1/tasks/{tid}", None),
        ("PATCH", f"/api/v1/tasks/{tid}", {"state": "in_progress"}),
        ("POST", f"/api/v1/tasks/{tid}/events", {"events": [{"kind": "turn"}]}),
        ("POST", f"/api/v1/tasks/{tid}/result", {"outcome": "failed"}),
        ("POST", f"/api/v1/tasks/{tid}/release", {}),
        ("GET", f"/api/v1/agents/{owner.id}", None),
        ("POST", f"/api/v1/agents/{owner.id}/heartbeat", {"state": "idle"}),
    ]:
        answer = client.open(path, method=method, json=body, headers=other.headers)
        assert answer.status_code == 403, (method, path, answer.json)
    assert client.get(f"/api/v1/tasks/{tid}", headers=owner.headers).status_code == 200


def test_agent_key_is_shown_once_and_stored_hashed(client, admin_headers, ccc):
    from coordinator_app.models import Agent

    answer = client.post(
        "/api/v1/agents", json={"name": "be-9", "specialties": ["backend"]}, headers=admin_headers
    )
    key = answer.json["key"]
    assert key.startswith("ccca_")
    assert (
        "key" not in client.get(f"/api/v1/agents/{answer.json['id']}", headers=admin_headers).json
    )
    with ccc.database.session() as session:
        stored = session.get(Agent, answer.json["id"]).key_hash
    assert key not in stored and len(stored) == 64


def test_openapi_document_lists_every_route(app, client):
    document = client.get("/api/v1/openapi.json").json
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    actual = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = rule.rule.replace("<int:", "{").replace(">", "}")
            actual |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == actual
    claim = document["paths"]["/api/v1/tasks/{task_id}/claim"]["post"]
    assert claim["x-allowed-callers"] == ["agent"] and claim["security"] == [{"bearer": []}]


def test_rate_limit_answers_429_with_retry_after(database_url, redis_url):
    app = create_app(make_config(database_url, redis_url, api_rate_per_minute=3))
    at_the_start_of_a_rate_window(room=10)  # five requests in one fixed window
    client = app.test_client()
    codes = [client.get("/api/v1/tasks").status_code for _ in range(5)]
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]
    limited = client.get("/api/v1/tasks")
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    app.extensions["ccc"].database.dispose()
    app.extensions["ccc"].redis.close()
