"""`ccc-demo`: the main job. A whole cluster works GitHub issues into pull requests, offline.

``--local`` runs every part on this machine's loopback as real processes: private PostgreSQL
and Redis, the GitHub and Claude simulators (`ccc-sim`), the coordinator under gunicorn, and two
`claude-agent run` processes with different specialties. Issues of different kinds are filed
and labelled through the GitHub API; once each has its pull request, the maintainer merges the
first and closes the second without merging. The demo prints progress, a summary table with the
merge rate, and the admin URL, and keeps the cluster up until Ctrl-C (or exits at once with
``--exit``).

``--lab`` does the same on lab hosts provisioned by site.yml (see :mod:`lab.demo_lab`) and
leaves them running until ``ccc-demo stop``.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click
import github
import requests

from coordinator_app import test_results
from lab import demo_lab
from lab.admin_api import ADMIN
from lab.config import LabConfig
from lab.demo_cluster import (
    APP_ID,
    EXPECTED_ENDS,
    REPO,
    SCENARIOS,
    SEED,
    WEB_REPO,
    DemoCluster,
    issue_name,
    seed_tokens,
    summary,
    write_app_key,
)
from lab.demo_lab import LabCluster, demo_spec
from lab.exceptions import LabBusyError, LabError
from lab.local_cluster import LocalCluster
from lab.services import ServiceError, free_port

# What a demo reports as its failure (anything else is a bug and shows a traceback).
DEMO_ERRORS = (ServiceError, LabError, requests.RequestException, github.GithubException)

AGENTS = [
    ("agent-backend", ["backend", "general"]),
    ("agent-docs", ["frontend", "documentation", "testing", "general"]),
]


@dataclass(kw_only=True)
class LocalDemo(DemoCluster):
    """The demo world on a :class:`LocalCluster`: the simulators as `ccc-sim` processes, the
    coordinator as the simulator's GitHub App, two agents; ``stop()`` removes it all."""

    root: Path
    local: LocalCluster | None = None

    def start(self) -> None:
        """Start every part and wait until the agents are idle."""
        self.local = LocalCluster(self.root, self.echo)
        self.local.start_services()
        self.admin_password = self.local.admin_password
        self.tokens = seed_tokens()
        self.app_key_file = write_app_key(self.root / "github-app.pem")
        self.echo("starting the GitHub and Claude simulators")
        github_port, claude_port = free_port(), free_port()
        self.local.spawn(
            "github-sim",
            ["ccc-sim", "github", "--port", str(github_port), "--seed", str(SEED),
             "--data-dir", str(self.root / "github"), "--app-key-file", str(self.app_key_file)],
        )  # fmt: skip
        claude_key = "sk-ant-demo-" + secrets.token_hex(8)
        self.local.spawn(
            "claude-sim",
            ["ccc-sim", "claude", "--port", str(claude_port), "--scenarios", str(SCENARIOS),
             "--api-key", claude_key],
        )  # fmt: skip
        self.urls.update(
            github=f"http://127.0.0.1:{github_port}", claude=f"http://127.0.0.1:{claude_port}"
        )
        self.wait_http(f"{self.urls['github']}/api/v3/rate_limit", "GitHub simulator")
        self.wait_http(f"{self.urls['claude']}/_sim/health", "Claude simulator")
        self.local.start_coordinator(
            {
                "github_api_url": f"{self.urls['github']}/api/v3",
                # The cluster is the simulator's GitHub App (seed: simulators/github/seeds).
                "github_app_id": APP_ID,
                "github_app_private_key_file": str(self.app_key_file),
                "heartbeat_seconds": 5,
                "lease_seconds": 30,
            }
        )
        self.urls["coordinator"] = self.local.urls["coordinator"]
        self.set_app_webhook(self.local.webhook_secret)
        for name, specialties in AGENTS:
            self.echo(f"starting {name} ({', '.join(specialties)})")
            self.local.start_agent(
                name,
                specialties,
                anthropic_base_url=self.urls["claude"],
                anthropic_api_key=claude_key,
                heartbeat_seconds=5,
            )
        self.local.wait_agents_idle([name for name, _ in AGENTS])

    def check(self) -> None:
        """Raise ServiceError when one of the processes has exited."""
        if self.local is not None:
            self.local.check()

    def stop(self) -> None:
        """Stop the processes, then PostgreSQL and Redis."""
        if self.local is not None:
            self.local.stop()


def _echo(message: str) -> None:
    click.echo(f"==> {message}")


