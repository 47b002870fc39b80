"""playbooks/preflight.yml on the example inventory, as an operator fills it: a missing or wrong
setting stops site.yml before it touches any host, with a message naming the setting."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "inventory" / "production.example"
pytestmark = pytest.mark.skipif(
    not (BIN / "ansible-playbook").exists(), reason="ansible-playbook is not installed"
)


@pytest.fixture
def site(tmp_path) -> Path:
    """The example inventory copied as README.md says, its vault filled from the example."""
    inventory = tmp_path / "inventory" / "site"
    shutil.copytree(EXAMPLE, inventory)
    vault = yaml.safe_load((inventory / "group_vars/all/vault.yml.example").read_text())
    vault = {key: f"test-{key}-0123456789" for key in vault}
    vault["vault_github_app_id"] = 123456
    (inventory / "group_vars/all/vault.yml").write_text(yaml.safe_dump(vault))
    return inventory


def edit(path: Path, **changes) -> None:
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))


def playbook(inventory: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a playbook; its stdout with lines unwrapped and YAML's doubled quotes undone."""
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_FORCE_COLOR="0")
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), f"playbooks/{name}", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    done.stdout = " ".join(done.stdout.split()).replace("''", "'")
    return done


def test_a_complete_inventory_passes_and_warns_that_github_cannot_reach_the_coordinator(site):
    done = playbook(site, "preflight.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING: GitHub's webhook deliveries cannot reach coord1" in done.stdout
    # Every host was checked against the roles its groups run.
    checked = {
        "db1": ["common", "postgresql", "redis"],
        "coord1": ["common", "coordinator"],
        "agent1": ["common", "agent"],
    }
    for host, roles in checked.items():
        for role in roles:
            assert f"ok: [{host}] => (item={role})" in done.stdout, done.stdout
    assert "ok: [coord1] => (item=agent)" not in done.stdout


@pytest.mark.parametrize(
    "settings",
    [
        {"common_firewall_webhook_sources": ["192.30.252.0/22", "2606:50c0::/32"]},
        {"coordinator_poll_repositories": ["acme/api"]},
    ],
)
def test_webhook_sources_or_polling_silence_the_warning(site, settings):
    edit(site / "group_vars/all/main.yml", **settings)
    done = playbook(site, "preflight.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING: GitHub's webhook deliveries" not in done.stdout


def test_a_missing_secret_stops_site_yml_before_any_host_is_touched(site):
    edit(site / "group_vars/all/vault.yml", vault_anthropic_api_key=None)
    done = playbook(site, "site.yml")
    assert done.returncode != 0
    assert "vault_anthropic_api_key" in done.stdout + done.stderr, done.stdout + done.stderr
    # No play after the preflight started, and no host was contacted (192.0.2.x do not exist).
    assert "Prepare every cluster host" not in done.stdout
    assert "UNREACHABLE" not in done.stdout


def test_a_wrong_type_names_the_setting_and_the_role(site):
    hosts = yaml.safe_load((site / "hosts.yml").read_text())
    hosts["all"]["hosts"]["agent1"]["agent_max_tasks"] = "many"
    (site / "hosts.yml").write_text(yaml.safe_dump(hosts))
    done = playbook(site, "preflight.yml")
    assert done.returncode != 0
    assert "agent_max_tasks" in done.stdout and "agent1" in done.stdout, done.stdout


def test_an_inventory_without_a_coordinator_is_refused(site):
    hosts = yaml.safe_load((site / "hosts.yml").read_text())
    del hosts["all"]["children"]["coordinator"]
    (site / "hosts.yml").write_text(yaml.safe_dump(hosts))
    done = playbook(site, "preflight.yml")
    assert done.returncode != 0
    assert "needs at least one host in each of the groups" in done.stdout, done.stdout


def test_a_half_configured_github_app_is_refused(site):
    # An App id without the App's private key: App mode cannot start.
    edit(site / "group_vars/all/main.yml", coordinator_github_app={"id": 123456})
    done = playbook(site, "preflight.yml")
    assert done.returncode != 0
    assert "private_key" in done.stdout and "coordinator_github_app" in done.stdout, done.stdout
