"""README's "Running it on real machines", followed to the letter on lab hosts reached over SSH
like real machines: copy inventory/production.example, list the hosts, fill the vault from its
example and encrypt it, run the documented command with the documented options, add the
webhook, label an issue. Ansible connects as an ordinary user with sudo (`become`), as
docs/provisioning.md says it may, so the roles are proven without root logins too.

Only what a site must set differs from the example: the addresses, the connection user, where
GitHub and the Claude API are (the simulators on the lab bridge) and who may deliver webhooks.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from lab.demo_cluster import APP_ID, ISSUES
from lab.demo_lab import LabCluster, Timing
from lab.inventory import ssh_common_args
from lab.spec import HostSpec, LabSpec
from lab.testing import isolated_config, lab_cluster, leftovers, skip_reason
from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.lab]

EXAMPLE = PROJECT_ROOT / "inventory" / "production.example"
DEPLOY_USER = "deploy"
# The example's hosts, each on a lab host (agent2 and agent3 are left out: one agent will do).
MACHINES = {"db1": "t1", "coord1": "t2", "agent1": "t3"}


def spec() -> LabSpec:
    """Three machines in the example's shape: database and Redis, coordinator, one agent."""
    return LabSpec(
        (
            HostSpec("t1", ("database", "redis")),
            HostSpec("t2", ("coordinator",)),
            HostSpec("t3", ("agents",)),
        )
    )


