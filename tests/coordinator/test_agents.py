"""The agent registry: derived states, draining, duplicate live names, migrations in step."""

from __future__ import annotations

from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from coordinator_app.models import Agent, Base, utcnow
from tests.coordinator.test_api_tasks import claim_next, create


def test_migrations_match_the_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_states_follow_heartbeats_tasks_and_draining(ccc, client, admin_headers, make_agent):
    agent = make_agent("be-1", max_tasks=1)

    def state() -> str:
        return client.get(f"/api/v1/agents/{agent.id}", headers=admin_headers).json["state"]

    assert state() == "offline"  # never heartbeated
    agent.heartbeat()
    assert state() == "idle"
    create(client, admin_headers)
    claim_next(ccc, client, agent)
    assert state() == "busy"
    agent.heartbeat(state="error")
    assert state() == "error"
    drain = client.patch(
        f"/api/v1/agents/{agent.id}", json={"draining": True}, headers=admin_headers
    )
    assert drain.json["state"] == "maintenance"
    assert agent.heartbeat()["drain"] is True
    with ccc.database.session() as session:
        session.get(Agent, agent.id).last_heartbeat_at = utcnow() - timedelta(hours=1)
    assert state() == "offline"


def test_draining_agent_cannot_claim(ccc, client, admin_headers, make_agent):
    agent = make_agent("be-1")
    client.patch(f"/api/v1/agents/{agent.id}", json={"draining": True}, headers=admin_headers)
    create(client, admin_headers)
    refused = claim_next(ccc, client, agent)
    assert refused.status_code == 403 and "draining" in refused.json["error"]["message"]


def test_a_second_live_process_with_the_same_name_is_refused(client, make_agent):
    agent = make_agent("be-1")
    body = {"state": "idle", "instance": "process-a"}
    url = f"/api/v1/agents/{agent.id}/heartbeat"
    assert client.post(url, json=body, headers=agent.headers).status_code == 200
    clash = client.post(url, json={**body, "instance": "process-b"}, headers=agent.headers)
    assert clash.status_code == 409 and "another process" in clash.json["error"]["message"]
    assert client.post(url, json=body, headers=agent.headers).status_code == 200


def test_restart_after_a_crash_is_allowed_once_the_old_process_is_silent(
    ccc, client, admin_headers, make_agent
):
    agent = make_agent("be-1")
    task = create(client, admin_headers)
    url = f"/api/v1/agents/{agent.id}/heartbeat"
    client.post(url, json={"state": "busy", "instance": "old"}, headers=agent.headers)
    assert claim_next(ccc, client, agent).status_code == 200
    with ccc.database.session() as session:
        session.get(Agent, agent.id).last_heartbeat_at = utcnow() - timedelta(minutes=5)
    answer = client.post(url, json={"state": "idle", "instance": "new"}, headers=agent.headers)
    assert answer.status_code == 200
    # What the old process held goes back to the queue at once, not after its lease.
    detail = client.get(f"/api/v1/tasks/{task['id']}", headers=admin_headers).json
    assert detail["state"] == "queued" and detail["agent"] is None
    assert "agent be-1 restarted" in detail["history"][-1]["reason"]


def test_deregistering_a_busy_agent_needs_handback(ccc, client, admin_headers, make_agent):
    agent = make_agent("be-1")
    task = create(client, admin_headers)
    claim_next(ccc, client, agent)
    refused = client.delete(f"/api/v1/agents/{agent.id}", headers=admin_headers)
    assert refused.status_code == 409
    gone = client.delete(f"/api/v1/agents/{agent.id}?handback=1", headers=admin_headers)
    assert gone.status_code == 204
    detail = client.get(f"/api/v1/tasks/{task['id']}", headers=admin_headers).json
    assert detail["state"] == "queued" and detail["agent"] is None


def test_registration_validates_input(client, admin_headers):
    for body, message in [
        ({"name": "x y", "specialties": ["backend"]}, "name must be"),
        ({"name": "ok", "specialties": ["astrology"]}, "body.specialties[0]: 'astrology' is not"),
        ({"name": "ok", "specialties": ["backend"], "max_tasks": 0}, "max_tasks"),
        ({"name": "ok", "specialties": "backend"}, "is not of type 'array'"),
    ]:
        answer = client.post("/api/v1/agents", json=body, headers=admin_headers)
        assert answer.status_code == 400 and message in answer.json["error"]["message"], body
    client.post(
        "/api/v1/agents", json={"name": "dup", "specialties": ["general"]}, headers=admin_headers
    )
    again = client.post(
        "/api/v1/agents", json={"name": "dup", "specialties": ["general"]}, headers=admin_headers
    )
    assert again.status_code == 409


def test_agent_ids_beyond_the_integer_column_are_400(client, admin_headers):
    # Found by fuzzing: PostgreSQL refused to compare them, a 500.
    for path in ("/api/v1/agents/2147483648", "/api/v1/agents/99999999999/tasks"):
        answer = client.get(path, headers=admin_headers)
        assert (
            answer.status_code == 400
            and "ids are 1 to 2147483647" in (answer.json["error"]["message"])
        )


def test_a_heartbeat_the_database_cannot_hold_is_400(client, make_agent):
    # Found by fuzzing: each was a 500 (a value too long for its column, a float overflow,
    # NUL in a string), or was stored cut.
    agent = make_agent("be-1")
    for fields, where in [
        ({"version": "v" * 41}, "body.version"),
        ({"load": 10**400}, "body.load"),
        ({"address": "a\x00b"}, "body.address"),
        ({"tasks": [{"id": 2**31, "attempt": "x"}]}, "body.tasks[0].id"),
        ({"tasks": [7]}, "body.tasks[0]"),
        ({"state": "sleepy"}, "body.state"),
    ]:
        answer = client.post(
            f"/api/v1/agents/{agent.id}/heartbeat",
            json={"state": "idle", **fields},
            headers=agent.headers,
        )
        assert answer.status_code == 400, (fields, answer.json)
        assert answer.json["error"]["message"].startswith(where), answer.json
    assert agent.heartbeat()["renewed"] == []  # and a good one still goes through
