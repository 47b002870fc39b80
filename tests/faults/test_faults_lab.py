"""The fault suite: one converged lab cluster at the shipped lease and heartbeat, one fault per
test, one after another (`make test-faults`, about 25 minutes; docs/RELIABILITY.md has the
figures of the last run).

Each test files memo issues whose conversation pauses in bash, strikes while a task runs, and
then asserts what the cluster promises: no task lost, no task run twice at once, exactly one
pull request per issue, and the API and admin pages telling the truth afterwards. Recovery
times are printed as ``figure:`` lines.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from lab.admin_api import ADMIN
from lab.demo_cluster import REPO
from lab.demo_lab import LabCluster, Timing, demo_spec
from lab.testing import isolated_config, lab_cluster, skip_reason
from tests.lab_checks import (
    MEMO,
    agent_states,
    assert_no_overlapping_runs,
    assert_nothing_pushed_by_a_stale_run,
    assert_one_pull_request,
    memo,
    running_task,
    task_of,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.faults]

# "Leave TAG alone": Claude changes nothing, so the task fails (and is retried).
NOTHING = {
    "name": "faults-nothing",
    "match": {"prompt": r"(?i)leave (?P<tag>[a-z0-9-]+) alone"},
    "turns": [["Nothing needs changing."]],
}
RUNNING = ("assigned", "in_progress", "testing")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One converged cluster for every fault, at the roles' shipped lease and heartbeat."""
    reason = skip_reason()
    if reason:
        pytest.skip(f"lab hosts unavailable: {reason}")
    config = isolated_config()
    with lab_cluster(
        tmp_path_factory.mktemp("scenarios"),
        [MEMO, NOTHING],
        demo_spec(config.host_prefix),
        config,
        timing=Timing(),
    ) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def healthy_afterwards(cluster):
    """After each fault: every host back, every agent idle, the API and the admin pages
    agreeing on every task's state, nothing left running."""
    yield
    for host in cluster.spec.hosts:
        if not cluster.lab.host(host.name).running:
            cluster.lab.restart(host.name)
    agents = [h.name for h in cluster.spec.hosts if "agents" in h.roles]
    wait_until(
        "every agent idle",
        lambda: all(agent_states(cluster).get(a) == "idle" for a in agents),
        timeout=180,
    )
    tasks = cluster.tasks()
    assert not [t for t in tasks if t["state"] in RUNNING], tasks
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task["state"]] = counts.get(task["state"], 0) + 1
    shown = admin_page_counts(cluster)
    assert {k: v for k, v in shown.items() if v} == counts


def admin_page_counts(cluster: LabCluster) -> dict[str, int]:
    """Tasks by state as the admin overview shows them (logged in through the form)."""
    base, session = cluster.urls["coordinator"], requests.Session()
    # Per request: a session's own verify would lose to REQUESTS_CA_BUNDLE in the environment.
    tls = {"verify": cluster.verify, "timeout": 10}
    form = session.get(f"{base}/admin/login", **tls).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    login = {"username": ADMIN, "password": cluster.admin_password, "csrf_token": token}
    referer = {"Referer": f"{base}/admin/login"}  # over HTTPS the CSRF check wants it
    assert session.post(f"{base}/admin/login", data=login, headers=referer, **tls).ok
    page = session.get(f"{base}/admin/", **tls).text
    session.close()
    cards = re.findall(r"<span>([a-z_]+)</span><b>(\d+)</b>", page.split('id="queues"')[0])
    return {state: int(count) for state, count in cards}


def figure(fault: str, seconds: float, note: str = "") -> None:
    print(f"figure: {fault}: {seconds:.1f}s {note}".rstrip())


def moved_off(cluster: LabCluster, number: int, victim: str) -> dict | None:
    """The task of ``number`` once it runs (or ran) on another agent than ``victim``."""
    task = task_of(cluster, number)
    alive = task["state"] in (*RUNNING, "review")
    return task if alive and task["agent"] not in (None, victim) else None


def journal(cluster: LabCluster, host: str, unit: str) -> str:
    return cluster.ssh(host, f"journalctl -u {unit} --no-pager -o cat | tail -n 400")


def stopped_run_logged(cluster: LabCluster, host: str) -> str | None:
    """The agent's log once it says it stopped a run whose attempt was over."""
    log = journal(cluster, host, "claude-agent")
    return log if "attempt over" in log else None


def coordinator_host(cluster: LabCluster) -> str:
    return cluster.host_of("coordinator").name


def wait_ready(cluster: LabCluster) -> None:
    cluster.wait_http(f"{cluster.urls['coordinator']}/readyz", "coordinator", timeout=120)