@dataclass(kw_only=True)
class ProductionSite(LabCluster):
    """The lab cluster, converged from the operator's copy of the example inventory."""

    vault_password: str = ""
    # What site.yml printed (to look for secrets and warnings in it).
    site_output: str = ""

    @property
    def site(self) -> Path:
        """inventory/<site>, as README.md names the operator's copy."""
        return self.directory / "inventory" / "site"

    @property
    def home(self) -> Path:
        """The operator's home: the cluster CA's default place is under it."""
        return self.directory / "home"

    def converge(self, claude_key: str) -> None:
        self.add_deploy_user()
        self.write_inventory()
        self.write_vault(claude_key)
        self.verify = str(self.home / ".local/share/claude-code-cluster/site-ca/ca.crt")
        self.save()
        password_file = str(self.directory / "vault-password")
        done = self.ansible("ansible-playbook", "-i", str(self.site), "playbooks/site.yml",
                            "--vault-password-file", password_file)  # fmt: skip
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
        self.site_output = done.stdout + done.stderr

    def add_deploy_user(self) -> None:
        """An ordinary account with sudo on every machine, the lab's key authorized."""
        for host in MACHINES.values():
            self.ssh(
                host,
                f"useradd --create-home --shell /bin/bash {DEPLOY_USER} && "
                f"install -d -m 0700 -o {DEPLOY_USER} -g {DEPLOY_USER} /home/{DEPLOY_USER}/.ssh && "
                f"install -m 0600 -o {DEPLOY_USER} -g {DEPLOY_USER} /root/.ssh/authorized_keys "
                f"/home/{DEPLOY_USER}/.ssh/ && "
                f"echo '{DEPLOY_USER} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{DEPLOY_USER} && "
                f"chmod 0440 /etc/sudoers.d/{DEPLOY_USER}",
            )

    def write_inventory(self) -> None:
        shutil.copytree(EXAMPLE, self.site)  # step 1: copy the example
        hosts_file = self.site / "hosts.yml"
        inventory = yaml.safe_load(hosts_file.read_text())
        hosts = inventory["all"]["hosts"]
        for name in list(hosts):
            if name not in MACHINES:
                del hosts[name]
                inventory["all"]["children"]["agents"]["hosts"].pop(name, None)
        for name, lab_host in MACHINES.items():
            hosts[name]["ansible_host"] = self.address(lab_host)
        hosts["agent1"]["agent_specialties"] = ["backend", "documentation", "testing", "general"]
        # How Ansible reaches the machines: an ordinary user, sudo for the rest.
        inventory["all"]["vars"] = {
            "ansible_user": DEPLOY_USER,
            "ansible_become": True,
            "ansible_ssh_private_key_file": str(self.config.ssh_key),
            "ansible_ssh_common_args": ssh_common_args(self.config),
        }
        hosts_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
        main = self.site / "group_vars" / "all" / "main.yml"
        settings = yaml.safe_load(main.read_text())
        api = f"{self.urls['github']}/api/v3"
        settings.update(
            coordinator_github_api_url=api,
            agent_anthropic_base_url=self.urls["claude"],
            # GitHub (the simulator) delivers webhooks from the control machine.
            common_firewall_webhook_sources=[self.config.bridge_address],
            coordinator_lease_seconds=self.timing.lease_seconds,
            coordinator_heartbeat_seconds=self.timing.heartbeat_seconds,
        )
        main.write_text(yaml.safe_dump(settings, sort_keys=False))

    def write_vault(self, claude_key: str) -> None:
        """Step 2: vault.yml from its example, every value filled, then encrypted."""
        vault_dir = self.site / "group_vars" / "all"
        example = yaml.safe_load((vault_dir / "vault.yml.example").read_text())
        values = {key: secrets.token_urlsafe(24) for key in example}
        values.update(
            vault_anthropic_api_key=claude_key,
            # The cluster is the simulator's GitHub App, as the example inventory recommends.
            vault_github_app_id=APP_ID,
            vault_github_app_private_key=self.app_key_file.read_text(),
            vault_webhook_secret=self.webhook_secret,
            vault_admin_password=self.admin_password,
        )
        (vault_dir / "vault.yml").write_text(yaml.safe_dump(values))
        self.vault_password = secrets.token_urlsafe(16)
        password_file = self.directory / "vault-password"
        password_file.write_text(self.vault_password)
        password_file.chmod(0o600)
        done = self.ansible("ansible-vault", "encrypt", "--vault-password-file", str(password_file),
                            str(vault_dir / "vault.yml"))  # fmt: skip
        assert done.returncode == 0, done.stderr

    def ansible(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """An Ansible command run from the project, as the operator runs it."""
        self.home.mkdir(parents=True, exist_ok=True)
        bin_dir = Path(sys.executable).parent
        env = dict(os.environ, HOME=str(self.home), PATH=f"{bin_dir}:{os.environ['PATH']}",
                   ANSIBLE_NOCOLOR="1")  # fmt: skip
        argv = [str(bin_dir / command), *args]
        return subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                              timeout=1800, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[ProductionSite]:
    reason = skip_reason()
    if reason:
        pytest.skip(f"lab hosts unavailable: {reason}")
    config = isolated_config()
    started = time.monotonic()
    with lab_cluster(
        tmp_path_factory.mktemp("scenarios"), [], spec(), config, cluster_class=ProductionSite,
        timing=Timing(lease_seconds=15, heartbeat_seconds=3),
    ) as cluster:  # fmt: skip
        print(f"\nproduction site from the example inventory: {time.monotonic() - started:.0f}s")
        yield cluster
    assert leftovers(config) == []


def test_the_vault_is_encrypted_and_the_run_shows_no_secret_and_no_warning(site: ProductionSite):
    vault = (site.site / "group_vars/all/vault.yml").read_text()
    assert vault.startswith("$ANSIBLE_VAULT;")
    app_key = site.app_key_file.read_text().split("\n")[1]  # a line of the key's body
    for secret in (site.admin_password, site.webhook_secret, app_key):
        assert secret not in vault and secret not in site.site_output
    # No preflight warning (webhook sources are set), and no warning of Ansible's either.
    assert "webhook deliveries cannot reach" not in site.site_output
    warnings = [line for line in site.site_output.splitlines() if "[WARNING]" in line]
    assert warnings == [], warnings


def test_ansible_connected_as_the_deploy_user_and_no_root_login_was_used(site: ProductionSite):
    for host in MACHINES.values():
        log = site.ssh(host, "journalctl -u ssh --no-pager -o cat | grep 'Accepted publickey'")
        users = {line.split(" for ")[1].split()[0] for line in log.splitlines()}
        # Root logins are the test's own (creating the user, these checks); Ansible's are deploy's.
        assert DEPLOY_USER in users, log


def test_the_coordinator_admits_webhooks_from_the_listed_sources_only(site: ProductionSite):
    rules = site.ssh(MACHINES["coord1"], "nft list ruleset")
    assert "coordinator from github webhooks" in rules
    assert site.config.bridge_address in rules


def test_a_labelled_issue_becomes_a_ready_pull_request_with_passing_tests(site: ProductionSite):
    number = site.file_issue(*ISSUES[0])
    (task,) = site.wait([number], timeout=180)
    assert task["state"] == "review", task
    tests = task["result"]["tests"]
    # The toolchains of agent1's specialties (python among them) run the repository's tests.
    assert tests["status"] == "passed", tests
    pull = site.github().get_repo("octo-org/textstats").get_pull(task["pr_number"])
    assert not pull.draft and "passed" in pull.body
    ready = requests.get(f"{site.urls['coordinator']}/readyz", verify=site.verify, timeout=10)
    assert ready.status_code == 200
