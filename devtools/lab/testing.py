"""Lab hosts for tests: a context manager that always tears down, and a leftovers check."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from lab import network, prereqs
from lab.cgroups import hierarchies
from lab.config import LabConfig
from lab.manager import Lab, Progress, UpReport
from lab.spec import LabSpec, default_spec
from lab.ssh import Result

logger = logging.getLogger(__name__)


def isolated_config(**overrides: object) -> LabConfig:
    """A lab apart from the developer's: own state dir, bridge, /24, cgroup and inventory."""
    state_dir = Path(os.environ.get("CCC_LAB_TEST_STATE_DIR", "/var/lib/ccc-lab/pytest"))
    values: dict[str, object] = {
        "state_dir": state_dir,
        "bridge": os.environ.get("CCC_LAB_TEST_BRIDGE", "ccc-test0"),
        "network": os.environ.get("CCC_LAB_TEST_NETWORK", "10.214.0.0/24"),
        "cgroup_name": "ccc-lab-test",
        "host_prefix": "t",
        "inventory_path": state_dir / "hosts.yml",
    }
    values.update(overrides)
    return LabConfig.from_env(**values)


@dataclass
class LabSession:
    """A running test lab: the Lab, its spec, and shortcuts tests need."""

    lab: Lab
    spec: LabSpec
    report: UpReport

    @property
    def config(self) -> LabConfig:
        """The lab's configuration."""
        return self.lab.config

    @property
    def inventory(self) -> Path:
        """The generated Ansible inventory."""
        return self.config.inventory_path

    def address(self, name: str) -> str:
        """Address of host ``name``."""
        return self.lab.host(name).record.address

    def run(self, name: str, command: str, timeout: float = 120) -> Result:
        """Run ``command`` on host ``name`` over SSH (paramiko)."""
        return self.lab.ssh.run(self.address(name), command, timeout)


def skip_reason() -> str | None:
    """Why lab hosts cannot run here (not root, no nspawn, ...), or None."""
    return prereqs.unavailable_reason()


def leftovers(config: LabConfig) -> list[str]:
    """Everything of this lab still present on the machine (empty after a clean destroy)."""
    found = []
    if network.link_exists(config.bridge):
        found.append(f"bridge {config.bridge}")
    prefix = str(config.state_dir) + "/"
    with open("/proc/self/mounts") as mounts:
        found += [
            f"mount {line.split()[1]}" for line in mounts if line.split()[1].startswith(prefix)
        ]
    marker = prefix.encode()
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and marker in proc.joinpath("cmdline").read_bytes():
                found.append(f"process {proc.name}")
    found += [
        f"cgroup {mount / config.cgroup_name}"
        for mount in hierarchies()
        if (mount / config.cgroup_name).exists()
    ]
    if config.state_dir.exists():
        found.append(f"state {config.state_dir}")
    return found


@contextlib.contextmanager
def running_lab(
    spec: LabSpec | int = 2,
    config: LabConfig | None = None,
    progress: Progress | None = None,
) -> Iterator[LabSession]:
    """Bring a lab up and destroy it on the way out, whatever happened (failure, Ctrl-C, TERM)."""
    config = config or isolated_config()
    spec = default_spec(spec, config.host_prefix) if isinstance(spec, int) else spec
    with _exclusive(config):
        yield from _run_lab(spec, config, progress)


@contextlib.contextmanager
def _exclusive(config: LabConfig) -> Iterator[None]:
    # Two test runs on one machine would destroy each other's hosts as "leftovers": take turns.
    config.state_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(config.state_dir.parent / f".{config.state_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run_lab(spec: LabSpec, config: LabConfig, progress: Progress | None) -> Iterator[LabSession]:
    lab = Lab(config, progress)
    if config.state_dir.exists():  # a previous run was killed before it could clean up
        logger.warning("Lab %s: destroying leftovers of an earlier run", config.state_dir)
        lab.destroy()
    previous = signal.getsignal(signal.SIGTERM)

    def _on_term(signum: int, frame: FrameType | None) -> None:
        # Unwind through the finally below instead of dying with hosts left running.
        raise KeyboardInterrupt(f"signal {signum}")

    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_term)
    try:
        report = lab.up(spec)
        yield LabSession(lab, spec, report)
    finally:
        try:
            lab.destroy()
        finally:
            if previous in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def lab_cluster(
    scenarios: Path,
    scripted: list[dict[str, Any]],
    spec: LabSpec,
    config: LabConfig,
    cluster_class: type | None = None,
    **fields: Any,
) -> Iterator[Any]:
    """A lab converged by site.yml, with the simulators running, for a test module.

    The Claude simulator replays the demo's scenarios plus ``scripted`` (written to
    ``scenarios``); ``fields`` go to the LabCluster (``timing``, ``limit``, ...). Hosts and
    simulators are always torn down.
    """
    from lab.demo_cluster import SCENARIOS
    from lab.demo_lab import LabCluster

    for path in SCENARIOS.glob("*.yaml"):
        shutil.copy(path, scenarios)
    (scenarios / "tests.yaml").write_text(yaml.safe_dump({"scenarios": scripted}))
    with running_lab(spec, config) as session:
        cluster = (cluster_class or LabCluster)(
            config=session.config,
            spec=spec,
            scenarios=scenarios,
            echo=lambda message: print(f"==> {message}"),
            **fields,
        )
        try:
            cluster.provision()
            yield cluster
        finally:
            cluster.stop_simulators()
