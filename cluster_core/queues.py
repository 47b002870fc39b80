"""Dispatch queues in Redis: one stream per specialty, claimed through a consumer group.

The protocol, shared by the coordinator (which offers tasks) and agents (which claim them):
- ``offer`` adds an entry ``{task_id}`` to the stream of the task's queue.
- An agent ``claim``s with XREADGROUP across its queues (its specialties first, ``general``
  last) and then confirms the claim with the coordinator, which checks PostgreSQL: one task
  never runs on two agents, whatever Redis says. The entry is acknowledged after the answer.
- An entry read by an agent that died before confirming stays pending in the group and is
  taken over by the next claimer after ``claim_timeout`` (XAUTOCLAIM): delivery is at least once.
- Everything here may be lost (a Redis restart without persistence): ``intact()`` notices and
  the coordinator offers every queued task again from PostgreSQL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from cluster_core.specialties import SECURITY_LEVELS, SPECIALTIES

logger = logging.getLogger(__name__)

GROUP = "agents"
MARKER = "ccc:queues:ready"


def queue_name(specialty: str, security_level: str = "standard") -> str:
    """The queue a task waits in: restricted work has queues only cleared agents read."""
    if specialty not in SPECIALTIES:
        raise ValueError(f"unknown specialty {specialty!r}")
    if security_level not in SECURITY_LEVELS:
        raise ValueError(f"unknown security level {security_level!r}")
    return specialty if security_level == "standard" else f"{specialty}:{security_level}"


def queues_for(specialties: list[str], clearance: str) -> list[str]:
    """The queues an agent reads, in preference order: its specialties, then general work."""
    levels = SECURITY_LEVELS[: SECURITY_LEVELS.index(clearance) + 1]
    ordered = [s for s in specialties if s != "general"] + ["general"]
    # Restricted work first: it can only go to cleared agents, standard work to anyone.
    return [queue_name(s, level) for s in ordered for level in reversed(levels)]


ALL_QUEUES = tuple(queue_name(s, level) for s in SPECIALTIES for level in SECURITY_LEVELS)


def stream_key(queue: str) -> str:
    """The Redis key of one queue's stream."""
    return f"ccc:queue:{queue}"


@dataclass(frozen=True)
class Offer:
    """A task an agent has read from a queue but not yet confirmed."""

    task_id: int
    queue: str
    entry_id: str


class TaskQueues:
    """Offer, claim and acknowledge tasks in the per-specialty streams."""

    def __init__(self, client: redis.Redis, claim_timeout_ms: int = 30_000) -> None:
        self.redis = client
        self.claim_timeout_ms = claim_timeout_ms

    def ensure(self) -> None:
        """Create every stream and its consumer group (idempotent), then mark Redis as set up."""
        for queue in ALL_QUEUES:
            try:
                self.redis.xgroup_create(stream_key(queue), GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self.redis.set(MARKER, "1")

    def intact(self) -> bool:
        """False when Redis has lost the queues (restart without persistence, flush)."""
        return bool(self.redis.exists(MARKER))

    def offer(self, task_id: int, queue: str) -> str:
        """Put a task on a queue; returns the stream entry id."""
        if queue not in ALL_QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        entry = self.redis.xadd(stream_key(queue), {"task_id": str(task_id)})
        return entry.decode() if isinstance(entry, bytes) else entry

    def claim(self, consumer: str, queues: list[str], block_ms: int = 5000) -> Offer | None:
        """Read one task for ``consumer`` from ``queues`` in order of preference, or None.

        Stale entries (read by a consumer that never acknowledged) are taken over first, so a
        dead agent's unconfirmed claims are not stranded.
        """
        for queue in queues:
            # Our own unconfirmed entries first: a blocking read over several streams may have
            # handed us more than one, and a restarted agent keeps its consumer name.
            offer = self._read(consumer, {stream_key(queue): "0"}, block_ms=None)
            offer = offer or self._take_over_stale(consumer, queue)
            if offer:
                return offer
        # Preference order matters: XREADGROUP over several streams returns from each, so ask
        # one at a time without blocking, then block on all of them together.
        for queue in queues:
            offer = self._read(consumer, {stream_key(queue): ">"}, block_ms=None)
            if offer:
                return offer
        if block_ms <= 0:
            return None
        return self._read(consumer, {stream_key(q): ">" for q in queues}, block_ms=block_ms)

    def ack(self, offer: Offer) -> None:
        """Remove an entry for good: its claim was confirmed or refused by the coordinator."""
        self.withdraw(offer.queue, offer.entry_id)

    def withdraw(self, queue: str, entry_id: str) -> None:
        """Remove an entry, read or not (the coordinator offers the task on another queue)."""
        pipe = self.redis.pipeline()
        pipe.xack(stream_key(queue), GROUP, entry_id)
        pipe.xdel(stream_key(queue), entry_id)
        pipe.execute()

    def depth(self) -> dict[str, int]:
        """Entries per specialty that no agent has confirmed yet (waiting plus unconfirmed)."""
        pipe = self.redis.pipeline()
        for queue in ALL_QUEUES:
            pipe.xlen(stream_key(queue))
        depths = dict.fromkeys(SPECIALTIES, 0)
        for queue, length in zip(ALL_QUEUES, pipe.execute(), strict=True):
            depths[queue.split(":")[0]] += length
        return depths

    def _take_over_stale(self, consumer: str, queue: str) -> Offer | None:
        try:
            _, entries, _ = self.redis.xautoclaim(
                stream_key(queue), GROUP, consumer, self.claim_timeout_ms, "0-0", count=1
            )
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                return None  # Redis lost the queues; the coordinator recreates them
            raise
        return self._first(queue, entries)

    def _read(self, consumer: str, streams: dict[str, str], block_ms: int | None) -> Offer | None:
        try:
            reply = self.redis.xreadgroup(GROUP, consumer, streams, count=1, block=block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                return None
            raise
        for key, entries in reply or []:
            name = key.decode() if isinstance(key, bytes) else key
            offer = self._first(name.removeprefix("ccc:queue:"), entries)
            if offer:
                return offer
        return None

    def _first(self, queue: str, entries) -> Offer | None:
        for entry_id, fields in entries:
            if not fields:  # the entry was deleted while pending
                continue
            raw = fields.get(b"task_id", fields.get("task_id"))
            entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            return Offer(int(raw), queue, entry)
        return None
