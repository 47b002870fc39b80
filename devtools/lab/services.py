"""Private PostgreSQL and Redis servers on loopback, for tests, demos and benchmarks, and the
wait for a local service to answer.

Each server runs from the Debian binaries in a temporary directory on a free port, owned by this
process: it never touches a system-wide cluster or a service that happens to listen on 5432/6379,
and ``stop()`` removes every trace of it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis
import requests

POSTGRES_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
# initdb and postgres refuse to run as root; Debian's postgresql package creates this user.
POSTGRES_UNPRIVILEGED_USER = "postgres"


class ServiceError(RuntimeError):
    """A private server could not be started or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_http(
    url: str,
    what: str,
    check: Callable[[], None] = lambda: None,
    verify: str | bool = True,
    timeout: float = 60,
) -> None:
    """Poll ``url`` until it answers below 500; ``check`` raises when what should answer has
    died (polled meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check()
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2, verify=verify).status_code < 500:
                return
        time.sleep(0.2)
    raise ServiceError(f"{what} did not answer at {url}")


def _wait_until(check, timeout: float, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"{what} exited with code {process.returncode}: {log_tail(log)}")
        if check():
            return
        time.sleep(0.05)
    raise ServiceError(f"{what} not ready after {timeout:.0f}s: {log_tail(log)}")


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` of a log file, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _ManagedProcess:
    """Shared lifecycle: a temp directory, one server process, and a stop that always cleans up."""

    name = "server"

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.directory: Path | None = None
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self):
        raise NotImplementedError

    def _spawn(self, argv: list[str], log: Path, user: str | None = None) -> None:
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        with log.open("ab") as out:
            # A session of its own, so stopping it never signals the test runner.
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _terminate(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def stop(self) -> None:
        """Stop the server and delete its directory; safe to call twice or after a failed start."""
        try:
            self._terminate()
        finally:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class PostgresServer(_ManagedProcess):
    """A throwaway PostgreSQL cluster with password (scram-sha-256) authentication."""

    name = "postgresql"

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        super().__init__(host, port)
        self.user = "ccc"
        self.password = secrets.token_urlsafe(16)
        self._bin = self._find_bin_dir()
        self._run_as = POSTGRES_UNPRIVILEGED_USER if os.geteuid() == 0 else None

    @staticmethod
    def _find_bin_dir() -> Path:
        for candidate in POSTGRES_BIN_DIRS:
            if Path(candidate, "postgres").exists():
                return Path(candidate)
        raise ServiceError(
            "PostgreSQL server binaries not found in "
            + ", ".join(POSTGRES_BIN_DIRS)
            + "; install the Debian package 'postgresql' (make test does this)"
        )

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL for ``database`` on this server."""
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """libpq connection string for ``database``."""
        return self.url(database, driver="postgresql")

    def start(self) -> PostgresServer:
        self.directory = Path(tempfile.mkdtemp(prefix="ccc-postgres-"))
        try:
            data, sockets, log = (self.directory / name for name in ("data", "run", "log"))
            sockets.mkdir()
            pwfile = self.directory / "pwfile"
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
            if self._run_as:
                account = pwd.getpwnam(self._run_as)
                for path in (self.directory, sockets, pwfile):
                    os.chown(path, account.pw_uid, account.pw_gid)
            initdb = [
                str(self._bin / "initdb"), "-D", str(data), "-U", self.user,
                f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                "--locale=C", "--no-sync",
            ]  # fmt: skip
            if self._run_as:
                initdb = ["runuser", "-u", self._run_as, "--", *initdb]
            done = subprocess.run(initdb, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise ServiceError(f"initdb failed: {done.stdout}{done.stderr}")
            pwfile.unlink()
            self._spawn(
                [
                    str(self._bin / "postgres"), "-D", str(data), "-p", str(self.port),
                    "-c", f"listen_addresses={self.host}",
                    "-c", f"unix_socket_directories={sockets}",
                    # Durability buys nothing for a throwaway test cluster and costs seconds.
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                    "-c", "max_connections=200",
                ],
                log,
                user=self._run_as,
            )  # fmt: skip
            _wait_until(self._ready, 30, "postgres", self.process, log)
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        probe = subprocess.run(
            [str(self._bin / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
            check=False,
        )
        return probe.returncode == 0

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(statement)

    def _terminate(self, sig: int = signal.SIGINT, timeout: float = 15) -> None:
        # SIGINT is PostgreSQL's "fast shutdown": it disconnects clients instead of waiting.
        super()._terminate(sig, timeout)


class RedisServer(_ManagedProcess):
    """A throwaway Redis with a password and no persistence (like a Redis that lost its data)."""

    name = "redis"

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        super().__init__(host, port)
        self.password = secrets.token_urlsafe(16)
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServiceError("redis-server not found; install the Debian package 'redis-server'")
        self._binary = binary

    def url(self, db: int = 0) -> str:
        """redis:// URL for database number ``db``."""
        return f"redis://:{self.password}@{self.host}:{self.port}/{db}"

    def start(self) -> RedisServer:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="ccc-redis-"))
        config = self.directory / "redis.conf"
        # The password goes in a 0600 file, not on the command line where ps would show it.
        config.write_text(
            f"port {self.port}\nbind {self.host}\nrequirepass {self.password}\n"
            f'dir {self.directory}\nsave ""\nappendonly no\ndaemonize no\n'
        )
        config.chmod(0o600)
        log = self.directory / "log"
        try:
            self._spawn([self._binary, str(config)], log)
            _wait_until(self._ready, 15, "redis-server", self.process, log)
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        # A PING with our password: a port that merely accepts may belong to someone else.
        client = redis.Redis(
            host=self.host, port=self.port, password=self.password, socket_timeout=0.5
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def restart(self) -> None:
        """Stop and start on the same port; without persistence, all data is gone (on purpose)."""
        self._terminate()
        self.start()
