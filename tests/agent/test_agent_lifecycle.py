"""The agent process under signals, cancellation and API trouble."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta

from coordinator_app import tasks
from coordinator_app.models import utcnow
from tests.agent.conftest import REPO, VENV_BIN


def slow(seconds: int) -> dict:
    """A scenario that writes a file, then runs a command lasting ``seconds``, then finishes."""
    return {
        "name": f"slow-{seconds}",
        "match": {"prompt": f"(?i)slow work {seconds}s"},
        "turns": [
            [{"tool_use": {"name": "str_replace_based_edit_tool",
                           "input": {"command": "create", "path": "progress.md",
                                     "file_text": "half done\n"}}}],
            [{"tool_use": {"name": "bash",
                           "input": {"command": f"sleep {seconds}; echo slept"}}}],
            "Finished the slow work.",
        ],
    }  # fmt: skip


def wait_phase(cluster, number: int, state: str, timeout: float = 30) -> dict:
    return cluster.wait_for(number, states=(state,), timeout=timeout)


def wait_exit(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"agent did not exit within {timeout}s") from exc


def test_warm_stop_finishes_the_running_task(cluster_factory):
    with cluster_factory([slow(3)]) as cluster:
        agent = cluster.agent_process(stop_timeout_seconds=30)
        number = cluster.label_issue("Slow work 3s", "take your time")
        wait_phase(cluster, number, "in_progress")
        agent.send_signal(signal.SIGTERM)  # from another process, as systemd would
        assert wait_exit(agent, 40) == 0
        task = cluster.task(number)
        assert task["state"] == "review", task


def test_warm_stop_past_its_deadline_hands_the_task_back_with_the_work(cluster_factory):
    with cluster_factory([slow(60)]) as cluster:
        agent = cluster.agent_process(stop_timeout_seconds=2)
        number = cluster.label_issue("Slow work 60s", "take your time")
        wait_phase(cluster, number, "in_progress")
        time.sleep(1.5)  # the long command is running
        agent.send_signal(signal.SIGTERM)
        assert wait_exit(agent, 30) == 0
        task = cluster.task(number)
        assert task["state"] == "queued", task
        assert any("agent stopping" in h["reason"] and "work pushed" in h["reason"]
                   for h in task["history"])  # fmt: skip
        # The next agent continues from the pushed branch.
        branch = f"claude/issue-{number}-slow-work-60s"
        heads = cluster.gh().get_repo(REPO).get_branches()
        assert branch in [b.name for b in heads]


def test_cold_stop_kills_the_command_and_hands_back_at_once(cluster_factory):
    with cluster_factory([slow(120)]) as cluster:
        agent = cluster.agent_process(stop_timeout_seconds=120)
        number = cluster.label_issue("Slow work 120s", "take your time")
        wait_phase(cluster, number, "in_progress")
        time.sleep(1.5)
        started = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        agent.send_signal(signal.SIGTERM)  # second signal: cold stop
        assert wait_exit(agent, 30) == 0
        assert time.monotonic() - started < 30  # not the 120 s of the command or the deadline
        task = cluster.task(number)
        assert task["state"] == "queued", task


def test_cancellation_stops_a_running_command_within_seconds(cluster_factory):
    with cluster_factory([slow(120)]) as cluster:
        worker = cluster.agent()
        number = cluster.label_issue("Slow work 120s", "take your time")
        task = wait_phase(cluster, number, "in_progress")
        time.sleep(1.5)
        started = time.monotonic()
        answer = cluster.client.post(f"/api/v1/tasks/{task['id']}/cancel",
                                     headers=cluster.admin_headers)  # fmt: skip
        assert answer.status_code == 200
        deadline = time.monotonic() + 15
        while worker.tasks and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not worker.tasks, "the task still runs"
        assert time.monotonic() - started < 10
        assert cluster.task(number)["state"] == "cancelled"


def test_overloaded_api_is_retried_and_the_task_completes(cluster_factory):
    with cluster_factory([slow(0)]) as cluster:
        cluster.claude_sim.inject("overloaded", count=2)
        cluster.claude_sim.inject("rate_limit", count=1, retry_after=1)
        cluster.agent()
        number = cluster.label_issue("Slow work 0s", "quick")
        task = cluster.wait_for(number, timeout=60)
        assert task["state"] == "review", task
        statuses = [r.status for r in cluster.claude_sim.requests()]
        assert statuses[:3] == [529, 529, 429] and statuses[-1] == 200


def test_a_second_process_with_the_same_name_refuses_to_run(cluster_factory):
    with cluster_factory([]) as cluster:
        cluster.agent("twin")
        config = cluster.tmp / "twin.toml"
        time.sleep(2)  # the first one is heartbeating
        second = subprocess.run(
            [f"{VENV_BIN}/claude-agent", "--config", str(config), "run"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 1
        assert "another live agent is named twin" in second.stdout + second.stderr


def test_a_run_whose_lease_was_reaped_stops_unpushed_and_the_next_attempt_runs_alone(
    cluster_factory,
):
    """Defect 1 of issue 16: the coordinator reaped a lease the agent still worked under, the
    same agent claimed the task again, and both runs went on in one workspace. Now the first
    run stops, pushes and reports nothing, and the second starts once it has ended."""
    with cluster_factory([slow(5)]) as cluster:
        worker = cluster.agent()
        number = cluster.label_issue("Slow work 5s", "take your time")
        first = wait_phase(cluster, number, "in_progress")
        time.sleep(1.5)  # the command runs
        reaped = []
        deadline = time.monotonic() + 3
        while not reaped and time.monotonic() < deadline:
            # As the reaper does, a lease later; it skips a row a heartbeat holds at that
            # moment (SKIP LOCKED) and takes it on its next pass.
            with cluster.ccc.database.session() as session:
                reaped = tasks.reap_expired_leases(session, utcnow() + timedelta(minutes=5))
        assert [t.id for t in reaped] == [first["id"]]
        cluster.ccc.processor.notify()
        done = cluster.wait_for(number, timeout=60)
        assert done["state"] == "review" and done["attempts"] == 2, done
        deadline = time.monotonic() + 10  # the run ends just after its result is recorded
        while worker.tasks and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not worker.tasks
        # One pull request, from the second attempt; the first run pushed no checkpoint.
        repo = cluster.gh().get_repo(REPO)
        pulls = [p for p in repo.get_pulls(state="all") if p.head.ref == done["branch"]]
        assert len(pulls) == 1 and pulls[0].number == done["pr_number"]
        messages = [c.commit.message for c in pulls[0].get_commits()]
        assert not any(m.startswith("WIP") for m in messages), messages
        # Reports of the first attempt stopped at the reap: the history has one assignment
        # after it, by the same agent, and one completion.
        states = [h["to"] for h in done["history"]]
        assert states.count("assigned") == 2 and states.count("review") == 1, states


def test_a_stuck_report_does_not_cost_the_lease(cluster_factory, monkeypatch):
    """Heartbeats share no thread or lock with the work: a progress report hanging for longer
    than the lease (5 s here) leaves the task with its agent, in its first attempt."""
    from agent_app.coordinator_client import CoordinatorClient

    events = CoordinatorClient.events
    stuck = []

    def hangs_once(self, task_id, attempt, batch):
        if not stuck:
            stuck.append(task_id)
            time.sleep(8)
        return events(self, task_id, attempt, batch)

    monkeypatch.setattr(CoordinatorClient, "events", hangs_once)
    with cluster_factory([slow(1)]) as cluster:
        cluster.agent()
        number = cluster.label_issue("Slow work 1s", "take your time")
        done = cluster.wait_for(number, timeout=60)
        assert stuck, "no progress report was held up"
        assert done["state"] == "review" and done["attempts"] == 1, done["history"]
