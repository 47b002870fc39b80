"""The task API as agents and admins use it: create, claim, report, finish, lease, pagination."""

from __future__ import annotations

import functools
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from cluster_core.queues import queues_for
from coordinator_app.app import create_app
from coordinator_app.github_gateway import web_url
from coordinator_app.models import OutboxMessage, Task, utcnow
from coordinator_app.processor import Processor
from tests.coordinator.conftest import make_config


def create(client, admin_headers, number=1, title="Add /health endpoint", body="api server"):
    answer = client.post(
        "/api/v1/tasks",
        json={"repository": "octo/app", "issue_number": number, "title": title, "body": body},
        headers=admin_headers,
    )
    assert answer.status_code == 201, answer.json
    assert answer.headers["Location"].endswith(f"/api/v1/tasks/{answer.json['id']}")
    return answer.json


def claim_next(ccc, client, agent, specialties=("backend",)):
    """What the agent daemon does: read an offer from Redis, confirm it, acknowledge it."""
    ccc.processor.offer_queued()
    offer = ccc.queues.claim(agent.name, queues_for(list(specialties), "standard"), block_ms=0)
    assert offer is not None, "nothing offered"
    answer = agent.claim(offer.task_id)
    ccc.queues.ack(offer)
    return answer


def test_task_from_creation_to_completion(ccc, client, admin_headers, make_agent):
    task = create(client, admin_headers)
    assert task["state"] == "queued" and task["specialty"] == "backend"
    assert [h["to"] for h in task["history"]] == ["pending", "analyzing", "queued"]

    agent = make_agent("be-1", ["backend"])
    agent.heartbeat()
    claimed = claim_next(ccc, client, agent)
    assert claimed.status_code == 200, claimed.json
    assert claimed.json["state"] == "assigned" and claimed.json["agent"] == "be-1"
    assert claimed.json["budget"]["max_turns"] > 0
    # The coordinator names the branch, and hands over the GitHub grant for it (token mode:
    # the one token) with the identity its commits carry.
    assert claimed.json["branch"] == "claude/issue-1-add-health-endpoint"
    grant = claimed.json["github"]
    assert grant["token"] == ccc.config.github_token and grant["expires_at"] is None
    assert grant["branch"] == claimed.json["branch"] and grant["repository"] == "octo/app"
    assert grant["author"]["name"] == "cluster-bot"
    assert grant["author"]["email"].endswith("+cluster-bot@users.noreply.127.0.0.1")
    web = web_url(ccc.config.github_api_url)

    tid = task["id"]
    for state in ("in_progress", "testing"):
        answer = client.patch(
            f"/api/v1/tasks/{tid}", json={"state": state}, headers=agent.reporting(tid)
        )
        assert answer.status_code == 200, answer.json
    # Review begins with the result: the run is over and GitHub decides.
    early = client.patch(
        f"/api/v1/tasks/{tid}", json={"state": "review"}, headers=agent.reporting(tid)
    )
    assert early.status_code == 400 and "/result" in early.json["error"]["message"]
    events = client.post(
        f"/api/v1/tasks/{tid}/events",
        json={
            "events": [
                {
                    "kind": "turn",
                    "data": {"input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.006},
                },
                {
                    "kind": "turn",
                    "data": {"input_tokens": 500, "output_tokens": 100, "cost_usd": 0.003},
                },
            ]
        },
        headers=agent.reporting(tid),
    )
    assert events.json["input_tokens"] == 1500 and events.json["output_tokens"] == 300
    done = client.post(
        f"/api/v1/tasks/{tid}/result",
        json={
            "outcome": "completed",
            "branch": "claude/issue-1-add-health-endpoint",
            "pr_number": 4,
            "pr_url": f"{web}/octo/app/pull/4",
            "tests": {"command": "pytest", "passed": 3, "failed": 0, "exit_code": 0},
        },
        headers=agent.reporting(tid),
    )
    assert done.status_code == 200, done.json
    detail = client.get(f"/api/v1/tasks/{tid}", headers=admin_headers).json
    assert [h["to"] for h in detail["history"]] == [
        "pending",
        "analyzing",
        "queued",
        "assigned",
        "in_progress",
        "testing",
        "review",
    ]
    assert detail["agent"] == agent.name and detail["pull_request"]["state"] == "open"
    stamps = [h["at"] for h in detail["history"]]
    assert stamps == sorted(stamps)  # the history reads in commit order, times too
    assert abs(detail["cost_usd"] - 0.009) < 1e-9
    with ccc.database.session() as session:
        comments = [m.payload["body"] for m in session.query(OutboxMessage) if m.kind == "comment"]
        labels = [
            m.payload["label"] for m in session.query(OutboxMessage) if m.kind == "state_label"
        ]
    assert any("picked this up" in c for c in comments)
    assert any(f"{web}/octo/app/pull/4" in c and "passed" in c for c in comments)
    assert labels == ["claude:queued", "claude:in-progress", "claude:review"]
    # The agent is free for other work while the pull request waits (it runs one at a time).
    create(client, admin_headers, number=2)
    assert claim_next(ccc, client, agent).status_code == 200


def test_one_task_never_runs_on_two_agents(ccc, client, admin_headers, make_agent):
    task = create(client, admin_headers)
    first, second = make_agent("be-1"), make_agent("be-2")
    assert claim_next(ccc, client, first).status_code == 200
    # A duplicate offer (say, after a Redis rebuild) is refused by PostgreSQL.
    again = second.claim(task["id"])
    assert again.status_code == 409
    assert "assigned, not queued" in again.json["error"]["message"]


def test_expired_lease_hands_the_task_to_another_agent(ccc, client, admin_headers, make_agent):
    task = create(client, admin_headers)
    dead, alive = make_agent("be-1"), make_agent("be-2")
    assert claim_next(ccc, client, dead).status_code == 200
    times = [utcnow()]  # the reaper's clock, from the moment it starts
    reaper = Processor(ccc.database, ccc.config, ccc.queues, ccc.gateway, clock=lambda: times[-1])
    times.append(times[0] + timedelta(seconds=ccc.config.lease_seconds - 1))
    # Within a lease of its start a coordinator reaps nothing: the agents that kept working
    # while it was down renew first.
    assert reaper.reap_leases() == 0
    times.append(times[0] + timedelta(seconds=ccc.config.lease_seconds + 1))
    assert reaper.reap_leases() == 1
    alive.heartbeat()
    claimed = claim_next(ccc, client, alive)
    assert claimed.status_code == 200 and claimed.json["agent"] == "be-2"
    history = client.get(f"/api/v1/tasks/{task['id']}", headers=admin_headers).json["history"]
    assert "lease expired (held by be-1)" in [h["reason"] for h in history]
    # The dead agent comes back: its heartbeat tells it to stop the task it no longer holds.
    assert dead.heartbeat(tasks=[task["id"]])["stop"] == [task["id"]]


def test_only_the_current_attempt_may_report_renew_or_push(ccc, client, admin_headers, make_agent):
    """The defect of two runs at once: the lease of a run is reaped, the same agent claims the
    task again; the first run's reports, heartbeat and token request are all refused."""
    task = create(client, admin_headers)
    agent = make_agent("be-1")
    tid = task["id"]
    first = claim_next(ccc, client, agent).json
    stale = {**agent.headers, "X-Task-Attempt": first["attempt"]}
    with ccc.database.session() as session:
        session.get(Task, tid).lease_expires_at = utcnow() - timedelta(seconds=1)
    times = [utcnow()]
    reaper = Processor(ccc.database, ccc.config, ccc.queues, ccc.gateway, clock=lambda: times[-1])
    times.append(times[0] + timedelta(seconds=ccc.config.lease_seconds + 1))
    assert reaper.reap_leases() == 1
    second = claim_next(ccc, client, agent).json
    assert second["attempt"] != first["attempt"] and second["attempts"] == 2
    assert f"(attempt {second['attempt'][:8]})" in second["history"][-1]["reason"]

    web = web_url(ccc.config.github_api_url)
    for method, path, body in [
        ("PATCH", f"/api/v1/tasks/{tid}", {"state": "in_progress"}),
        ("POST", f"/api/v1/tasks/{tid}/events", {"events": [{"kind": "turn"}]}),
        ("POST", f"/api/v1/tasks/{tid}/github-token", {"ref": f"refs/heads/{first['branch']}"}),
        ("POST", f"/api/v1/tasks/{tid}/release", {}),
        ("POST", f"/api/v1/tasks/{tid}/result",
         {"outcome": "completed", "pr_number": 1, "pr_url": f"{web}/octo/app/pull/1"}),
    ]:  # fmt: skip
        refused = client.open(path, method=method, json=body, headers=stale)
        assert refused.status_code == 409, (method, path, refused.json)
        assert "stop without pushing" in refused.json["error"]["message"]
        unnamed = client.open(path, method=method, json=body, headers=agent.headers)
        assert unnamed.status_code == 400, (method, path, unnamed.json)
    # A heartbeat naming the first attempt renews nothing and is told to stop it.
    beat = client.post(
        f"/api/v1/agents/{agent.id}/heartbeat",
        json={"state": "busy", "tasks": [{"id": tid, "attempt": first["attempt"]}]},
        headers=agent.headers,
    ).json
    assert beat["renewed"] == [] and beat["stop"] == [tid] and beat["cancelled"] == []
    # The current attempt carries on, and its completion is the one that counts.
    assert agent.heartbeat(tasks=[tid])["renewed"] == [tid]
    working = client.patch(f"/api/v1/tasks/{tid}", json={"state": "in_progress"},
                           headers=agent.reporting(tid))  # fmt: skip
    assert working.status_code == 200, working.json
    done = client.post(
        f"/api/v1/tasks/{tid}/result",
        json={"outcome": "completed", "pr_number": 2, "pr_url": f"{web}/octo/app/pull/2"},
        headers=agent.reporting(tid),
    )
    assert done.status_code == 200 and done.json["pr_number"] == 2
    # Once the task is done, no attempt may report on it any more.
    late = client.patch(f"/api/v1/tasks/{tid}", json={"state": "testing"},
                        headers=agent.reporting(tid))  # fmt: skip
    assert late.status_code == 403


def test_heartbeat_renews_the_lease(ccc, client, admin_headers, make_agent):
    task = create(client, admin_headers)
    agent = make_agent("be-1")
    claim_next(ccc, client, agent)
    with ccc.database.session() as session:
        session.get(Task, task["id"]).lease_expires_at = utcnow() + timedelta(seconds=1)
    answer = agent.heartbeat(tasks=[task["id"]], state="busy", load=1.0)
    assert answer["renewed"] == [task["id"]] and answer["stop"] == []
    with ccc.database.session() as session:
        lease = session.get(Task, task["id"]).lease_expires_at
    assert lease > utcnow() + timedelta(seconds=ccc.config.lease_seconds - 5)


def test_cancelled_task_is_reported_to_its_agent(ccc, client, admin_headers, make_agent):
    task = create(client, admin_headers)
    agent = make_agent("be-1")
    claim_next(ccc, client, agent)
    cancel = client.post(f"/api/v1/tasks/{task['id']}/cancel", headers=admin_headers)
    assert cancel.status_code == 200 and cancel.json["state"] == "cancelled"
    answer = agent.heartbeat(tasks=[task["id"]], state="busy")
    assert answer["cancelled"] == [task["id"]]


def test_release_requeues_and_failure_schedules_a_retry(ccc, client, admin_headers, make_agent):
    task = create(client, admin_headers)
    agent = make_agent("be-1")
    claim_next(ccc, client, agent)
    released = client.post(
        f"/api/v1/tasks/{task['id']}/release",
        json={"reason": "warm stop"},
        headers=agent.reporting(task["id"]),
    )
    assert released.json["state"] == "queued"
    claim_next(ccc, client, agent)
    failed = client.post(
        f"/api/v1/tasks/{task['id']}/result",
        json={"outcome": "failed", "error": "tests never passed"},
        headers=agent.reporting(task["id"]),
    )
    assert failed.json["state"] == "failed" and failed.json["retry_at"] is not None
    later = utcnow() + timedelta(hours=1)
    retrier = Processor(ccc.database, ccc.config, ccc.queues, ccc.gateway, clock=lambda: later)
    assert retrier.retry_failed() == 1
    assert (
        client.get(f"/api/v1/tasks/{task['id']}", headers=admin_headers).json["state"] == "queued"
    )


def test_retries_are_bounded(ccc, client, admin_headers, make_agent):
    task = create(client, admin_headers)
    agent = make_agent("be-1")
    for _ in range(ccc.config.max_attempts):
        client.post(f"/api/v1/tasks/{task['id']}/retry", headers=admin_headers)
        assert claim_next(ccc, client, agent).status_code == 200
        client.post(
            f"/api/v1/tasks/{task['id']}/result",
            json={"outcome": "failed", "error": "x"},
            headers=agent.reporting(task["id"]),
        )
    detail = client.get(f"/api/v1/tasks/{task['id']}", headers=admin_headers).json
    assert detail["attempts"] == ccc.config.max_attempts and detail["retry_at"] is None


def test_concurrency_cap_holds_tasks_back(ccc, client, admin_headers, make_agent):
    ccc.config.max_concurrent_per_repo = 1
    create(client, admin_headers, number=1)
    create(client, admin_headers, number=2)
    agent = make_agent("be-1", max_tasks=4)
    assert claim_next(ccc, client, agent).status_code == 200
    refused = claim_next(ccc, client, agent)  # both were offered before the first ran
    assert refused.status_code == 409
    assert "concurrency cap" in refused.json["error"]["message"]
    assert ccc.processor.offer_queued() == 0  # not offered again while the cap holds
    assert ccc.queues.depth()["backend"] == 0
    ccc.config.max_concurrent_per_repo = 2
    assert ccc.processor.offer_queued() == 1


def test_pagination(client, admin_headers):
    for number in range(1, 8):
        create(client, admin_headers, number=number)
    page = client.get("/api/v1/tasks?per_page=3&page=2", headers=admin_headers).json
    assert page["_meta"] == {"page": 2, "per_page": 3, "total_items": 7, "total_pages": 3}
    assert [t["issue_number"] for t in page["items"]] == [4, 3, 2]
    assert "page=3" in page["_links"]["next"] and "page=1" in page["_links"]["prev"]
    last = client.get(page["_links"]["next"], headers=admin_headers).json
    assert [t["issue_number"] for t in last["items"]] == [1] and last["_links"]["next"] is None


def test_one_error_format(client, admin_headers):
    answer = client.get("/api/v1/tasks/999", headers=admin_headers)
    assert answer.status_code == 404
    assert answer.json == {
        "error": {"status": 404, "code": "not_found", "message": "task 999 not found"}
    }
    bad = client.post(
        "/api/v1/tasks", data="nope", content_type="application/json", headers=admin_headers
    )
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_request"
    untyped = client.post("/api/v1/tasks", data="nope", headers=admin_headers)
    assert untyped.status_code == 415
    assert untyped.json["error"]["code"] == "unsupported_media_type"


def test_restricted_work_reaches_only_cleared_agents(ccc, client, admin_headers, make_agent):
    answer = client.post(
        "/api/v1/tasks",
        json={
            "repository": "octo/app",
            "issue_number": 9,
            "title": "Rotate leaked token",
            "body": "secret exposed",
            "labels": ["security"],
        },
        headers=admin_headers,
    )
    task = answer.json
    assert task["security_level"] == "restricted" and task["specialty"] == "security"
    uncleared = make_agent("sec-1", ["security", "general"])
    cleared = make_agent("sec-2", ["security"], clearance="restricted")
    uncleared.heartbeat()
    cleared.heartbeat()
    ccc.processor.offer_queued()
    assert ccc.queues.claim("sec-1", queues_for(["security", "general"], "standard"), 0) is None
    refused = uncleared.claim(task["id"])
    assert refused.status_code == 403 and "clearance restricted" in refused.json["error"]["message"]
    offer = ccc.queues.claim("sec-2", queues_for(["security"], "restricted"), 0)
    assert offer.task_id == task["id"] and offer.queue == "security:restricted"
    ok = cleared.claim(task["id"])
    assert ok.status_code == 200 and ok.json["agent"] == "sec-2"


# Input the fuzzers (tests/coordinator/test_fuzzing.py) found answered with a 500.


def test_ids_and_query_values_beyond_what_the_database_compares_are_400(client, admin_headers):
    for path in [
        "/api/v1/tasks/2147483648",
        "/api/v1/tasks/0",
        "/api/v1/tasks/" + "9" * 5000 + "/events",
        "/api/v1/tasks?agent_id=abc",
        "/api/v1/tasks?agent_id=2147483648",
        "/api/v1/tasks?page=99999999999999999999",
        "/api/v1/tasks?state=%00",
        "/api/v1/tasks?per_page=0",
    ]:
        answer = client.get(path, headers=admin_headers)
        assert answer.status_code == 400, (path, answer.json)
        assert answer.json["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"issue_number": 2**31}, "body.issue_number"),
        ({"issue_number": "7"}, "body.issue_number"),
        ({"title": "a\x00b"}, "body.title: NUL characters"),
        ({"body": "\ud800"}, "body.body: NUL characters and unpaired surrogates"),
        ({"labels": [{"name": "bug"}]}, "body.labels[0]"),
        ({"repository": "octo/" + "x" * 300}, "body.repository"),
    ],
)
def test_bodies_the_database_cannot_hold_are_400_naming_the_field(
    client, admin_headers, fields, where
):
    body = {"repository": "octo/app", "issue_number": 1, "title": "t", **fields}
    answer = client.post("/api/v1/tasks", json=body, headers=admin_headers)
    assert answer.status_code == 400 and answer.json["error"]["message"].startswith(where)
    assert client.get("/api/v1/tasks", headers=admin_headers).json["items"] == []


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,  # past the parser's recursion limit
        json.dumps(functools.reduce(lambda inner, _: {"a": inner}, range(40), {})),
        '{"repository": "octo/app", "issue_number": 1, "title": "t", "body": NaN}',
        b'{"title": "\xff"}',
    ],
    ids=["deeper than the parser goes", "deeper than 32", "NaN", "not UTF-8"],
)
def test_json_nested_too_deep_or_not_json_at_all_is_400(client, admin_headers, raw):
    answer = client.post(
        "/api/v1/tasks", data=raw, content_type="application/json", headers=admin_headers
    )
    assert answer.status_code == 400, answer.json