def assert_one_clean_run(cluster: LabCluster, number: int, tag: str) -> dict:
    task = assert_one_pull_request(cluster, number, f"memos/{tag}.txt")
    assert_no_overlapping_runs(task)
    assert_nothing_pushed_by_a_stale_run(cluster, task)
    return task


# Agents --------------------------------------------------------------------------------------


def test_kill_9_of_the_agent(cluster):
    number = memo(cluster, "kill-9", 20)
    victim = running_task(cluster, number)["agent"]
    killed = time.monotonic()
    cluster.ssh(victim, "systemctl kill --signal=SIGKILL claude-agent")
    # systemd starts the agent again; its new process hands the old one's task back at once.
    wait_until("the task queued again", lambda: task_of(cluster, number)["attempts"] >= 2, 90)
    figure("kill -9 of the agent", time.monotonic() - killed, "(to the task running again)")
    task = assert_one_clean_run(cluster, number, "kill-9")
    reasons = " ".join(h["reason"] for h in task["history"])
    assert f"agent {victim} restarted" in reasons, task["history"]


def test_crash_of_an_agent_host(cluster):
    number = memo(cluster, "host-crash", 30)
    victim = running_task(cluster, number)["agent"]
    crashed = time.monotonic()
    cluster.lab.crash(victim)
    moved = wait_until("the task on another agent", lambda: moved_off(cluster, number, victim), 90)
    figure("crash of an agent host", time.monotonic() - crashed, f"(on {moved['agent']})")
    task = assert_one_clean_run(cluster, number, "host-crash")
    assert "lease expired (held by" in " ".join(h["reason"] for h in task["history"])
    cluster.lab.restart(victim)


@pytest.mark.parametrize(
    ("fault", "strike", "undo"),
    [
        ("network cut of an agent host", "cut", "heal"),
        ("freeze of an agent host", "freeze", "thaw"),
    ],
    ids=["network-cut-and-heal", "freeze-and-thaw"],
)
def test_an_agent_host_out_of_touch_and_back(cluster, fault, strike, undo):
    number = memo(cluster, strike, 40)
    victim = running_task(cluster, number)["agent"]
    struck = time.monotonic()
    getattr(cluster.lab, strike)(victim)
    try:
        moved = wait_until("the task elsewhere", lambda: moved_off(cluster, number, victim), 90)
        figure(fault, time.monotonic() - struck, f"(on {moved['agent']})")
    finally:
        getattr(cluster.lab, undo)(victim)
    task = assert_one_clean_run(cluster, number, strike)
    # Back in touch, the agent learnt from its first heartbeat that its attempt was over, and
    # stopped without pushing.
    log = wait_until("the agent to stop its run", lambda: stopped_run_logged(cluster, victim), 120)
    assert f"Task {task['id']}: attempt over" in log, log[-3000:]


# Redis ----------------------------------------------------------------------------------------


def test_redis_restart(cluster):
    number = memo(cluster, "redis-restart", 15)
    running_task(cluster, number)
    restarted = time.monotonic()
    cluster.ssh(coordinator_host(cluster), "systemctl restart redis-server")
    after = memo(cluster, "after-redis-restart", 1)
    assert_one_clean_run(cluster, after, "after-redis-restart")
    figure("Redis restart", time.monotonic() - restarted, "(to a new issue's PR)")
    assert_one_clean_run(cluster, number, "redis-restart")


def test_loss_of_all_redis_keys(cluster):
    number = memo(cluster, "redis-flush", 15)
    running_task(cluster, number)
    host = coordinator_host(cluster)
    address = cluster.address(host)
    flushed = time.monotonic()
    cluster.ssh(host, f"redis-cli -h {address} --no-auth-warning --user default "
                      "--pass \"$(cat /etc/redis/default-user.secret)\" FLUSHALL")  # fmt: skip
    after = memo(cluster, "after-redis-flush", 1)
    assert_one_clean_run(cluster, after, "after-redis-flush")
    figure("loss of all Redis keys", time.monotonic() - flushed, "(to a new issue's PR)")
    assert_one_clean_run(cluster, number, "redis-flush")
    assert "Redis had lost the queues" in journal(cluster, host, "claude-coordinator-processor")


# The coordinator and PostgreSQL ------------------------------------------------------------------


def test_coordinator_restart(cluster):
    number = memo(cluster, "coordinator-restart", 15)
    running_task(cluster, number)
    restarted = time.monotonic()
    cluster.ssh(coordinator_host(cluster), "systemctl restart claude-coordinator")
    wait_ready(cluster)
    figure("coordinator restart", time.monotonic() - restarted, "(to ready)")
    task = assert_one_clean_run(cluster, number, "coordinator-restart")
    assert task["attempts"] == 1, task["history"]


