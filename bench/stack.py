"""A real coordinator for benchmarks: private PostgreSQL and Redis, gunicorn (2 gthread workers)
and the processor on loopback, brought up by the lab's local cluster builder."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.admin_api import ADMIN
from lab.local_cluster import DATABASE, LocalCluster
from lab.services import PostgresServer, RedisServer


@dataclass
class Coordinator:
    """Handles to a running coordinator stack."""

    cluster: LocalCluster

    @property
    def postgres(self) -> PostgresServer:
        return self.cluster.postgres

    @property
    def redis(self) -> RedisServer:
        return self.cluster.redis

    @property
    def gunicorn(self) -> subprocess.Popen:
        return self.cluster.processes["coordinator"]

    @property
    def processor(self) -> subprocess.Popen:
        return self.cluster.processes["processor"]

    @property
    def webhook_secret(self) -> str:
        return self.cluster.webhook_secret

    @property
    def dsn(self) -> str:
        """libpq connection string of the coordinator's database."""
        return self.cluster.postgres.dsn(DATABASE)

    def connection(self) -> http.client.HTTPConnection:
        """A new keep-alive connection to the coordinator."""
        host, port = self.cluster.urls["coordinator"].removeprefix("http://").split(":")
        return NoDelayConnection(host, int(port), timeout=30)

    def admin_token(self) -> str:
        """A bearer token for the cluster's admin user."""
        body = {"username": ADMIN, "password": self.cluster.admin_password}
        status, answer = request_json(self.connection(), "POST", "/api/v1/auth/token", body)
        if status != 200:
            raise RuntimeError(f"admin login failed: {status} {answer}")
        return answer["token"]


class NoDelayConnection(http.client.HTTPConnection):
    """HTTPConnection with TCP_NODELAY.

    http.client sends a body over 2000 bytes in a second write; with Nagle's algorithm that
    write waits for the server's delayed ACK (40 ms on Linux loopback), which would be measured
    as server latency.
    """

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def request_json(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: object | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict]:
    """One JSON request on ``conn``; returns (status, decoded body)."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    conn.request(method, path, body=data, headers=sent)
    answer = conn.getresponse()
    raw = answer.read()
    return answer.status, json.loads(raw) if raw else {}


@contextlib.contextmanager
def running_coordinator(settings: dict[str, object] | None = None) -> Iterator[Coordinator]:
    """The coordinator under gunicorn (2 gthread workers, 8 threads each) beside ``ccc process``,
    on private PostgreSQL and Redis; ``settings`` go into its TOML file. Nothing calls GitHub
    unless ``settings`` point it at a simulator. Everything is stopped and removed on the way
    out."""
    with (
        tempfile.TemporaryDirectory(prefix="ccc-bench-") as tmp,
        LocalCluster(Path(tmp)) as cluster,
    ):
        cluster.start_services()
        cluster.start_coordinator(
            {
                "github_api_url": "http://127.0.0.1:9/api/v3",  # nothing listens there
                "github_token": "unused",
                **(settings or {}),
            },
            workers=2,
            threads=8,
        )
        yield Coordinator(cluster)
