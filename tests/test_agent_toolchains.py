"""The agent role installs the toolchains the inventory names, or those of the agent's
specialties: the Debian packages it asks apt for, resolved by Ansible itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(
    not (BIN / "ansible-playbook").exists(), reason="ansible-playbook is not installed"
)


def packages(**variables) -> list[str]:
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_STDOUT_CALLBACK="json",
    )
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), str(ROOT / "tests/playbooks/agent_toolchains.yml"),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps(variables)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tasks = json.loads(done.stdout)["plays"][0]["tasks"]
    return tasks[-1]["hosts"]["localhost"]["msg"]


def test_the_inventory_names_the_toolchains():
    found = packages(agent_toolchains=["node", "rust"], agent_toolchain_packages=["jq"])
    assert {"nodejs", "npm", "cargo", "rustc", "jq", "git", "bubblewrap"} <= set(found)
    assert "golang-go" not in found and "python3-pytest" not in found


def test_without_a_list_each_specialty_brings_its_own():
    frontend = packages(agent_specialties=["frontend"])
    assert {"nodejs", "npm", "make"} <= set(frontend) and "golang-go" not in frontend
    both = packages(agent_specialties=["frontend", "database"])
    assert {"nodejs", "python3-venv", "python3-pytest"} <= set(both)
    assert len(both) == len(set(both))  # each package once
    java = packages(agent_toolchains=["java"])
    assert {"default-jdk-headless", "maven"} <= set(java)