def test_coordinator_down_longer_than_the_lease(cluster):
    number = memo(cluster, "coordinator-down", 45)
    before = running_task(cluster, number)
    host = coordinator_host(cluster)
    cluster.ssh(host, "systemctl stop claude-coordinator")
    time.sleep(35)  # longer than the 20 s lease
    cluster.ssh(host, "systemctl start claude-coordinator")
    wait_ready(cluster)
    # The agent kept working; it renewed its lease in the grace the restarted coordinator
    # gives, so the task was neither reaped nor run a second time.
    task = assert_one_clean_run(cluster, number, "coordinator-down")
    assert task["attempts"] == 1 and task["agent"] == before["agent"], task["history"]


def processor_status(cluster: LabCluster, host: str, unit: str) -> str:
    return cluster.ssh(host, f"systemctl show -p StatusText --value {unit}").strip()


def test_processor_killed_with_a_standby_beside_it(cluster):
    """As with a second coordinator host: the active processor dies (SIGKILL), the standby
    takes the lock and the work goes on; the killed one comes back as the standby."""
    host = coordinator_host(cluster)
    standby = "ccc-standby-processor"
    cluster.ssh(
        host,
        f"systemd-run --unit={standby} -p Type=notify -p User=claude-coordinator "
        "-p Environment=CCC_CONFIG=/etc/claude-coordinator/coordinator.toml "
        "/opt/claude-coordinator/venv/bin/ccc process",
    )
    try:
        wait_until(
            "a processor standing by",
            lambda: processor_status(cluster, host, standby).startswith("standby"),
            timeout=60,
        )
        number = memo(cluster, "processor-kill", 15)
        running_task(cluster, number)
        killed = time.monotonic()
        cluster.ssh(host, "systemctl kill -s KILL claude-coordinator-processor")
        wait_until(
            "the standby active",
            lambda: processor_status(cluster, host, standby) == "active",
            timeout=60,
            every=0.2,
        )
        figure("active processor SIGKILLed", time.monotonic() - killed, "(to the standby active)")
        after = memo(cluster, "after-processor-kill", 1)
        assert_one_clean_run(cluster, after, "after-processor-kill")
        assert_one_clean_run(cluster, number, "processor-kill")
        wait_until(
            "the killed processor back, standing by",
            lambda: processor_status(cluster, host, "claude-coordinator-processor").startswith(
                "standby"
            ),
            timeout=60,
        )
    finally:
        cluster.ssh(host, f"systemctl stop {standby}")
    wait_until(
        "the unit's processor active again",
        lambda: processor_status(cluster, host, "claude-coordinator-processor") == "active",
        timeout=60,
    )


def test_postgresql_restart(cluster):
    number = memo(cluster, "postgresql-restart", 15)
    running_task(cluster, number)
    restarted = time.monotonic()
    cluster.ssh(coordinator_host(cluster), "systemctl restart postgresql")
    after = memo(cluster, "after-postgresql-restart", 1)
    assert_one_clean_run(cluster, after, "after-postgresql-restart")
    figure("PostgreSQL restart", time.monotonic() - restarted, "(to a new issue's PR)")
    assert_one_clean_run(cluster, number, "postgresql-restart")


# Deliveries ------------------------------------------------------------------------------------

# Concurrent duplicate deliveries (GitHub's redeliveries and the same event under new delivery
# ids, ten at once): the end-to-end module's test, run here on this cluster too.
from tests.test_e2e_lab import test_duplicate_and_concurrent_webhooks_make_one_task  # noqa: E402, F401


def test_re_trigger_after_failure(cluster):
    number = cluster.file_issue("Leave retrigger alone", "Nothing to do.", ["claude"])
    failed = wait_until(
        "the task to fail and wait for its retry",
        lambda: (t := task_of(cluster, number)) and t["state"] == "failed" and t["retry_at"] and t,
        120,
    )
    issue = cluster.github().get_repo(REPO).get_issue(number)
    issue.remove_from_labels("claude")
    retriggered = time.monotonic()
    issue.add_to_labels("claude")
    again = wait_until(
        "the re-trigger to retry the same task now",
        lambda: (t := task_of(cluster, number)) and t["attempts"] >= 2 and t,
        60,
    )
    figure("re-trigger after failure", time.monotonic() - retriggered, "(to the retry's claim)")
    assert again["id"] == failed["id"]
    assert [t["id"] for t in cluster.tasks() if t["issue_number"] == number] == [failed["id"]]
    comments = [c.body for c in issue.get_comments()]
    assert any(c.startswith("Retrying now") for c in comments), comments
    cluster.api("POST", f"/api/v1/tasks/{failed['id']}/cancel", {"reason": "fault suite"})
    assert_no_overlapping_runs(cluster.api("GET", f"/api/v1/tasks/{failed['id']}"))
