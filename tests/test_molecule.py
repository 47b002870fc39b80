"""The Ansible roles and site.yml on real lab hosts (molecule), and ansible-lint on them.

Each molecule scenario boots its own lab (state dir, bridge and network from the
``CCC_LAB_*`` settings in its molecule.yml), converges, converges again expecting no change,
verifies behaviour and destroys the lab, also when a step fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab.config import LabConfig
from lab.testing import leftovers, skip_reason
from tests.conftest import PROJECT_ROOT

MOLECULE = PROJECT_ROOT / "molecule"
SCENARIOS = sorted(path.parent.name for path in MOLECULE.glob("*/molecule.yml"))
BIN = Path(sys.executable).parent


def _lab_config(scenario: str) -> LabConfig:
    """The lab a scenario's create.yml boots, from the CCC_LAB_* settings in its molecule.yml."""
    env = yaml.safe_load((MOLECULE / scenario / "molecule.yml").read_text())["provisioner"]["env"]
    return LabConfig.from_env(
        state_dir=Path(env["CCC_LAB_STATE_DIR"]),
        inventory_path=Path(env["CCC_LAB_INVENTORY"]),
        bridge=env["CCC_LAB_BRIDGE"],
        network=env["CCC_LAB_NETWORK"],
        cgroup_name=env["CCC_LAB_CGROUP"],
    )


def _environment() -> dict[str, str]:
    # molecule runs ansible-config and ansible-playbook from PATH (LAB_NOTES.md).
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", NO_COLOR="1")


def test_scenarios_have_their_own_labs():
    """No two scenarios share a bridge, network, state dir or host name (they may run at once)."""
    configs = [_lab_config(s) for s in SCENARIOS]
    for attribute in ("bridge", "network", "state_dir", "cgroup_name"):
        values = [getattr(c, attribute) for c in configs]
        assert len(set(values)) == len(values), attribute
    names = [
        host["name"]
        for s in SCENARIOS
        for host in yaml.safe_load((MOLECULE / s / "lab.yml").read_text())["hosts"]
    ]
    assert len(set(names)) == len(names)


@pytest.mark.slow
@pytest.mark.lab
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str):
    """`molecule test -s SCENARIO` passes: converge, idempotence (0 changed), verify."""
    reason = skip_reason()
    if reason:
        pytest.skip(f"lab hosts unavailable: {reason}")
    config = _lab_config(scenario)
    try:
        done = subprocess.run(
            [str(BIN / "molecule"), "test", "-s", scenario],
            cwd=PROJECT_ROOT,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=1400,
            check=False,
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-20_000:]
    finally:
        if leftovers(config):  # molecule destroys on failure too; this catches a killed run
            subprocess.run(
                [sys.executable, "-m", "lab.cli", "--state-dir", str(config.state_dir),
                 "--bridge", config.bridge, "--network", config.network, "destroy"],
                cwd=PROJECT_ROOT, env=dict(os.environ, CCC_LAB_CGROUP=config.cgroup_name),
                capture_output=True, check=False, timeout=300,
            )  # fmt: skip
    assert leftovers(config) == []


def test_ansible_lint_production_profile():
    """`ansible-lint` with no arguments at the root passes: .ansible-lint asks for the
    production profile, offline, over the whole repository."""
    lint = shutil.which("ansible-lint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if lint is None:
        pytest.skip("ansible-lint is not installed (add it to the dev extra)")
    done = subprocess.run(
        [lint, "--nocolor"],
        cwd=PROJECT_ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
