"""What the lab tests on a converged cluster share: the memo scenario and the checks that
every task ends in exactly one pull request, with no run of it twice at once."""

from __future__ import annotations

import time
from collections.abc import Callable

from lab.demo_cluster import REPO
from lab.demo_lab import LabCluster

# "Keep a memo for TAG (pause N)": sleep N seconds in bash, then write memos/TAG.txt.
MEMO = {
    "name": "e2e-memo",
    "match": {"prompt": r"(?i)keep a memo for (?P<tag>[a-z0-9-]+) \(pause (?P<pause>\d+)\)"},
    "turns": [
        [{"tool_use": {"name": "bash", "input": {"command": "sleep ${pause}; echo paused"}}}],
        [
            {
                "tool_use": {
                    "name": "str_replace_based_edit_tool",
                    "input": {
                        "command": "create",
                        "path": "memos/${tag}.txt",
                        "file_text": "A memo for ${tag}.\n",
                    },
                }
            }
        ],
        ["Wrote the memo."],
    ],
}


def memo(cluster: LabCluster, tag: str, pause: int) -> int:
    """File a memo issue (routed to `general`: both agents may take it)."""
    return cluster.file_issue(f"Keep a memo for {tag} (pause {pause})", "Please.", ["claude"])


def task_of(cluster: LabCluster, number: int, repo: str = REPO) -> dict | None:
    """The newest task of ``repo``'s issue ``number`` (None before the webhook made one)."""
    return next(
        (t for t in cluster.tasks() if (t["repository"], t["issue_number"]) == (repo, number)),
        None,
    )


def wait_until(
    what: str, probe: Callable[[], object], timeout: float = 120, every: float = 0.5
) -> object:
    """Poll ``probe`` every ``every`` seconds until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def running_task(cluster: LabCluster, number: int) -> dict:
    """Wait until issue ``number``'s task runs on an agent (in_progress)."""

    def probe() -> dict | None:
        task = task_of(cluster, number)
        return task if task and task["state"] == "in_progress" else None

    return wait_until(f"#{number} in progress", probe)  # type: ignore[return-value]


def pulls_for(cluster: LabCluster, branch: str, repo: str = REPO) -> list:
    """Every PR (open or closed) of ``repo`` whose head is ``branch``."""
    pulls = cluster.github().get_repo(repo).get_pulls(state="all")
    return [pull for pull in pulls if pull.head.ref == branch]


def agent_states(cluster: LabCluster) -> dict[str, str]:
    """Agent name -> state, as the coordinator derives it."""
    return {a["name"]: a["state"] for a in cluster.api("GET", "/api/v1/agents")["items"]}


def assert_one_pull_request(
    cluster: LabCluster, number: int, *paths: str, repo: str = REPO
) -> dict:
    """``repo``'s issue ``number`` has one task, in review, with one PR whose branch holds
    ``paths``."""
    (task,) = cluster.wait([(repo, number)], 180)
    assert task["state"] == "review", task
    ref = (repo, number)
    tasks = [t for t in cluster.tasks() if (t["repository"], t["issue_number"]) == ref]
    assert [t["id"] for t in tasks] == [task["id"]]
    (pull,) = pulls_for(cluster, task["branch"], repo)
    assert pull.number == task["pr_number"]
    changed = {f.filename for f in pull.get_files()}
    assert set(paths) <= changed, changed
    return task


def assert_no_overlapping_runs(task: dict) -> None:
    """Every attempt after the first began only after the one before it was ended (reaped,
    handed back, restarted): the coordinator never had two runs of the task at once."""
    held = False
    for change in task["history"]:
        if change["to"] == "assigned":
            assert not held, f"task {task['id']} was assigned while another run held it"
            held = True
        elif change["to"] in ("queued", "review", "failed", "cancelled"):
            held = False


def assert_nothing_pushed_by_a_stale_run(cluster: LabCluster, task: dict) -> None:
    """The pull request holds no checkpoint commit: a run whose attempt was taken away pushes
    nothing (it would have pushed a "WIP:" commit before attempts had ids)."""
    (pull,) = pulls_for(cluster, task["branch"])
    messages = [c.commit.message for c in pull.get_commits()]
    assert not [m for m in messages if m.startswith("WIP")], messages
