"""A cluster on this machine's loopback, built part by part.

`ccc-demo --local`, the benchmarks and the agent tests bring their clusters up here, so the
coordinator's settings file, the admin account, agent registration, agent.toml and the order of
teardown are written once. The coordinator and the agents run as the processes a host runs
(gunicorn beside `ccc process`, `claude-agent run`) or, for tests that look inside them, as the
same app and worker on threads of this process. Whatever a part needs is stopped, in reverse
order, by :meth:`LocalCluster.stop` (or leaving the ``with`` block), also after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from werkzeug.security import generate_password_hash

from agent_app.cli import build_worker
from agent_app.config import AgentConfig
from agent_app.worker import Worker
from coordinator_app import migrate
from coordinator_app.app import create_app
from coordinator_app.config import CoordinatorConfig
from coordinator_app.db import Database
from coordinator_app.models import AdminUser
from lab.admin_api import ADMIN, AdminApi
from lab.services import (
    PostgresServer,
    RedisServer,
    ServiceError,
    free_port,
    log_tail,
    wait_http,
)
from simulators.server import BackgroundServer

# The console scripts beside this Python (gunicorn, ccc, claude-agent, ccc-sim).
BIN = Path(sys.executable).parent
# The coordinator's database on a private PostgreSQL.
DATABASE = "claude"


class LocalCluster:
    """The parts of one local cluster and everything that stops them."""

    def __init__(self, root: Path, echo: Callable[[str], None] = lambda _message: None) -> None:
        self.root = root
        self.echo = echo
        self.admin_password = secrets.token_urlsafe(12)
        self.webhook_secret = secrets.token_hex(16)
        self.urls: dict[str, str] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.database_url = ""
        self.redis_url = ""
        self.app = None  # the coordinator's Flask app, when it runs in this process
        self.workers: dict[str, Worker] = {}  # agents running in this process
        self.admin: AdminApi | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every part, the last started first."""
        self._stack.close()

    # Services -----------------------------------------------------------------------------

    def start_services(self, database_url: str | None = None, redis_url: str | None = None):
        """PostgreSQL and Redis (private ones unless URLs are given), the coordinator's schema
        and the admin account."""
        if database_url is None:
            self.echo("starting PostgreSQL")
            self.postgres = self._stack.enter_context(PostgresServer())
            database_url = self.postgres.create_database(DATABASE)
        if redis_url is None:
            self.echo("starting Redis")
            self.redis = self._stack.enter_context(RedisServer())
            redis_url = self.redis.url()
        self.database_url, self.redis_url = database_url, redis_url
        migrate.upgrade(database_url)
        database = Database(database_url)
        try:
            with database.session() as session:
                password_hash = generate_password_hash(self.admin_password)
                session.add(AdminUser(username=ADMIN, password_hash=password_hash))
        finally:
            database.dispose()

    # Coordinator --------------------------------------------------------------------------

    def start_coordinator(
        self,
        settings: dict | None = None,
        *,
        in_process: bool = False,
        workers: int = 1,
        threads: int = 8,
        processor_interval: float = 1.0,
    ) -> Path:
        """Write coordinator.toml (``settings`` over the cluster's own) and run the web service
        and the processor; returns the settings file."""
        config_file = self.root / "coordinator.toml"
        write_toml(
            config_file,
            {
                "database_url": self.database_url,
                "redis_url": self.redis_url,
                "secret_key": secrets.token_hex(32),
                "webhook_secret": self.webhook_secret,
                # Plain HTTP on loopback: the lab and real sites serve HTTPS.
                "secure_cookies": False,
                **(settings or {}),
            },
        )
        if in_process:
            url = self._coordinator_in_process(config_file, processor_interval)
        else:
            url = self._coordinator_processes(config_file, workers, threads, processor_interval)
        self.urls["coordinator"] = url
        self.admin = AdminApi(url, ADMIN, self.admin_password)
        return config_file

    def _coordinator_processes(
        self, config_file: Path, workers: int, threads: int, processor_interval: float
    ) -> str:
        port = free_port()
        env = {"CCC_CONFIG": str(config_file)}
        self.echo(f"starting the coordinator (gunicorn, {workers} worker(s)) and its processor")
        self.spawn(
            "coordinator",
            ["gunicorn", "--worker-class", "gthread", "--workers", str(workers),
             "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
             "coordinator_app.wsgi:app"],
            env=env,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        self.wait_http(f"{url}/readyz", "coordinator")
        self.spawn("processor", ["ccc", "process", "--interval", str(processor_interval)], env=env)
        return url

    def _coordinator_in_process(self, config_file: Path, processor_interval: float) -> str:
        self.app = create_app(CoordinatorConfig.load(config_file, environ={}))
        ccc = self.app.extensions["ccc"]
        self._stack.callback(ccc.redis.close)
        self._stack.callback(ccc.database.dispose)
        self._stack.callback(ccc.gateway.close)
        ccc.queues.ensure()
        server = self._stack.enter_context(BackgroundServer(self.app))
        ccc.processor.start(interval=processor_interval)
        self._stack.callback(ccc.processor.stop)
        return server.url

    # Agents -------------------------------------------------------------------------------

    def agent_config(
        self, name: str, specialties: list[str], max_tasks: int = 2, **settings
    ) -> Path:
        """Register the agent with the coordinator and write its agent.toml (0600): the
        cluster's connection settings, then ``settings`` (model URL and key, intervals...)."""
        body = {"name": name, "specialties": list(specialties), "max_tasks": max_tasks}
        key = self.admin.call("POST", "/api/v1/agents", body)["key"]
        config_file = self.root / f"{name}.toml"
        write_toml(
            config_file,
            {
                **body,
                "coordinator_url": self.urls["coordinator"],
                "agent_key": key,
                "redis_url": self.redis_url,
                "workspace_root": str(self.root / name),
                **settings,
            },
        )
        return config_file

    def start_agent(
        self,
        name: str,
        specialties: list[str],
        *,
        in_process: bool = False,
        env: dict[str, str] | None = None,
        **settings,
    ) -> Worker | subprocess.Popen:
        """Register and run an agent: ``claude-agent run`` (with ``env`` as its whole
        environment when given), or the same worker on a thread here."""
        config_file = self.agent_config(name, specialties, **settings)
        if not in_process:
            argv = ["claude-agent", "--config", str(config_file), "run"]
            return self.spawn(name, argv, env=env, inherit=env is None)
        worker = build_worker(AgentConfig.load(config_file, environ={}), str(config_file))
        thread = threading.Thread(target=worker.run, name=f"agent-{name}", daemon=True)
        thread.start()
        self.workers[name] = worker
        self._stack.callback(_close_worker, worker, thread)
        return worker

    def wait_agents_idle(self, names: list[str], timeout: float = 60) -> None:
        """Like site.yml's last check: each of ``names`` has reported in and is idle."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            agents = self.admin.call("GET", "/api/v1/agents?per_page=100")["items"]
            states = {a["name"]: a["state"] for a in agents if a["name"] in names}
            if len(states) == len(names) and set(states.values()) == {"idle"}:
                self.echo("agents idle: " + ", ".join(sorted(states)))
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"agents not idle after {timeout:.0f}s: {states}")
            time.sleep(0.3)

    # Processes ----------------------------------------------------------------------------

    def spawn(
        self, name: str, argv: list[str], env: dict | None = None, inherit: bool = True
    ) -> subprocess.Popen:
        """Run one of this Python's console scripts in its own session, its output in
        ``<root>/<name>.log``; ``env`` adds to this process's environment (or, with
        ``inherit=False``, is the whole of it)."""
        with (self.root / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [str(BIN / argv[0]), *argv[1:]],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})} if inherit else env,
                start_new_session=True,
            )
        self.processes[name] = process
        self._stack.callback(_stop_session, process)
        return process

    def check(self) -> None:
        """Raise ServiceError when one of the processes has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = self.root / f"{name}.log"
                raise ServiceError(
                    f"{name} exited with {process.returncode}; {log} ends:\n{log_tail(log)}"
                )

    def wait_http(self, url: str, what: str, timeout: float = 60) -> None:
        """Poll ``url`` until it answers below 500, checking the processes meanwhile."""
        wait_http(url, what, self.check, timeout=timeout)


def _stop_session(process: subprocess.Popen) -> None:
    """SIGTERM to the process's session (gunicorn's master and workers, an agent and its
    commands), then SIGKILL if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _close_worker(worker: Worker, thread: threading.Thread) -> None:
    """A warm stop of an in-process agent, then its connections closed."""
    worker.stopping.set()
    thread.join(30)
    worker.coordinator.close()
    worker.queues.redis.close()


def write_toml(path: Path, values: dict) -> None:
    """Write settings as TOML, owner-only: one line per key, tables inline."""
    path.write_text(
        "".join(f"{_toml_key(key)} = {_toml(value)}\n" for key, value in values.items())
    )
    path.chmod(0o600)


def _toml(value) -> str:
    # JSON's strings, numbers and booleans are TOML's; arrays and tables nest.
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(value)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)
