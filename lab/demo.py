"""`ccc-demo`: the main job. A whole cluster works GitHub issues into pull requests, offline.

``--local`` runs every part on this machine's loopback as real processes: private PostgreSQL
and Redis, the GitHub and Claude simulators (`ccc-sim`), the coordinator under gunicorn, and two
`claude-agent run` processes with different specialties. Issues of different kinds are filed
and labelled through the GitHub API; the demo prints progress, a summary table, and the admin
URL, and keeps the cluster up until Ctrl-C (or exits at once with ``--exit``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import click
import github
import requests
import yaml
from werkzeug.security import generate_password_hash

from coordinator_app import migrate
from coordinator_app.db import Database
from coordinator_app.models import AdminUser
from lab.services import PostgresServer, RedisServer, ServiceError, free_port

PROJECT = Path(__file__).resolve().parent.parent
SEED = PROJECT / "simulators" / "github" / "seeds" / "demo.yml"
SCENARIOS = PROJECT / "simulators" / "claude" / "scenarios" / "demo"
REPO = "octo-org/textstats"
ADMIN = "admin"
FINAL = ("completed", "failed", "cancelled")

ISSUES = [
    (
        "Add a character count function",
        "textstats counts words; it should also count characters: `char_count(text, spaces=True)`.",
        ["claude", "backend"],
    ),
    (
        "Document top_words in the README",
        "The README only shows an example. Document `words`, `word_count` and `top_words` "
        "(how are ties ordered?).",
        ["claude", "docs"],
    ),
    (
        "Add tests for punctuation-only input",
        "What do `words`, `word_count` and `top_words` return for text like `?!, ...`? "
        "Pin it down with tests in tests/test_edge_cases.py.",
        ["claude"],
    ),
]
AGENTS = [
    ("agent-backend", ["backend", "general"]),
    ("agent-docs", ["documentation", "testing", "general"]),
]


@dataclass
class LocalCluster:
    """Every process and file of a local demo; ``stop()`` removes them all."""

    root: Path
    echo: Callable[[str], None] = print
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    services: list = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    tokens: dict[str, str] = field(default_factory=dict)
    _admin_token: str | None = None

    # Start ------------------------------------------------------------------------------

    def start(self) -> None:
        self.echo("starting PostgreSQL and Redis")
        postgres = PostgresServer().start()
        self.services.append(postgres)
        redis_server = RedisServer().start()
        self.services.append(redis_server)
        database_url = postgres.create_database("claude")
        migrate.upgrade(database_url)
        database = Database(database_url)
        with database.session() as session:
            session.add(
                AdminUser(username=ADMIN, password_hash=generate_password_hash(self.admin_password))
            )
        database.dispose()

        seed = yaml.safe_load(SEED.read_text())
        self.tokens = {u["login"]: u["token"] for u in seed["users"] if u.get("token")}
        self.echo("starting the GitHub and Claude simulators")
        github_port, claude_port, coordinator_port = free_port(), free_port(), free_port()
        self._spawn(
            "github-sim",
            [
                "ccc-sim",
                "github",
                "--port",
                str(github_port),
                "--seed",
                str(SEED),
                "--data-dir",
                str(self.root / "github"),
            ],
        )
        claude_key = "sk-ant-demo-" + secrets.token_hex(8)
        self._spawn(
            "claude-sim",
            [
                "ccc-sim",
                "claude",
                "--port",
                str(claude_port),
                "--scenarios",
                str(SCENARIOS),
                "--api-key",
                claude_key,
            ],
        )
        self.urls.update(
            github=f"http://127.0.0.1:{github_port}",
            claude=f"http://127.0.0.1:{claude_port}",
            coordinator=f"http://127.0.0.1:{coordinator_port}",
        )
        self._wait_http(f"{self.urls['github']}/api/v3/rate_limit", "GitHub simulator")
        self._wait_http(f"{self.urls['claude']}/_sim/health", "Claude simulator")

        self.echo("starting the coordinator (gunicorn)")
        webhook_secret = secrets.token_hex(16)
        config = self.root / "coordinator.toml"
        _write_toml(
            config,
            {
                "database_url": database_url,
                "redis_url": redis_server.url(),
                "secret_key": secrets.token_hex(32),
                "webhook_secret": webhook_secret,
                "github_api_url": f"{self.urls['github']}/api/v3",
                "github_token": self.tokens["claude-cluster-bot"],
                "heartbeat_seconds": 5,
                "lease_seconds": 30,
            },
        )
        self._spawn(
            "coordinator",
            [
                "gunicorn",
                "--worker-class",
                "gthread",
                "--workers",
                "1",
                "--threads",
                "8",
                "--bind",
                f"127.0.0.1:{coordinator_port}",
                "coordinator_app.wsgi:app",
            ],
            env={"CCC_CONFIG": str(config)},
        )
        self._wait_http(f"{self.urls['coordinator']}/readyz", "coordinator")

        alice = self._github("alice").get_repo(REPO)
        alice.create_hook(
            "web",
            {
                "url": f"{self.urls['coordinator']}/webhooks/github",
                "content_type": "json",
                "secret": webhook_secret,
            },
            events=[
                "issues",
                "issue_comment",
                "pull_request",
                "pull_request_review",
                "pull_request_review_comment",
            ],
        )

        for name, specialties in AGENTS:
            self.echo(f"starting {name} ({', '.join(specialties)})")
            key = self._api(
                "POST", "/api/v1/agents", {"name": name, "specialties": specialties, "max_tasks": 2}
            )["key"]
            agent_config = self.root / f"{name}.toml"
            _write_toml(
                agent_config,
                {
                    "name": name,
                    "specialties": specialties,
                    "max_tasks": 2,
                    "coordinator_url": self.urls["coordinator"],
                    "agent_key": key,
                    "redis_url": redis_server.url(),
                    "workspace_root": str(self.root / name),
                    "anthropic_base_url": self.urls["claude"],
                    "anthropic_api_key": claude_key,
                    "github_api_url": f"{self.urls['github']}/api/v3",
                    "github_token": self.tokens["claude-cluster-bot"],
                    "heartbeat_seconds": 5,
                    # The repository's tests run with this virtualenv's Python (it has pytest).
                    "command_path": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                },
            )
            self._spawn(name, ["claude-agent", "--config", str(agent_config), "run"])
        self._wait_agents_idle()

    def _wait_agents_idle(self, timeout: float = 60) -> None:
        """Like site.yml's last check: every agent has reported in and is idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_processes()
            states = {a["name"]: a["state"] for a in self._api("GET", "/api/v1/agents")["items"]}
            if len(states) == len(AGENTS) and set(states.values()) == {"idle"}:
                self.echo("agents idle: " + ", ".join(sorted(states)))
                return
            time.sleep(0.3)
        raise ServiceError(f"agents not idle after {timeout:.0f}s: {states}")

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> None:
        log = (self.root / f"{name}.log").open("ab")
        binary = Path(sys.executable).parent / argv[0]
        self.processes[name] = subprocess.Popen(
            [str(binary), *argv[1:]],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        log.close()

    def _wait_http(self, url: str, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_processes()
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=2).status_code < 500:
                    return
            time.sleep(0.2)
        raise ServiceError(f"{what} did not answer at {url}; see its log in {self.root}")

    def _check_processes(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ServiceError(
                    f"{name} exited with {process.returncode}; its log: "
                    f"{self.root / (name + '.log')}"
                )

    # Use --------------------------------------------------------------------------------

    def _github(self, login: str) -> github.Github:
        return github.Github(
            base_url=f"{self.urls['github']}/api/v3", auth=github.Auth.Token(self.tokens[login])
        )

    def _api(self, method: str, path: str, body: dict | None = None) -> dict:
        if self._admin_token is None:
            answer = requests.post(
                f"{self.urls['coordinator']}/api/v1/auth/token",
                timeout=10,
                json={"username": ADMIN, "password": self.admin_password},
            )
            answer.raise_for_status()
            self._admin_token = answer.json()["token"]
        answer = requests.request(
            method,
            self.urls["coordinator"] + path,
            json=body,
            timeout=10,
            headers={"Authorization": f"Bearer {self._admin_token}"},
        )
        answer.raise_for_status()
        return answer.json()

    def file_issues(self) -> list[int]:
        """Open the demo issues as alice and label them for the cluster."""
        repo = self._github("alice").get_repo(REPO)
        numbers = []
        for title, body, labels in ISSUES:
            # Triage labels first, as a maintainer would; the trigger label hands it over.
            issue = repo.create_issue(title, body=body, labels=labels[1:])
            issue.add_to_labels(labels[0])
            numbers.append(issue.number)
            self.echo(f"filed #{issue.number} {title!r} with labels {', '.join(labels)}")
        return numbers

    def wait(self, numbers: list[int], timeout: float) -> list[dict]:
        """Print state changes until every issue's task is final; returns the tasks."""
        deadline = time.monotonic() + timeout
        seen: dict[int, str] = {}
        while True:
            self._check_processes()
            tasks = {
                t["issue_number"]: t
                for t in self._api("GET", "/api/v1/tasks?per_page=100")["items"]
            }
            for number in numbers:
                task = tasks.get(number)
                state = task["state"] if task else "waiting for webhook"
                if seen.get(number) != state:
                    agent = f" ({task['agent']})" if task and task["agent"] else ""
                    self.echo(f"  #{number}: {state}{agent}")
                    seen[number] = state
            if all(number in tasks and tasks[number]["state"] in FINAL for number in numbers):
                return [self._api("GET", f"/api/v1/tasks/{tasks[n]['id']}") for n in numbers]
            if time.monotonic() > deadline:
                raise ServiceError(f"issues not finished after {timeout:.0f}s: {seen}")
            time.sleep(1)

    # Stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        for service in reversed(self.services):
            service.stop()


def summary(tasks: list[dict]) -> str:
    """The table the demo ends with."""
    head = ("ISSUE", "SPECIALTY", "AGENT", "STATE", "TESTS", "PR", "TOKENS", "COST", "TIME")
    rows = [head]
    for task in tasks:
        tests = (task.get("result") or {}).get("tests") or {}
        verdict = (
            f"{tests.get('passed', 0)} passed"
            if tests and not tests.get("failed")
            else f"{tests.get('failed')} failed"
            if tests
            else "-"
        )
        seconds = _seconds_between(task["history"][0]["at"], task["history"][-1]["at"])
        rows.append(
            (
                f"#{task['issue_number']}",
                task["specialty"] or "-",
                task["agent"] or "-",
                task["state"],
                verdict,
                task["pr_url"] or "-",
                str(task["input_tokens"] + task["output_tokens"]),
                f"${task['cost_usd']:.4f}",
                f"{seconds:.1f}s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _write_toml(path: Path, values: dict) -> None:
    # JSON scalars and arrays of strings are valid TOML; secrets inside: owner-only.
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    path.chmod(0o600)


@click.command()
@click.option(
    "--local",
    "local",
    is_flag=True,
    default=True,
    help="Run every part as local processes on loopback (the default for now).",
)
@click.option("--exit", "exit_after", is_flag=True, help="Stop everything after the summary.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for the PRs.")
def main(local: bool, exit_after: bool, timeout: int) -> None:
    """Run the whole cluster and watch it turn issues into pull requests."""
    root = Path(tempfile.mkdtemp(prefix="ccc-demo-"))
    cluster = LocalCluster(root, echo=lambda m: click.echo(f"==> {m}"))
    code = 0
    try:
        cluster.start()
        started = time.monotonic()
        numbers = cluster.file_issues()
        tasks = cluster.wait(numbers, timeout)
        click.echo(f"\nall issues finished in {time.monotonic() - started:.1f}s\n")
        click.echo(summary(tasks))
        code = 0 if all(t["state"] == "completed" for t in tasks) else 1
        click.echo(
            f"\nadmin pages: {cluster.urls['coordinator']}/admin/  "
            f"(user {ADMIN}, password {cluster.admin_password})"
        )
        click.echo(f"GitHub simulator: {cluster.urls['github']}/api/v3/repos/{REPO}/pulls")
        click.echo(f"logs and workspaces: {root}")
        if not exit_after:
            click.echo("\nthe cluster keeps running; press Ctrl-C to stop it")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    except (ServiceError, requests.RequestException, github.GithubException) as exc:
        click.echo(f"demo failed: {exc}", err=True)
        code = 1
    finally:
        click.echo("==> stopping the cluster")
        cluster.stop()
        if code == 0:
            shutil.rmtree(root, ignore_errors=True)
        else:
            click.echo(f"kept the logs in {root}", err=True)
    sys.exit(code)
