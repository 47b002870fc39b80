"""The autoscaling decision: table-driven on the pure function, then GET /api/v1/scaling."""

from __future__ import annotations

from datetime import timedelta

import pytest

from coordinator_app.config import Scaling
from coordinator_app.models import Task, TaskTransition, utcnow
from coordinator_app.scaling import AgentLoad, QueueStats, decide


def agent(name, specialties=("backend",), max_tasks=2, running=0, state="idle"):
    return AgentLoad(name, tuple(specialties), max_tasks, running, state)


@pytest.mark.parametrize(
    ("queues", "agents", "policy", "desired"),
    [
        # Nothing queued, nothing running, no floor: nobody needed.
        ({}, [], Scaling(), {"backend": 0, "general": 0}),
        # Queued work with no agent at all: at least one, never zero.
        ({"backend": QueueStats(1)}, [], Scaling(), {"backend": 1}),
        # 2 agents x 2 slots: ceil((2 / 0.7 + 1) / 2) = 2, a free slot takes the queued task.
        (
            {"backend": QueueStats(1)},
            [agent("a", running=1), agent("b", running=1)],
            Scaling(),
            {"backend": 2},
        ),
        # Both full and one queued: ceil((4 / 0.7 + 1) / 2) = 4.
        (
            {"backend": QueueStats(1)},
            [agent("a", running=2), agent("b", running=2)],
            Scaling(),
            {"backend": 4},
        ),
        # 2 busy slots over 2 agents x 2 at 0.7: ceil(2 / 0.7 / 2) = 2, keep both.
        ({}, [agent("a", running=1), agent("b", running=1)], Scaling(), {"backend": 2}),
        # (1 / 0.5) / 2 is exactly one agent (no float rounding up).
        ({}, [agent("a", running=1), agent("b")], Scaling(target_load=0.5), {"backend": 1}),
        # Idle agents: scale down to the floor.
        ({}, [agent("a"), agent("b"), agent("c")], Scaling(floors={"backend": 1}), {"backend": 1}),
        # Floors from the environment arrive as strings.
        ({}, [], Scaling(floors={"testing": "2"}), {"testing": 2, "backend": 0}),
        # A long wait asks for one more than there are, even under the target load.
        (
            {"backend": QueueStats(1, oldest_wait_seconds=900)},
            [agent("a", max_tasks=4), agent("b", max_tasks=4)],
            Scaling(),
            {"backend": 3},
        ),
        # A short wait does not.
        (
            {"backend": QueueStats(1, oldest_wait_seconds=30)},
            [agent("a", max_tasks=4), agent("b", max_tasks=4)],
            Scaling(),
            {"backend": 1},
        ),
        # Offline and draining agents give no capacity: the queued task needs a live one.
        (
            {"frontend": QueueStats(2)},
            [
                agent("a", ["frontend"], state="offline"),
                agent("b", ["frontend"], state="maintenance"),
            ],
            Scaling(),
            {"frontend": 2},
        ),
        # Multi-specialty agents count for each; their running work is load for each.
        (
            {"testing": QueueStats(1)},
            [agent("a", ["backend", "testing"], running=2)],
            Scaling(),
            {"testing": 2, "backend": 2},
        ),
        # A specialty nobody serves uses the cluster's average slots per agent (4 here).
        ({"security": QueueStats(5)}, [agent("a", max_tasks=4)], Scaling(), {"security": 2}),
    ],
)
def test_decide(queues, agents, policy, desired):
    decisions = decide(queues, agents, policy)
    assert {name: decisions[name].desired for name in desired} == desired
    for decision in decisions.values():
        assert decision.delta == decision.desired - decision.agents
        if decision.queued:
            assert decision.desired >= 1


def test_decision_json_explains_itself():
    decision = decide({"backend": QueueStats(3, 700.0)}, [], Scaling())["backend"]
    data = decision.as_json()
    assert data["load"] is None  # queued work, no slots
    assert data["delta"] == data["desired"] == 3
    assert data["reasons"][0] == (
        "0 running at target load 0.7 + 3 queued over 1 slots per agent: 3"
    )


# --- GET /api/v1/scaling --------------------------------------------------------------------


def _queued_task(session, number, specialty, waited_seconds):
    now = utcnow()
    task = Task(
        repository="acme/api",
        issue_number=number,
        title=f"issue {number}",
        requested_by="alice",
        state="queued",
        specialty=specialty,
    )
    session.add(task)
    session.flush()
    entered = now - timedelta(seconds=waited_seconds)
    session.add(
        TaskTransition(
            task_id=task.id, from_state="analyzing", to_state="queued", actor="system", at=entered
        )
    )


def test_scaling_endpoint(client, ccc, admin_headers, make_agent):
    backend = make_agent("a1", ["backend", "general"], max_tasks=2)
    backend.heartbeat()
    make_agent("a2", ["frontend"])  # never heartbeats: offline, no capacity
    with ccc.database.session() as session:
        _queued_task(session, 1, "backend", 30)
        _queued_task(session, 2, "backend", 900)
        _queued_task(session, 3, "frontend", 10)

    answer = client.get("/api/v1/scaling", headers=admin_headers)
    assert answer.status_code == 200, answer.json
    data = answer.json
    assert data["target_load"] == 0.7
    backend_decision = data["specialties"]["backend"]
    assert backend_decision["queued"] == 2
    assert backend_decision["oldest_wait_seconds"] >= 899
    assert backend_decision["agents"] == 1 and backend_decision["agent_names"] == ["a1"]
    # ceil(2 / (2 x 0.7)) = 2 agents, and the 900 s wait asks for more than the one there is.
    assert backend_decision["desired"] == 2 and backend_decision["delta"] == 1
    frontend = data["specialties"]["frontend"]
    assert (frontend["agents"], frontend["desired"]) == (0, 1)
    assert data["specialties"]["documentation"]["desired"] == 0
    states = {a["name"]: a["state"] for a in data["agents"]}
    assert states == {"a1": "idle", "a2": "offline"}


def test_scaling_endpoint_is_for_admins(client, make_agent):
    assert client.get("/api/v1/scaling").status_code == 401
    agent = make_agent("a1")
    assert client.get("/api/v1/scaling", headers=agent.headers).status_code == 403