def _job(cluster: DemoCluster, timeout: int) -> int:
    """The main job on a running cluster: four issues on two repositories become four pull
    requests, the maintainer merges one and closes another; prints the summary and returns
    the exit code."""
    started = time.monotonic()
    tasks = cluster.wait(cluster.file_issues(), timeout)
    seconds = time.monotonic() - started
    click.echo(f"\nevery issue has its pull request (or failed) after {seconds:.1f}s")
    tasks = cluster.decide(tasks, timeout)
    return _report(cluster, tasks)


def _report(cluster: DemoCluster, tasks: list[dict]) -> int:
    """Print the summary table and where to look; 0 when the issues ended as the job intends:
    merged (completed), closed without merge (failed), the others in review."""
    click.echo(f"\n{summary(tasks)}")
    for task in tasks:
        tests = (task.get("result") or {}).get("tests")
        if test_results.status(tests) == "not_run":
            name = issue_name(task["repository"], task["issue_number"])
            click.echo(f"\nwarning: {name}: {test_results.describe(tests)}")
    click.echo(
        f"\nadmin pages: {cluster.urls['coordinator']}/admin/  "
        f"(user {ADMIN}, password {cluster.admin_password}; Acceptance shows the merge rate)"
    )
    for repo in (REPO, WEB_REPO):
        click.echo(f"GitHub simulator: {cluster.urls['github']}/api/v3/repos/{repo}/pulls")
    return 0 if [(t["state"], t["error"]) for t in tasks] == EXPECTED_ENDS else 1


def run_local(exit_after: bool, timeout: int) -> int:
    """The demo on local processes; returns the exit code."""
    root = Path(tempfile.mkdtemp(prefix="ccc-demo-"))
    cluster = LocalDemo(root=root, echo=_echo)
    code = 0
    try:
        cluster.start()
        code = _job(cluster, timeout)
        click.echo(f"logs and workspaces: {root}")
        if not exit_after:
            click.echo("\nthe cluster keeps running; press Ctrl-C to stop it")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    except DEMO_ERRORS as exc:
        click.echo(f"demo failed: {exc}", err=True)
        code = 1
    finally:
        click.echo("==> stopping the cluster")
        cluster.stop()
        if code == 0:
            shutil.rmtree(root, ignore_errors=True)
        else:
            click.echo(f"kept the logs in {root}", err=True)
    return code


def run_lab(exit_after: bool, timeout: int) -> int:
    """The demo on lab hosts; returns the exit code. The cluster stays up unless ``exit_after``."""
    config = LabConfig.from_env()
    cluster = LabCluster(config=config, spec=demo_spec(config.host_prefix), echo=_echo)
    code = 1
    try:
        cluster.start()
    except LabBusyError as exc:  # someone else's lab: leave it alone
        click.echo(str(exc), err=True)
        return code
    except BaseException as exc:  # a half-built lab is no use: remove it, whatever happened
        cluster.stop()
        if not isinstance(exc, DEMO_ERRORS):
            raise
        click.echo(f"demo failed: {exc}", err=True)
        return code
    try:
        code = _job(cluster, timeout)
        click.echo(f"its certificate is from the cluster CA: {cluster.verify}")
        agent = next(h.name for h in cluster.spec.hosts if "agents" in h.roles)
        click.echo(f"on the hosts: ccc-lab status; ccc-lab ssh {agent} journalctl -u claude-agent")
        click.echo(f"lab state, simulator logs and site.yml's log: {cluster.directory}")
    except DEMO_ERRORS as exc:
        click.echo(f"demo failed: {exc}", err=True)
    except KeyboardInterrupt:
        exit_after = True
    if exit_after:
        _echo("stopping the simulators and destroying the lab")
        cluster.stop()
    else:
        click.echo("\nthe cluster keeps running; stop it with: ccc-demo stop")
    return code


@click.group(invoke_without_command=True)
@click.option(
    "--local",
    "mode",
    flag_value="local",
    help="Every part as local processes on loopback (quick; no root, no lab hosts).",
)
@click.option(
    "--lab",
    "mode",
    flag_value="lab",
    default=True,
    help="Lab hosts (systemd-nspawn, root) converged by site.yml; stays up until `ccc-demo stop` "
    "(the default).",
)
@click.option("--exit", "exit_after", is_flag=True, help="Stop everything after the summary.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for the PRs.")
@click.pass_context
def main(ctx: click.Context, mode: str, exit_after: bool, timeout: int) -> None:
    """Run the whole cluster and watch it turn issues into pull requests."""
    if ctx.invoked_subcommand is None:
        sys.exit(
            run_local(exit_after, timeout) if mode == "local" else run_lab(exit_after, timeout)
        )


@main.command("stop")
def stop_command() -> None:
    """Stop a lab demo: its simulators, hosts, bridge, proxy and state."""
    try:
        demo_lab.stop(LabConfig.from_env(), echo=_echo)
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
