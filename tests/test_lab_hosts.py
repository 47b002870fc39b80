"""Real lab hosts: boot, SSH, apt through the proxy, Ansible, faults, and a clean destroy."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.host import HostState, nspawn_pids
from lab.testing import LabSession, isolated_config, leftovers, running_lab, skip_reason

pytestmark = [pytest.mark.slow, pytest.mark.lab]

# Accepted `systemctl is-system-running` answers: "running" only. The image disables
# wait-online and apt timers, so a freshly booted minbase host has no failed unit; "degraded"
# would mean a real problem worth failing on.
BOOTED = "running"
# isolated_config() names the default spec's hosts t1, t2 (lab1.. belong to a developer's lab).
H1, H2 = "t1", "t2"


@pytest.fixture(scope="module")
def lab() -> Iterator[LabSession]:
    reason = skip_reason()
    if reason:
        pytest.skip(f"lab hosts unavailable: {reason}")
    config = isolated_config()
    started = time.monotonic()
    with running_lab(2, config) as session:
        print(
            f"\nlab up: {time.monotonic() - started:.1f}s "
            f"(image built now: {session.report.image_built})"
        )
        yield session
    assert leftovers(config) == []


def _ansible(lab: LabSession, *args: str) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "ansible"
    env = dict(os.environ, PATH=f"{binary.parent}:{os.environ['PATH']}", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(
        [str(binary), "-i", str(lab.inventory), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _reachable(lab: LabSession, name: str) -> bool:
    return lab.lab.ssh.reachable(lab.address(name), timeout=3)


def test_hosts_boot_to_running_systemd_over_ssh(lab: LabSession):
    for name in (H1, H2):
        result = lab.run(name, "systemctl is-system-running; hostname; cat /etc/machine-id")
        state, hostname, machine_id = result.stdout.split()
        assert state == BOOTED, lab.run(name, "systemctl --failed").stdout
        assert hostname == name
        assert len(machine_id) == 32
    ids = {lab.run(n, "cat /etc/machine-id").stdout for n in (H1, H2)}
    assert len(ids) == 2, "every host needs its own machine-id"


def test_preflight_checks_pass(lab: LabSession):
    checks = lab.lab.ssh.preflight(lab.address(H1))
    assert [c.name for c in checks] == ["reachable", "debian 12", "free disk", "clock"]
    assert all(c.ok for c in checks), checks


def test_hosts_reach_each_other_and_the_control_machine_by_name(lab: LabSession):
    result = lab.run(H2, f"getent hosts {H1} control")
    assert lab.address(H1) in result.stdout
    assert lab.config.bridge_address in result.stdout


def test_apt_update_through_the_proxy(lab: LabSession):
    result = lab.run(H1, "apt-get update -q", timeout=180)
    assert result.ok, result.stdout + result.stderr
    assert f"{lab.config.bridge_address}" in lab.run(H1, "apt-config dump | grep -i proxy").stdout


def test_https_to_the_package_index_through_the_pip_proxy(lab: LabSession):
    # pip.conf's proxy and the copied CA certificates: what `pip install` inside a host uses.
    from pip._internal.models.index import PyPI

    script = (
        "import configparser, urllib.request as u; c = configparser.ConfigParser(); "
        "c.read('/etc/pip.conf'); p = c['global']['proxy']; "
        "o = u.build_opener(u.ProxyHandler({'https': p})); "
        f"print(o.open('{PyPI.simple_url}/pip/', timeout=60).status)"
    )
    result = lab.run(H2, f'python3 -c "{script}"', timeout=90)
    assert result.stdout.strip() == "200", result.stderr


def test_ansible_ping_through_the_generated_inventory(lab: LabSession):
    done = _ansible(lab, "all", "-m", "ansible.builtin.ping")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == 2


def test_crash_makes_the_host_unreachable_and_restart_brings_it_back(lab: LabSession):
    lab.lab.crash(H2)
    assert lab.lab.host(H2).state() is HostState.STOPPED
    assert not _reachable(lab, H2)
    done = _ansible(lab, H2, "-m", "ansible.builtin.ping")
    assert done.returncode != 0
    assert "UNREACHABLE" in done.stdout
    assert lab.lab.restart(H2) == BOOTED
    result = lab.run(H2, "systemctl is-active ssh systemd-networkd")
    assert result.stdout.split() == ["active", "active"]
    assert lab.lab.host(H1).state() is HostState.RUNNING  # the other host was untouched


def test_cut_and_heal(lab: LabSession):
    lab.lab.cut(H2)
    try:
        assert lab.lab.host(H2).state() is HostState.CUT
        assert not _reachable(lab, H2)
        assert _reachable(lab, H1)
    finally:
        lab.lab.heal(H2)
    lab.lab.ssh.wait(lab.address(H2), timeout=30)
    assert lab.run(H2, "systemctl is-system-running").stdout.strip() == BOOTED


def test_freeze_and_thaw(lab: LabSession):
    lab.lab.freeze(H1)
    try:
        assert lab.lab.host(H1).state() is HostState.FROZEN
        assert not _reachable(lab, H1)
    finally:
        lab.lab.thaw(H1)
    lab.lab.ssh.wait(lab.address(H1), timeout=30)
    assert lab.lab.host(H1).state() is HostState.RUNNING


def test_hosts_stay_small(lab: LabSession):
    for row in lab.lab.status():
        print(f"{row.name}: {row.memory_bytes / 2**20:.1f} MiB PSS, systemd {row.system}")
        assert 0 < row.memory_bytes < 100 * 2**20


def test_destroy_leaves_nothing_behind():
    """A lab of its own, destroyed inside the test: no bridge, mount, process or cgroup left."""
    if reason := skip_reason():
        pytest.skip(f"lab hosts unavailable: {reason}")
    config = isolated_config(
        state_dir=Path("/var/lib/ccc-lab/pytest-destroy"),
        bridge="ccc-test1",
        network="10.215.0.0/24",
        cgroup_name="ccc-lab-test1",
        host_prefix="d",
    )
    before = set(nspawn_pids())
    with running_lab(1, config) as session:
        assert leftovers(config)  # the check does see a live lab
        assert session.lab.host("d1").running
    assert leftovers(config) == []
    assert set(nspawn_pids()) <= before
