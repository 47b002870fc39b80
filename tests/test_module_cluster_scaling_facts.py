"""cluster_scaling_facts: the host plan (table-driven) and the module against a fake API."""

from __future__ import annotations

import pytest

from ansible_collections.claude_code_cluster.cluster.plugins.module_utils import cluster_scaling
from ansible_collections.claude_code_cluster.cluster.plugins.modules import cluster_scaling_facts
from tests.ansible_modules import run_module
from tests.test_module_cluster_agent import PASSWORD, URL, FakeCoordinator, cluster_api


def decision(deltas: dict[str, int], agents=(), queued=()) -> dict:
    return {
        "specialties": {
            s: {"delta": deltas.get(s, 0), "queued": 1 if s in queued else 0}
            for s in ("backend", "frontend", "general")
        },
        "agents": [
            {
                "name": name,
                "specialties": list(specs),
                "running_tasks": running,
                "state": state,
                "draining": False,
            }
            for name, specs, running, state in agents
        ],
    }


@pytest.mark.parametrize(
    ("deltas", "agents", "spare", "up", "down"),
    [
        # Nothing to do.
        ({}, [("a1", ["backend"], 0, "idle")], {"s1": ["backend"]}, [], []),
        # Backend wants one more: the spare host serving backend is added, not the other one.
        ({"backend": 1}, [], {"s1": ["frontend"], "s2": ["backend"]}, ["s2"], []),
        # Wants three, max_step is 2.
        (
            {"backend": 3},
            [],
            {"s1": ["backend"], "s2": ["backend"], "s3": ["backend"]},
            ["s1", "s2"],
            [],
        ),
        # One surplus backend agent: the least busy goes.
        (
            {"backend": -1},
            [("a1", ["backend"], 1, "busy"), ("a2", ["backend"], 0, "idle")],
            {},
            [],
            ["a2"],
        ),
        # Equally idle: the last by name (the newest host, usually) goes.
        (
            {"backend": -1},
            [("a1", ["backend"], 0, "idle"), ("a2", ["backend"], 0, "idle")],
            {},
            [],
            ["a2"],
        ),
        # Backend has a surplus but general does not: a [backend, general] host stays.
        ({"backend": -1}, [("a1", ["backend", "general"], 0, "idle")], {}, [], []),
        # The last agent of a specialty with queued work: its delta is >= 0, it stays.
        ({"frontend": 0}, [("a1", ["frontend"], 0, "idle")], {}, [], []),
        # Offline and draining agents are not candidates (they are not counted either).
        ({"backend": -1}, [("a1", ["backend"], 0, "offline")], {}, [], []),
    ],
)
def test_plan(deltas, agents, spare, up, down):
    hosts = {name: name for name, *_ in agents}
    moves = cluster_scaling.plan(decision(deltas, agents), spare, hosts, max_step=2)
    assert (moves["scale_up"], moves["scale_down"]) == (up, down)


def test_module_reads_the_decision_and_changes_nothing(monkeypatch):
    fake = FakeCoordinator()
    answer = decision({"backend": 1})

    def send(method, url, **kwargs):
        if url.endswith("/scaling"):
            fake.calls.append((method, url))
            return cluster_api.Response(200, answer)
        return fake.send(method, url, **kwargs)

    monkeypatch.setattr(cluster_api, "send", send)
    result = run_module(
        cluster_scaling_facts,
        {
            "coordinator_url": URL,
            "admin_password": PASSWORD,
            "spare_hosts": {"s1": ["backend", "general"]},
        },
    )
    assert not result["changed"]
    assert result["scale_up"] == ["s1"] and result["scale_down"] == []
    assert result["scaling"] == answer
    assert fake.changes == []


def test_module_failure_has_context(monkeypatch):
    fake = FakeCoordinator()
    fake.unreachable = True
    monkeypatch.setattr(cluster_api, "send", fake.send)
    result = run_module(cluster_scaling_facts, {"coordinator_url": URL, "admin_password": "x"})
    assert result["failed"] and "cannot reach the coordinator" in result["msg"]
