"""Scaling on lab hosts: add_agent.yml and remove_agent.yml on a live cluster, modules run twice.

t1: PostgreSQL, Redis, coordinator; t2: an agent (backend, general; one task at a time); t3: a
spare host, booted and defined in the inventory with its agent_* variables but in no group.
site.yml converges t1 and t2 only, so t3 is as fresh as a new machine. The lab tests share the
module's cluster and run in file order: the first adds t3, the second removes whichever agent is
busy, the third runs each cluster module twice against the coordinator.

A warm stop of claude-agent lets a running task finish for the agent's stop_timeout_seconds
(90 s by default) before handing it back; the lab's agents get 5 s, so removing a busy agent
hands its task back instead of waiting for it.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import yaml

from lab.demo_cluster import ISSUES
from lab.demo_lab import LabCluster, Timing
from lab.inventory import build_inventory
from lab.spec import HostSpec, LabSpec, parse_spec
from lab.state import HostRecord
from lab.testing import isolated_config, lab_cluster, skip_reason
from tests.conftest import PROJECT_ROOT
from tests.test_e2e_lab import (
    MEMO,
    agent_states,
    assert_one_pull_request,
    memo,
    running_task,
    wait_until,
)

ADD_AGENT = PROJECT_ROOT / "playbooks" / "add_agent.yml"
REMOVE_AGENT = PROJECT_ROOT / "playbooks" / "remove_agent.yml"
MODULES_TWICE = PROJECT_ROOT / "tests" / "playbooks" / "modules_twice.yml"
# The docs issue of the demo: routed to `documentation`, which only the spare host serves.
DOCS_ISSUE = ISSUES[1]


def scaling_spec(prefix: str, spare_roles: tuple[str, ...] = ()) -> LabSpec:
    """PREFIX1: services; PREFIX2: agent (backend, general); PREFIX3: spare (documentation,
    general), in no group or with ``spare_roles`` (the `spare` group)."""
    return LabSpec(
        (
            HostSpec(f"{prefix}1", ("database", "redis", "coordinator")),
            HostSpec(
                f"{prefix}2",
                ("agents",),
                vars={"agent_specialties": ["backend", "general"], "agent_max_tasks": 1},
            ),
            HostSpec(
                f"{prefix}3",
                spare_roles,
                vars={"agent_specialties": ["documentation", "general"], "agent_max_tasks": 1},
            ),
        )
    )


def test_a_spec_host_without_roles_is_a_spare_host_in_no_group():
    spec = parse_spec(
        {"hosts": [{"name": "a", "roles": ["agents"]},
                   {"name": "s", "roles": [], "agent_specialties": ["general"]}]}
    )  # fmt: skip
    assert spec.hosts[1].roles == ()
    config = isolated_config()
    records = [
        HostRecord(h.name, config.host_address(i), list(h.roles), h.vars)
        for i, h in enumerate(spec.hosts, start=1)
    ]
    inventory = build_inventory(records, config)["all"]
    assert inventory["hosts"]["s"]["agent_specialties"] == ["general"]
    assert all("s" not in group["hosts"] for group in inventory["children"].values())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """t1 and t2 converged by site.yml, t3 spare; simulators and hosts always torn down."""
    reason = skip_reason()
    if reason:
        pytest.skip(f"lab hosts unavailable: {reason}")
    config = isolated_config()
    prefix = config.host_prefix
    with lab_cluster(
        tmp_path_factory.mktemp("scenarios"),
        [MEMO],
        scaling_spec(prefix),
        config,
        timing=Timing(lease_seconds=15, heartbeat_seconds=3, stop_seconds=5),
        limit=f"{prefix}1,{prefix}2",
    ) as cluster:
        yield cluster


def inventory_file(cluster: LabCluster) -> dict:
    """The lab's inventory file as it is now (the playbooks edit it)."""
    return yaml.safe_load(cluster.config.inventory_path.read_text())["all"]


