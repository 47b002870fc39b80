"""Exactly one active processor in the cluster: the holder of a PostgreSQL advisory lock.

Every coordinator host runs ``claude-coordinator-processor``; each tries to take the lock on a
connection of its own (outside the pool, held for the process's life). The holder works; the
others stand by and try again every few seconds. The lock goes with its connection: a stopped
or killed holder frees it at once, a host that vanished once PostgreSQL's keepalive probes
(set on this connection: ~11 s) find its connection dead.

The holder is woken early by ``NOTIFY`` on ``CHANNEL`` (a webhook stored, a task released),
sent by any web worker. Should the holder's lock connection break while its pooled work
connections still answer, a standby may start before the old holder notices at the end of its
pass: every step locks its rows with SKIP LOCKED, so the overlap does no work twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

LOCK_KEY = 0x63_63_63_70_72_6F_63  # "cccproc": one lock per cluster database
CHANNEL = "ccc_processor"
# Server side: probe an idle lock connection after 5 s, every 2 s, give up after 3 misses.
KEEPALIVES = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}


def identity() -> str:
    """How this process shows in pg_stat_activity and the admin pages: host and pid."""
    return f"processor {socket.gethostname()}:{os.getpid()}"


def conninfo(database_url: str) -> str:
    """libpq's form of the coordinator's SQLAlchemy URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Leadership:
    """The lock, its connection and the wake-ups that arrive on it."""

    def __init__(self, database_url: str, name: str | None = None) -> None:
        self._conninfo = conninfo(database_url)
        self.name = name or identity()
        self._connection: psycopg.Connection | None = None
        self.held = False

    def try_take(self) -> bool:
        """Take the lock if it is free; False when another processor holds it or PostgreSQL
        cannot be reached (both: try again later)."""
        try:
            if self._connection is None:
                self._connection = self._connect()
            row = self._connection.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
            self.held = bool(row and row[0])
        except psycopg.Error as exc:
            logger.warning("Processor lock not taken: %s", exc)
            self._drop()
        return self.held

    def holds(self) -> bool:
        """Still the holder: the lock's connection answers (else the lock is gone with it)."""
        if not self.held or self._connection is None:
            return False
        try:
            self._connection.execute("SELECT 1")
        except psycopg.Error as exc:
            logger.warning("Processor lock lost with its connection: %s", exc)
            self._drop()
        return self.held

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, returning early (True) when someone sends a wake-up."""
        if self._connection is None:
            return False
        try:
            return any(True for _ in self._connection.notifies(timeout=seconds, stop_after=1))
        except psycopg.Error:
            self._drop()
            return False

    def release(self) -> None:
        """Let go of the lock (closing its connection frees it)."""
        self._drop()

    def _connect(self) -> psycopg.Connection:
        connection = psycopg.connect(
            self._conninfo,
            autocommit=True,
            application_name=self.name[:63],
            connect_timeout=10,
            # Client side too: a holder whose server vanished finds out within seconds.
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
        )  # fmt: skip
        for setting, value in KEEPALIVES.items():  # ignored on a Unix socket: no TCP to probe
            connection.execute(f"SET {setting} = {int(value)}")
        connection.execute(f"LISTEN {CHANNEL}")
        return connection

    def _drop(self) -> None:
        self.held = False
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
            self._connection = None


def holder(session) -> str | None:
    """Which processor holds the lock now (its application name), None when none does."""
    return session.scalar(
        text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted"
            " AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"
        ),
        {"key": LOCK_KEY},
    )
