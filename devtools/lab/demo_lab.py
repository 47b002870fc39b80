"""`ccc-demo --lab`: the main job on lab hosts provisioned by `playbooks/site.yml`.

Three systemd-nspawn hosts (PostgreSQL + Redis + coordinator; two agents with different
specialties) are converged by Ansible exactly as real machines are; the GitHub and Claude
simulators run on this machine as background processes bound to the lab bridge, so every host
reaches them and the simulated GitHub delivers webhooks to the coordinator over HTTPS, verifying
its certificate against the cluster CA. Everything stays up after the demo until
`ccc-demo stop`, which stops the simulators (pid files in the lab's state dir) and destroys the
lab.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab import network, prereqs
from lab.config import PROJECT_ROOT, LabConfig
from lab.demo_cluster import (
    APP_ID,
    SCENARIOS,
    SEED,
    DemoCluster,
    seed_tokens,
    write_app_key,
)
from lab.exceptions import LabBusyError, LabError
from lab.manager import Lab
from lab.process import cmdline, is_alive, spawn_detached
from lab.services import ServiceError, free_port
from lab.spec import HostSpec, LabSpec

SHARED_INVENTORY = PROJECT_ROOT / "molecule" / "shared" / "inventory"
SITE = PROJECT_ROOT / "playbooks" / "site.yml"
CA_DIR = PROJECT_ROOT / "build" / "cluster-ca"
COORDINATOR_PORT = 8443


def demo_spec(prefix: str = "lab") -> LabSpec:
    """PREFIX1: database, Redis, coordinator; PREFIX2: backend agent; PREFIX3: frontend, docs
    and tests (with Node.js besides Python, for the frontend issue's repository)."""
    return LabSpec(
        (
            HostSpec(f"{prefix}1", ("database", "redis", "coordinator")),
            HostSpec(
                f"{prefix}2",
                ("agents",),
                vars={"agent_specialties": ["backend", "general"], "agent_max_tasks": 2},
            ),
            HostSpec(
                f"{prefix}3",
                ("agents",),
                vars={
                    "agent_specialties": ["frontend", "documentation", "testing", "general"],
                    "agent_max_tasks": 2,
                    "agent_toolchains": ["python", "node"],
                },
            ),
        )
    )


@dataclass
class Timing:
    """Lease and heartbeat of the lab cluster; None: the roles' shipped defaults (a lab
    measures failover as production has it)."""

    lease_seconds: int | None = None
    heartbeat_seconds: int | None = None
    # Agents' warm-stop grace for running tasks (stop_timeout_seconds); None: theirs (90 s).
    stop_seconds: int | None = None


@dataclass(kw_only=True)
class LabCluster(DemoCluster):
    """The demo on lab hosts: ``start()`` builds it, ``stop()`` removes hosts and simulators."""

    config: LabConfig
    spec: LabSpec = field(default_factory=demo_spec)
    scenarios: Path = SCENARIOS
    timing: Timing = field(default_factory=Timing)
    webhook_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    # Token for the GitHub simulator's /_sim/ surface (it is not on loopback here).
    github_admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    # Seconds each phase of start() took ("lab", "site.yml", "simulators").
    phases: dict[str, float] = field(default_factory=dict)
    # Hosts site.yml converges (--limit), e.g. to leave a spare host fresh; None: all of them.
    limit: str | None = None
    # The agents' [limits] (agent_app.config.Limits fields) on top of their defaults.
    agent_limits: dict[str, int] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        """Simulator data, logs, pid files and the demo's record (inside the lab's state)."""
        return self.config.state_dir / "demo"

    @property
    def lab(self) -> Lab:
        """The lab the cluster runs on."""
        return Lab(self.config, progress=self.echo)

    def host_of(self, role: str) -> HostSpec:
        """The first host of the spec that plays ``role``."""
        return next(h for h in self.spec.hosts if role in h.roles)

    def address(self, name: str) -> str:
        """Address of lab host ``name``."""
        return self.spec.address_of(name, self.config)

    # Start ------------------------------------------------------------------------------

    def start(self) -> None:
        """Boot the hosts, then :meth:`provision` them."""
        if self.lab.hosts():
            raise LabBusyError(
                f"a lab already runs in {self.config.state_dir}; "
                "stop it first (`ccc-demo stop` or `ccc-lab destroy`)"
            )
        self._phase("lab", lambda: self.lab.up(self.spec))
        self.provision()

    def provision(self) -> None:
        """On running hosts: converge site.yml, start the simulators, add the webhook."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        bridge = network.bridge_address(self.config)
        self.tokens = seed_tokens()
        self.app_key_file = write_app_key(self.directory / "github-app.pem")
        claude_key = "sk-ant-demo-" + secrets.token_hex(8)
        github_port, claude_port = free_port(bridge), free_port(bridge)
        coordinator = self.address(self.host_of("coordinator").name)
        self.urls.update(
            github=f"http://{bridge}:{github_port}",
            claude=f"http://{bridge}:{claude_port}",
            coordinator=f"https://{coordinator}:{COORDINATOR_PORT}",
        )
        self.verify = str(CA_DIR / "ca.crt")
        self.save()
        self._phase("site.yml", lambda: self.converge(claude_key))
        self.echo("starting the GitHub and Claude simulators on the lab bridge")
        self._phase("simulators", lambda: self._start_simulators(bridge, claude_key))
        self.set_app_webhook(self.webhook_secret)
        self.save()
        agents = {a["name"]: a["state"] for a in self.api("GET", "/api/v1/agents")["items"]}
        self.echo("agents: " + ", ".join(f"{n} {s}" for n, s in sorted(agents.items())))

    def _phase(self, name: str, step) -> None:
        started = time.monotonic()
        step()
        self.phases[name] = time.monotonic() - started
        self.echo(f"{name}: {self.phases[name]:.1f}s")

    def extra_vars(self, claude_key: str) -> dict:
        """The site-specific settings site.yml gets on top of the lab's group_vars."""
        api = f"{self.urls['github']}/api/v3"
        agent_settings: dict = {}
        timing: dict = {}
        if self.timing.heartbeat_seconds is not None:
            agent_settings["heartbeat_seconds"] = self.timing.heartbeat_seconds
            timing["coordinator_heartbeat_seconds"] = self.timing.heartbeat_seconds
        if self.timing.lease_seconds is not None:
            timing["coordinator_lease_seconds"] = self.timing.lease_seconds
        if self.timing.stop_seconds is not None:
            agent_settings["stop_timeout_seconds"] = self.timing.stop_seconds
        if self.agent_limits:
            agent_settings["limits"] = self.agent_limits
        return {
            "control_node_ca_dir": str(CA_DIR),
            "coordinator_github_api_url": api,
            # The cluster is the simulator's GitHub App (seed: simulators/github/seeds/demo.yml).
            "coordinator_github_app": {"id": APP_ID, "private_key": self.app_key_file.read_text()},
            # (the lab's shared group_vars are in token mode, for the roles' own scenarios)
            "coordinator_github_token": "",
            "coordinator_repositories": [],
            "coordinator_webhook_secret": self.webhook_secret,
            "coordinator_admin_password": self.admin_password,
            "agent_coordinator_admin_password": self.admin_password,
            **timing,
            "agent_anthropic_base_url": self.urls["claude"],
            "agent_anthropic_api_key": claude_key,
            "agent_settings": agent_settings,
            "agent_start_service": True,
        }

    @property
    def extra_vars_file(self) -> Path:
        """The owner-only file of extra vars converge() writes and run() passes again."""
        return self.directory / "extra-vars.json"

    def converge(self, claude_key: str) -> None:
        """Run site.yml on the lab hosts (extra vars from an owner-only file, not argv)."""
        write_private(self.extra_vars_file, self.extra_vars(claude_key))
        self.run(SITE, limit=self.limit)

    def run(self, playbook: Path, extra_vars: dict | None = None, limit: str | None = None) -> Path:
        """Run ``playbook`` on the converged lab as site.yml ran (same inventories and extra
        vars, ``extra_vars`` on top); returns its log (raises ServiceError when it fails)."""
        files = [self.extra_vars_file]
        if extra_vars:
            files.append(self.directory / f"{playbook.stem}-vars.json")
            write_private(files[-1], extra_vars)
        log = self.directory / f"{playbook.stem}.log"
        inventories = [self.config.inventory_path, SHARED_INVENTORY]
        run_playbook(playbook, inventories, files, log, self.echo, limit)
        return log

    def _start_simulators(self, bridge: str, claude_key: str) -> None:
        ccc_sim = str(Path(sys.executable).parent / "ccc-sim")
        github_port = self.urls["github"].rsplit(":", 1)[1]
        claude_port = self.urls["claude"].rsplit(":", 1)[1]
        start_background(
            "github-sim",
            [ccc_sim, "github", "--host", bridge, "--port", github_port, "--seed", str(SEED),
             "--data-dir", str(self.directory / "github"), "--public-url", self.urls["github"],
             "--admin-token", self.github_admin_token, "--webhook-ca-file", str(self.verify),
             "--app-key-file", str(self.app_key_file)],
            self.directory,
        )  # fmt: skip
        start_background(
            "claude-sim",
            [ccc_sim, "claude", "--host", bridge, "--port", claude_port,
             "--scenarios", str(self.scenarios), "--api-key", claude_key],
            self.directory,
        )  # fmt: skip
        self.wait_http(f"{self.urls['github']}/api/v3/rate_limit", "GitHub simulator")
        self.wait_http(f"{self.urls['claude']}/_sim/health", "Claude simulator")

    # Use --------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise ServiceError when a simulator has died."""
        for name in ("github-sim", "claude-sim"):
            pid = read_pid(self.directory / f"{name}.pid")
            if pid is not None and not is_alive(pid):
                raise ServiceError(f"{name} exited; its log: {self.directory / name}.log")

    def ssh(self, host: str, command: str, timeout: float = 60) -> str:
        """Run ``command`` on lab host ``host`` as root; its stdout (raises on failure)."""
        result = self.lab.ssh.run(self.address(host), command, timeout)
        if result.exit_status != 0:
            raise LabError(f"{host}: {command!r} exited {result.exit_status}: {result.stderr}")
        return result.stdout

    def save(self) -> None:
        """Record what `ccc-demo status` and `ccc-demo stop` need (owner-only: it has secrets)."""
        record = {
            "urls": self.urls,
            "admin_password": self.admin_password,
            "verify": self.verify,
            "app_key_file": str(self.app_key_file),
            "github_admin_token": self.github_admin_token,
            "timing": asdict(self.timing),
        }
        path = self.directory / "demo.json"
        path.write_text(json.dumps(record, indent=2))
        path.chmod(0o600)

    # Stop -------------------------------------------------------------------------------

    def stop_simulators(self) -> None:
        """Stop the two simulators (the lab stays)."""
        stop_background(self.directory, self.echo)

    def stop(self) -> None:
        """Stop the simulators and destroy the lab (hosts, bridge, proxy, state)."""
        stop(self.config, self.echo)


def stop(config: LabConfig, echo=print) -> None:
    """`ccc-demo stop`: stop the demo's simulators, then destroy the lab and its state."""
    stop_background(config.state_dir / "demo", echo)
    if config.state_dir.exists() or network.link_exists(config.bridge):
        prereqs.require_root()
        Lab(config, progress=echo).destroy()


def run_playbook(
    playbook: Path,
    inventories: list[Path],
    extra: Path | list[Path],
    log: Path,
    echo,
    limit: str | None = None,
) -> None:
    """ansible-playbook with the venv's Ansible; echoes the plays, raises with the log's tail."""
    bin_dir = Path(sys.executable).parent
    argv = [str(bin_dir / "ansible-playbook")]
    for inventory in inventories:
        argv += ["-i", str(inventory)]
    for path in extra if isinstance(extra, list) else [extra]:
        argv += ["-e", f"@{path}"]
    argv += ["--limit", limit] if limit else []
    argv.append(str(playbook))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1"}
    tail: deque[str] = deque(maxlen=40)
    with (
        log.open("a") as out,
        subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True) as process,
    ):  # fmt: skip
        for line in process.stdout or ():
            out.write(line)
            out.flush()
            tail.append(line.rstrip())
            if line.startswith("PLAY ["):
                echo("  " + line.strip(" *\n"))
        process.wait()
    if process.returncode != 0:
        raise ServiceError(
            f"{playbook.name} failed (exit {process.returncode}); its log: {log}\n"
            + "\n".join(tail)
        )


