"""The project's Ansible collection: `ansible-test sanity` passes (module documentation against
argument specs, imports, pylint, YAML), and module_defaults' action group holds every module
that talks to the coordinator."""

from __future__ import annotations

import importlib
import subprocess
import sys

import yaml

from tests.ansible_modules import COLLECTION
from tests.conftest import PROJECT_ROOT

PACKAGE = "ansible_collections.claude_code_cluster.cluster.plugins.modules"
MODULES = sorted(path.stem for path in (COLLECTION / "plugins/modules").glob("*.py"))


def test_ansible_test_sanity_passes():
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts/ansible-test-sanity")],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    report = "\n".join(line for line in done.stdout.splitlines() if "ERROR" in line)
    assert done.returncode == 0, report or done.stdout[-3000:] + done.stderr[-3000:]
    assert 'Running sanity test "validate-modules"' in done.stdout


def documented_fragments(module_name: str) -> list[str]:
    module = importlib.import_module(f"{PACKAGE}.{module_name}")
    return yaml.safe_load(module.DOCUMENTATION).get("extends_documentation_fragment", [])


def test_the_coordinator_action_group_holds_every_module_that_takes_its_options():
    runtime = yaml.safe_load((COLLECTION / "meta/runtime.yml").read_text())
    group = sorted(runtime["action_groups"]["coordinator"])
    with_api_options = [
        name
        for name in MODULES
        if "claude_code_cluster.cluster.cluster_api" in documented_fragments(name)
    ]
    assert group == with_api_options
    assert "cluster_agent_info" in group and "cluster_inventory" not in group
