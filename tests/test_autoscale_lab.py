"""The coordinator scaling the cluster itself, on lab hosts.

site.yml converges t1 (PostgreSQL, Redis, and a coordinator with coordinator_autoscale_enabled)
and t2 (an agent: backend, general, one task at a time); t3 is a spare host in the inventory
with its agent_* variables in the `spare` group. With t2 busy and work queued behind it, an admin
enables autoscaling (`ccc scale enable` on t1): the coordinator's own scheduled run of
playbooks/autoscale.yml, through ansible-runner over its own SSH key, adds t3, which takes the
queued task.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
import yaml

from lab.demo_lab import SHARED_INVENTORY, LabCluster, Timing
from lab.testing import isolated_config, lab_cluster, skip_reason
from tests.test_e2e_lab import (
    MEMO,
    assert_one_pull_request,
    memo,
    running_task,
    task_of,
    wait_until,
)
from tests.test_scaling_lab import scaling_spec

pytestmark = [pytest.mark.slow, pytest.mark.lab]
CCC = "/opt/claude-coordinator/venv/bin/ccc --config /etc/claude-coordinator/coordinator.toml"


@dataclass(kw_only=True)
class AutoscalingCluster(LabCluster):
    """The lab cluster with the coordinator set up to run the scaling playbooks."""

    def extra_vars(self, claude_key: str) -> dict:
        lab = super().extra_vars(claude_key)
        return {
            **lab,
            "coordinator_autoscale_enabled": True,
            "coordinator_autoscale_interval_seconds": 10,
            "coordinator_autoscale_group_vars_src": str(SHARED_INVENTORY / "group_vars"),
            # What the runs need besides the copied inventory: the lab's settings.
            "coordinator_autoscale_vars": {**lab, "autoscale_max_step": 1},
            "coordinator_settings": {"scaling": {"floors": {"backend": 1}}},
        }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = skip_reason()
    if reason:
        pytest.skip(f"lab hosts unavailable: {reason}")
    config = isolated_config()
    with lab_cluster(
        tmp_path_factory.mktemp("scenarios"),
        [MEMO],
        scaling_spec(config.host_prefix, spare_roles=("spare",)),
        config,
        cluster_class=AutoscalingCluster,
        timing=Timing(lease_seconds=15, heartbeat_seconds=3, stop_seconds=5),
    ) as cluster:
        yield cluster


@pytest.mark.timeout(1200)  # site.yml, then a scaling run that provisions a host
def test_the_coordinator_adds_a_spare_host_when_work_waits(cluster):
    coordinator, agent, spare = (h.name for h in cluster.spec.hosts)
    status = cluster.ssh(coordinator, f"{CCC} scale status")
    assert "autoscaling disabled" in status and "runs here: yes" in status, status

    busy = memo(cluster, "autoscale-busy", 240)
    assert running_task(cluster, busy)["agent"] == agent
    waiting = memo(cluster, "autoscale-waiting", 1)
    wait_until(
        "the second task queued", lambda: (task_of(cluster, waiting) or {}).get("state") == "queued"
    )

    enabled = time.monotonic()
    cluster.ssh(coordinator, f"{CCC} scale enable")
    try:
        wait_until(
            f"the waiting task on {spare}",
            lambda: task_of(cluster, waiting)["agent"] == spare,
            timeout=600,
        )
    finally:
        cluster.ssh(coordinator, f"{CCC} scale disable")
    seconds = time.monotonic() - enabled
    print(f"autoscaling enabled to the waiting task on the new agent: {seconds:.1f}s")
    assert_one_pull_request(cluster, waiting, "memos/autoscale-waiting.txt")

    # The run goes on after the agent's first claim (the role waits for it idle, then the plays
    # that remove nothing); its record says what it did once it ends.
    wait_until(
        "the scaling run's end",
        lambda: "running" not in cluster.ssh(coordinator, f"{CCC} scale status --runs 100"),
        timeout=300,
    )
    status = cluster.ssh(coordinator, f"{CCC} scale status --runs 100")
    print(status)
    assert f"schedule by system: successful +{spare}" in status, status
    copy = yaml.safe_load(
        cluster.ssh(coordinator, "cat /var/lib/claude-coordinator/inventory/hosts.yml")
    )
    assert spare in copy["all"]["children"]["agents"]["hosts"]
    # The control node still reaches the new host (its firewall lets both in).
    assert cluster.ssh(spare, "systemctl is-active claude-agent").strip() == "active"