def write_private(path: Path, values: dict) -> None:
    """Write ``values`` as JSON to an owner-only file (extra vars carry secrets)."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(values))


def start_background(name: str, argv: list[str], directory: Path) -> int:
    """Start ``argv`` detached (it outlives this command), logging and recording its PID."""
    pid = spawn_detached(argv, directory / f"{name}.log")
    (directory / f"{name}.pid").write_text(f"{pid}\n")
    return pid


def read_pid(path: Path) -> int | None:
    """The PID in ``path`` (None when the file is missing or garbled)."""
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text())
    return None


def stop_background(directory: Path, echo=print, timeout: float = 10) -> None:
    """Stop the processes recorded in ``directory``'s pid files (only if still `ccc-sim`s)."""
    for pid_file in sorted(directory.glob("*.pid")):
        pid = read_pid(pid_file)
        if pid is not None and any(b"ccc-sim" in part for part in cmdline(pid)):
            echo(f"stopping {pid_file.stem} (pid {pid})")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while is_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)


def load(config: LabConfig) -> LabCluster:
    """The running demo recorded in ``config``'s state dir (for `ccc-demo status`)."""
    path = config.state_dir / "demo" / "demo.json"
    if not path.exists():
        raise LabError(f"no lab demo in {config.state_dir} (start one: ccc-demo --lab)")
    record = json.loads(path.read_text())
    return LabCluster(
        config=config,
        urls=record["urls"],
        admin_password=record["admin_password"],
        verify=record["verify"],
        app_key_file=Path(record["app_key_file"]),
        github_admin_token=record["github_admin_token"],
        timing=Timing(**record["timing"]),
        tokens=seed_tokens(),
    )
