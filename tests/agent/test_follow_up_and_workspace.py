"""Review feedback continues on the same branch and PR; the mirror cache spares downloads;
the agent's own API."""

from __future__ import annotations

import subprocess
import time

import requests

from agent_app.api import ApiServer, create_api
from agent_app.gitcmd import Git
from agent_app.workspace import Workspaces
from lab.services import free_port
from simulators.github.config import SimulatorConfig
from simulators.github.testing import TOKENS, running_simulator, sample_seed
from tests.agent.conftest import REPO
from tests.agent.test_agent_tasks import ADD_TRIPLE, NEVER_FIXED, edit

ADDRESS_REVIEW = {
    "name": "address-review",
    "match": {"prompt": "(?i)review feedback on PR"},
    "turns": [
        [
            edit(
                "str_replace",
                "widgets/__init__.py",
                old_str='"""Three times x."""',
                new_str='"""Three times x (for any number)."""',
            )
        ],
        "Clarified the docstring as the reviewer asked.",
    ],
}


def wait_for_follow_up(cluster, number: int) -> dict:
    """The follow-up task a review comment on issue ``number``'s PR made, once it ended."""
    deadline = time.monotonic() + 30
    while cluster.task(number)["kind"] != "follow_up" and time.monotonic() < deadline:
        time.sleep(0.3)
    return cluster.wait_for(number)


def test_review_comment_becomes_a_new_commit_on_the_same_pull_request(cluster_factory):
    with cluster_factory([ADD_TRIPLE, ADDRESS_REVIEW]) as cluster:
        cluster.agent()
        number = cluster.label_issue("Add a triple function", "widgets should offer triple(x)")
        first = cluster.wait_for(number)
        assert first["state"] == "completed", first
        pr = cluster.gh("bob").get_repo(REPO).get_pull(first["pr_number"])
        (commit,) = pr.get_commits()
        pr.create_review_comment(
            "Say it works for any number", commit, "widgets/__init__.py", line=5
        )
        follow_up = wait_for_follow_up(cluster, number)
        assert follow_up["kind"] == "follow_up" and follow_up["state"] == "completed", follow_up
        assert follow_up["branch"] == first["branch"]
        assert follow_up["pr_number"] == first["pr_number"]
        pr = cluster.gh("bob").get_repo(REPO).get_pull(first["pr_number"])
        assert pr.get_commits().totalCount == 2  # a new commit, same pull request
        pulls = cluster.gh().get_repo(REPO).get_pulls(state="all")
        assert [p.number for p in pulls if p.head.ref == first["branch"]] == [pr.number]


FIX_QUARTER = {
    "name": "fix-quarter",
    "match": {"prompt": "(?i)quarter divides by three"},
    "turns": [
        [edit("str_replace", "widgets/__init__.py", old_str="x / 3", new_str="x / 4")],
        "quarter() divides by four now; the tests pass.",
    ],
}


def test_a_draft_is_ready_for_review_once_a_follow_up_makes_the_tests_pass(cluster_factory):
    # The follow-up also names the issue's title: its own scenario must match first.
    with cluster_factory([FIX_QUARTER, NEVER_FIXED]) as cluster:
        cluster.agent()
        number = cluster.label_issue("Add a quarter function", "quarter(x) returns x / 4")
        first = cluster.wait_for(number)
        assert first["result"]["tests"]["status"] == "failed", first
        pr = cluster.gh("bob").get_repo(REPO).get_pull(first["pr_number"])
        assert pr.draft
        (commit,) = pr.get_commits()
        pr.create_review_comment(
            "quarter divides by three; make it four", commit, "widgets/__init__.py", line=7
        )
        follow_up = wait_for_follow_up(cluster, number)
        assert follow_up["state"] == "completed", follow_up
        assert follow_up["result"]["tests"]["status"] == "passed", follow_up
        pr = cluster.gh("bob").get_repo(REPO).get_pull(first["pr_number"])
        assert not pr.draft and "draft" not in pr.body
        # GitHub's own record of it: the ready_for_review event went to the webhook.
        actions = [d.action for d in cluster.github_sim.deliveries() if d.event == "pull_request"]
        assert actions.count("ready_for_review") == 1, actions


def test_the_second_task_on_a_repository_reuses_the_mirror(tmp_path):
    with running_simulator(SimulatorConfig(seed=sample_seed(), data_dir=tmp_path / "gh")) as (
        _sim,
        url,
    ):
        git = Git(TOKENS["cluster-bot"], "bot", "bot@example.invalid")
        workspaces = Workspaces(tmp_path / "agent", git)
        clone_url = f"{url}/{REPO}.git"
        first = workspaces.prepare(1, REPO, clone_url, "claude/issue-1-a", "main")
        mirror = workspaces.mirror_path(REPO)
        packs = sorted(p.name for p in (mirror / "objects" / "pack").glob("*.pack"))
        second = workspaces.prepare(2, REPO, clone_url, "claude/issue-2-b", "main")
        assert sorted(p.name for p in (mirror / "objects" / "pack").glob("*.pack")) == packs
        for workspace in (first, second):
            alternates = (workspace.git_dir / "objects" / "info" / "alternates").read_text()
            assert str(mirror) in alternates  # objects borrowed, not copied
            assert (workspace.repo / "widgets" / "__init__.py").exists()
            git_config = (workspace.git_dir / "config").read_text()
            assert TOKENS["cluster-bot"] not in git_config
        branch = subprocess.run(
            ["git", "branch", "--show-current"],
            cwd=second.repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert branch == "claude/issue-2-b"
        assert first.read_metadata()["task_id"] == 1


def test_finished_workspaces_are_removed_after_retention(tmp_path):
    workspaces = Workspaces(tmp_path, Git("t", "bot", "bot@example.invalid"))
    for task_id, age_days in ((1, 10), (2, 1), (3, None)):
        folder = tmp_path / "tasks" / f"task-{task_id}"
        folder.mkdir(parents=True)
        if age_days is not None:
            (folder / "metadata.json").write_text(
                f'{{"finished_at": {time.time() - age_days * 86400}}}'
            )
    assert workspaces.cleanup(retention_days=7) == [1]
    assert sorted(p.name for p in (tmp_path / "tasks").iterdir()) == ["task-2", "task-3"]
    assert workspaces.disk_usage()["tasks"] > 0


def test_agent_api(cluster_factory):
    with cluster_factory([]) as cluster:
        port = free_port()
        worker = cluster.agent(api_token="agent-api-token", api_port=port)
        api = ApiServer(create_api(worker, "agent-api-token"), "127.0.0.1", port)
        api.start()
        try:
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": "Bearer agent-api-token"}
            assert requests.get(f"{base}/health", timeout=5).json() == {"status": "ok"}
            assert requests.get(f"{base}/status", timeout=5).status_code == 401
            status = requests.get(f"{base}/status", headers=auth, timeout=5).json()
            assert status["name"] == "agent-1" and status["tasks"] == []
            metrics = requests.get(f"{base}/metrics", headers=auth, timeout=5).text
            assert "claude_agent_running_tasks 0.0" in metrics
            assert (
                requests.post(f"{base}/cancel_task/99", headers=auth, timeout=5).status_code == 404
            )
            refused = requests.post(
                f"{base}/execute_task", json={"task_id": 12345}, headers=auth, timeout=5
            )
            assert refused.status_code == 409  # the coordinator decides: no such queued task
        finally:
            api.stop()