def test_a_dependency_github_does_not_know_is_not_awaited(client, admin_headers):
    # The GitHub simulator has no issue #7 in acme/widgets: it answers 404 (was: a 500).
    answer = client.post(
        "/api/v1/tasks",
        json={
            "repository": "acme/widgets",
            "issue_number": 8,
            "title": "t",
            "body": "Depends on #7",
        },
        headers=admin_headers,
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["depends_on"] == [7] and answer.json["state"] == "queued"


def test_a_task_whose_dependencies_github_cannot_answer_for_is_503(
    database_url, redis_url, admin_headers_for
):
    app = create_app(make_config(database_url, redis_url))  # GitHub unreachable
    ccc = app.extensions["ccc"]
    client = app.test_client()
    answer = client.post(
        "/api/v1/tasks",
        json={"repository": "octo/app", "issue_number": 8, "title": "t", "body": "Depends on #7"},
        headers=admin_headers_for(ccc, client),
    )
    assert answer.status_code == 503 and "GitHub unreachable" in answer.json["error"]["message"]
    with ccc.database.session() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 0  # rolled back
    ccc.database.dispose()
    ccc.redis.close()


def test_agent_reports_the_database_cannot_hold_are_400(ccc, client, admin_headers, make_agent):
    agent = make_agent("be-1")
    agent.heartbeat()
    tid = create(client, admin_headers)["id"]
    claim_next(ccc, client, agent)
    headers = agent.reporting(tid)
    for path, body in [
        ("", {"pr_number": 2**40}),
        ("", {"state": "in_progress", "reason": "\x00"}),
        ("/events", {"events": [{"kind": "turn", "data": {"output": "a\x00b"}}]}),
        ("/events", {"events": [{"kind": "turn", "data": {"input_tokens": 2**70}}]}),
        ("/events", {"events": [{"kind": "turn", "data": {"cost_usd": 1e300}}]}),
        ("/release", {"reason": {"why": "a dict"}}),
        ("/result", {"outcome": "failed", "error": "\ud800"}),
    ]:
        method = "PATCH" if not path else "POST"
        answer = client.open(
            f"/api/v1/tasks/{tid}{path}", method=method, json=body, headers=headers
        )
        assert answer.status_code == 400, (path, body, answer.json)
    # A task's cost adds up within what its column holds.
    big = {"kind": "turn", "data": {"cost_usd": 999_999}}
    spent = client.post(f"/api/v1/tasks/{tid}/events", json={"events": [big]}, headers=headers)
    assert spent.status_code == 200
    over = client.post(f"/api/v1/tasks/{tid}/events", json={"events": [big]}, headers=headers)
    assert over.status_code == 400 and "cost" in over.json["error"]["message"]
    task = client.get(f"/api/v1/tasks/{tid}", headers=admin_headers).json
    assert task["state"] == "assigned" and task["cost_usd"] == 999_999


def test_a_database_outage_is_a_503_to_try_again(redis_url, caplog):
    """PostgreSQL restarting: callers get 503 with Retry-After (agents retry), not a 500 with
    a traceback in the log."""
    from coordinator_app import migrate
    from coordinator_app.app import create_app
    from lab.services import PostgresServer
    from tests.coordinator.conftest import make_config

    with PostgresServer() as server:
        url = server.create_database("outage")
        migrate.upgrade(url)
        app = create_app(make_config(url, redis_url))
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        server.stop()
        answer = client.post("/api/v1/agents/token", json={"name": "be-1", "key": "k"})
        app.extensions["ccc"].database.dispose()
        app.extensions["ccc"].redis.close()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json["error"]["code"] == "unavailable"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_queue_depths_answer_while_redis_is_down(database_url, admin_headers_for):
    from coordinator_app.app import create_app
    from tests.coordinator.conftest import make_config

    app = create_app(make_config(database_url, "redis://127.0.0.1:9/0"))
    client = app.test_client()
    headers = admin_headers_for(app.extensions["ccc"], client)
    answer = client.get("/api/v1/queues", headers=headers)
    app.extensions["ccc"].database.dispose()
    assert answer.status_code == 200, answer.json
    assert answer.json["offered"] is None and answer.json["unclaimable"] == []
