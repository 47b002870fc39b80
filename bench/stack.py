"""A real coordinator for benchmarks: private PostgreSQL and Redis, and gunicorn on loopback."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from coordinator_app import migrate
from lab.services import PostgresServer, RedisServer, free_port

ADMIN_USER = "bench-admin"
GUNICORN_ARGS = ("--worker-class", "gthread", "--workers", "2", "--threads", "8")
DATABASE = "ccc_bench"


@dataclass
class Coordinator:
    """Handles to a running coordinator stack."""

    postgres: PostgresServer
    redis: RedisServer
    database_url: str
    gunicorn: subprocess.Popen
    processor: subprocess.Popen
    host: str
    port: int
    webhook_secret: str
    admin_password: str

    @property
    def dsn(self) -> str:
        """libpq connection string of the coordinator's database."""
        return self.postgres.dsn(DATABASE)

    def connection(self) -> http.client.HTTPConnection:
        """A new keep-alive connection to the coordinator."""
        return NoDelayConnection(self.host, self.port, timeout=30)

    def admin_token(self) -> str:
        """A bearer token for the benchmark's admin user."""
        body = {"username": ADMIN_USER, "password": self.admin_password}
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


def _wait_ready(host: str, port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {process.returncode}")
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not ready on {host}:{port} after {timeout:.0f}s")


def _stop_session(process: subprocess.Popen) -> None:
    """Graceful stop (SIGTERM to its leader: gunicorn's master, the processor), then the whole
    session if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@contextlib.contextmanager
def running_coordinator(
    settings: dict[str, object] | None = None,
) -> Iterator[Coordinator]:
    """Start PostgreSQL, Redis, ``gunicorn coordinator_app.wsgi:app`` (2 gthread workers) and
    the processor (``ccc process``).

    ``settings`` go into the coordinator's TOML file on top of the benchmark's own. Everything
    is stopped and removed on the way out.
    """
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ccc-bench-")))
        postgres = stack.enter_context(PostgresServer())
        redis_server = stack.enter_context(RedisServer())
        database_url = postgres.create_database(DATABASE)
        migrate.upgrade(database_url)
        webhook_secret = secrets.token_hex(20)
        values: dict[str, object] = {
            "database_url": database_url,
            "redis_url": redis_server.url(),
            "secret_key": secrets.token_hex(32),
            "webhook_secret": webhook_secret,
            "github_api_url": "http://127.0.0.1:9/api/v3",  # nothing listens: no GitHub calls
            "github_token": "unused",
            **(settings or {}),
        }
        config = tmp / "coordinator.toml"
        config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        config.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCC_")}
        env["CCC_CONFIG"] = str(config)
        admin_password = secrets.token_urlsafe(18)
        subprocess.run(
            [str(Path(sys.executable).with_name("ccc")), "create-admin", ADMIN_USER],
            env={**env, "CCC_ADMIN_PASSWORD": admin_password},
            check=True,
            capture_output=True,
        )
        host, port = "127.0.0.1", free_port()
        log = (tmp / "gunicorn.log").open("wb")
        stack.callback(log.close)
        gunicorn = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                *GUNICORN_ARGS,
                "--bind",
                f"{host}:{port}",
                "--log-level",
                "warning",
                "coordinator_app.wsgi:app",
            ],
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(_stop_session, gunicorn)
        # The processor (stored deliveries to tasks), as the role runs it beside gunicorn.
        processor = subprocess.Popen(
            [str(Path(sys.executable).with_name("ccc")), "process"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        stack.callback(_stop_session, processor)
        try:
            _wait_ready(host, port, gunicorn)
        except RuntimeError:
            log.flush()
            sys.stderr.write((tmp / "gunicorn.log").read_text(errors="replace")[-3000:])
            raise
        yield Coordinator(
            postgres,
            redis_server,
            database_url,
            gunicorn,
            processor,
            host,
            port,
            webhook_secret,
            admin_password,
        )
