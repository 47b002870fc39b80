"""Dispatch follows the agents that are live: offers move when specialists come and go, and
work no live agent may take is shown as such."""

from __future__ import annotations

from cluster_core.queues import queues_for, stream_key
from coordinator_app.models import Task
from tests.coordinator.test_admin_pages import admin_session
from tests.coordinator.test_api_tasks import create


def offered_on(ccc, task_id: int) -> str | None:
    with ccc.database.session() as session:
        return session.get(Task, task_id).offered_queue


def test_an_offer_made_to_general_moves_to_the_specialist_that_comes_up(
    ccc, client, admin_headers, make_agent, redis_client
):
    task = create(client, admin_headers)  # backend work
    generalist = make_agent("gen-1", ["general"])
    generalist.heartbeat()
    assert ccc.processor.offer_queued() == 1
    assert offered_on(ccc, task["id"]) == "general"
    detail = client.get(f"/api/v1/tasks/{task['id']}", headers=admin_headers).json
    assert "no live backend agent: offered to general" in detail["analysis"]["reasons"]

    make_agent("be-1", ["backend"]).heartbeat()
    assert ccc.processor.reroute_offers() == 1
    assert ccc.processor.offer_queued() == 1
    assert offered_on(ccc, task["id"]) == "backend"
    assert redis_client.xlen(stream_key("general")) == 0  # withdrawn, not left to a generalist
    offer = ccc.queues.claim("be-1", queues_for(["backend"], "standard"), block_ms=0)
    assert offer is not None and offer.task_id == task["id"] and offer.queue == "backend"
    # Nothing moves while the routing holds.
    assert ccc.processor.reroute_offers() == 0


def test_work_goes_back_to_general_when_its_last_specialist_drains(
    ccc, client, admin_headers, make_agent
):
    task = create(client, admin_headers)
    specialist = make_agent("be-1", ["backend"])
    make_agent("gen-1", ["general"]).heartbeat()
    specialist.heartbeat()
    ccc.processor.offer_queued()
    assert offered_on(ccc, task["id"]) == "backend"
    drained = client.patch(
        f"/api/v1/agents/{specialist.id}", json={"draining": True}, headers=admin_headers
    )
    assert drained.status_code == 200
    assert ccc.processor.reroute_offers() == 1 and ccc.processor.offer_queued() == 1
    assert offered_on(ccc, task["id"]) == "general"


def test_work_no_live_agent_may_take_waits_in_its_queue_and_says_why(
    ccc,
    client,
    admin_headers,
    make_agent,
    server,
):
    restricted = client.post(
        "/api/v1/tasks",
        json={"repository": "octo/app", "issue_number": 9, "title": "Rotate leaked token",
              "body": "secret exposed", "labels": ["security"]},
        headers=admin_headers,
    ).json  # fmt: skip
    backend = create(client, admin_headers, number=10)
    frontend_only = make_agent("fe-1", ["frontend"])
    frontend_only.heartbeat()
    ccc.processor.offer_queued()
    # A frontend specialist may not take backend work: it is not sent to general to bounce.
    assert offered_on(ccc, backend["id"]) == "backend"
    assert offered_on(ccc, restricted["id"]) == "security:restricted"

    queues = client.get("/api/v1/queues", headers=admin_headers).json
    reasons = {item["task_id"]: item["reason"] for item in queues["unclaimable"]}
    assert reasons == {
        restricted["id"]: "no live agent may take it (task needs clearance restricted, "
        "agent has standard)",
        backend["id"]: "no live agent may take it (agent lacks the backend specialty)",
    }
    assert "unclaimable" not in client.get("/api/v1/queues", headers=frontend_only.headers).json

    pages = admin_session(server.url)
    overview = pages.get(f"{server.url}/admin/", timeout=5).text
    assert "Waiting with no live agent to take them" in overview
    assert "task needs clearance restricted, agent has standard" in overview
    detail = pages.get(f"{server.url}/admin/tasks/{restricted['id']}", timeout=5).text
    assert 'id="unclaimable"' in detail and "clearance restricted" in detail

    # A cleared security agent comes up: the work has a taker and the warning goes.
    make_agent("sec-1", ["security"], clearance="restricted").heartbeat()
    queues = client.get("/api/v1/queues", headers=admin_headers).json
    assert [item["task_id"] for item in queues["unclaimable"]] == [backend["id"]]
    pages.close()