def agents_group(cluster: LabCluster) -> list[str]:
    """Hosts of the inventory file's agents group."""
    return list(inventory_file(cluster)["children"]["agents"]["hosts"] or {})


def states_or_none(cluster: LabCluster) -> dict[str, str] | None:
    """agent_states, or None while the coordinator's firewall is being reloaded."""
    try:
        return agent_states(cluster)
    except requests.RequestException:
        return None


@pytest.mark.slow
@pytest.mark.lab
def test_added_agent_host_claims_a_task_only_it_can_serve(cluster):
    agent, spare = cluster.spec.hosts[1].name, cluster.spec.hosts[2].name
    assert agent_states(cluster) == {agent: "idle"}
    assert spare in inventory_file(cluster)["hosts"]
    assert agents_group(cluster) == [agent]

    # The playbook ends by waiting for "idle" itself; polling alongside times the moment.
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(cluster.run, ADD_AGENT, {"host": spare})
        wait_until(
            f"{spare} idle",
            lambda: run.done() or (states_or_none(cluster) or {}).get(spare) == "idle",
            timeout=900,
        )
        seconds = time.monotonic() - started
        log = run.result()
    print(f"inventory edit to agent idle: {seconds:.1f}s")
    # The agent role restarts the agent it has just started (its handlers), then waits again.
    print(f"add_agent.yml, start to end: {time.monotonic() - started:.1f}s")
    # The recap, with the slowest tasks under ANSIBLE_CALLBACKS_ENABLED=profile_tasks (the log
    # goes with the lab).
    print(log.read_text().partition("PLAY RECAP")[2])
    assert agent_states(cluster) == {agent: "idle", spare: "idle"}
    assert agents_group(cluster) == [agent, spare]

    number = cluster.file_issue(*DOCS_ISSUE)
    task = assert_one_pull_request(cluster, number, "README.md")
    assert (task["specialty"], task["agent"]) == ("documentation", spare)


@pytest.mark.slow
@pytest.mark.lab
def test_removed_busy_agent_task_finishes_on_the_other_agent(cluster):
    states = agent_states(cluster)
    assert sorted(states.values()) == ["idle", "idle"], states  # both agents, from the test above
    number = memo(cluster, "handover", 40)  # outlasts the drain (5 s) and the warm stop (5 s)
    victim = running_task(cluster, number)["agent"]
    (other,) = set(states) - {victim}

    cluster.run(REMOVE_AGENT, {"host": victim, "drain_timeout": 5})
    task = assert_one_pull_request(cluster, number, "memos/handover.txt")
    for move in task["history"]:
        print(f"  {move['at']} {move['from']} -> {move['to']} by {move['actor']}: {move['reason']}")
    assert task["agent"] == other, task
    moves = [h["to"] for h in task["history"]]
    assert "queued" in moves[moves.index("in_progress") :], task["history"]  # handed back

    assert victim not in agents_group(cluster)
    assert victim not in inventory_file(cluster)["hosts"]
    ssh = cluster.lab.ssh
    address = cluster.address(victim)
    assert ssh.run(address, "systemctl is-active claude-agent", 30).stdout.strip() == "inactive"
    assert ssh.run(address, "systemctl is-enabled claude-agent", 30).stdout.strip() == "disabled"
    assert victim not in agent_states(cluster)


@pytest.mark.slow
@pytest.mark.lab
def test_each_cluster_module_run_twice_reports_changed_then_not_changed(cluster, tmp_path):
    inventory = tmp_path / "hosts.yml"
    shutil.copy(cluster.config.inventory_path, inventory)
    before = inventory.read_text()
    # The playbook asserts changed, then not changed, for each module and state.
    cluster.run(MODULES_TWICE, {"probe_agent": "probe", "probe_inventory": str(inventory)})
    assert "probe" not in agent_states(cluster)
    assert yaml.safe_load(inventory.read_text()) == yaml.safe_load(before)
