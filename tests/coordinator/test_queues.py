"""Dispatch queues in Redis: preference order, at-least-once takeover, and loss of Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from cluster_core.queues import TaskQueues, queue_name, queues_for


@pytest.fixture
def queues(redis_client):
    q = TaskQueues(redis_client, claim_timeout_ms=200)
    q.ensure()
    return q


def test_claim_prefers_own_specialty_then_general(queues):
    queues.offer(1, "general")
    queues.offer(2, "backend")
    order = queues_for(["backend"], "standard")
    first = queues.claim("a1", order, block_ms=0)
    assert (first.task_id, first.queue) == (2, "backend")
    queues.ack(first)
    second = queues.claim("a1", order, block_ms=0)
    assert (second.task_id, second.queue) == (1, "general")
    queues.ack(second)
    assert queues.claim("a1", order, block_ms=0) is None


def test_other_specialists_do_not_see_the_work(queues):
    queues.offer(7, "frontend")
    assert queues.claim("a1", queues_for(["backend"], "standard"), block_ms=0) is None
    assert queues.claim("a2", queues_for(["frontend"], "standard"), block_ms=0).task_id == 7


def test_restricted_queues_only_for_cleared_agents():
    assert queues_for(["security"], "standard") == ["security", "general"]
    assert queues_for(["security"], "restricted") == [
        "security:restricted",
        "security",
        "general:restricted",
        "general",
    ]
    assert queue_name("security", "restricted") == "security:restricted"
    with pytest.raises(ValueError, match="unknown specialty"):
        queue_name("astrology")


def test_each_offer_goes_to_exactly_one_agent(queues):
    for task_id in range(1, 11):
        queues.offer(task_id, "backend")
    seen = []
    for consumer in ["a1", "a2", "a3"] * 4:
        offer = queues.claim(consumer, ["backend"], block_ms=0)
        if offer:
            seen.append(offer.task_id)
            queues.ack(offer)
    assert sorted(seen) == list(range(1, 11))


def test_unacknowledged_claim_is_taken_over_after_the_timeout(queues):
    queues.offer(5, "backend")
    dead = queues.claim("dead-agent", ["backend"], block_ms=0)
    assert dead.task_id == 5  # read, never acknowledged: the agent died before confirming
    assert queues.claim("a2", ["backend"], block_ms=0) is None  # not yet stale
    time.sleep(0.3)
    rescued = queues.claim("a2", ["backend"], block_ms=0)
    assert rescued.task_id == 5


def test_blocking_claim_wakes_on_offer(queues, redis_url):
    other = TaskQueues(redis.Redis.from_url(redis_url))
    timer = threading.Timer(0.2, lambda: other.offer(9, "backend"))
    timer.start()
    offer = queues.claim("a1", ["backend", "general"], block_ms=5000)
    timer.join()
    other.redis.close()
    assert offer is not None and offer.task_id == 9


def test_lost_redis_is_noticed_and_claims_do_not_crash(queues, redis_client):
    queues.offer(3, "backend")
    redis_client.flushall()
    assert not queues.intact()
    assert queues.claim("a1", ["backend"], block_ms=0) is None  # NOGROUP is not an error here
    queues.ensure()
    assert queues.intact()
    assert queues.depth()["backend"] == 0


def test_depth_counts_per_specialty(queues):
    queues.offer(1, "backend")
    queues.offer(2, "backend:restricted")
    queues.offer(3, "frontend")
    depth = queues.depth()
    assert depth["backend"] == 2 and depth["frontend"] == 1 and depth["general"] == 0
