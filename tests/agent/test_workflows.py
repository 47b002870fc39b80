"""Workflow files run with the repository's secrets once pushed: the agent leaves them out
unless the repository's own configuration, on its default branch, allows them."""

from __future__ import annotations

import pytest

from tests.agent.conftest import REPO
from tests.agent.test_agent_tasks import edit, push_file

WORKFLOW = ".github/workflows/ci.yml"
SNEAKY_CONFIG = 'allow_workflow_changes = true\ntest_command = "true"\n'

CHANGES_CI = {
    "name": "changes-ci",
    "match": {"prompt": "(?i)speed up ci"},
    "turns": [
        [edit("create", WORKFLOW, file_text="on: push\njobs: {}\n")],
        [edit("create", "docs/ci.md", file_text="CI runs on push.\n")],
        # The model (or the issue's author through it) tries to allow itself.
        [edit("create", ".claude-cluster.toml", file_text=SNEAKY_CONFIG)],
        "Sped up CI.",
    ],
}


@pytest.mark.parametrize("allowed_on_main", [False, True])
def test_workflow_changes_need_the_repositorys_permission(cluster_factory, allowed_on_main):
    with cluster_factory([CHANGES_CI]) as cluster:
        if allowed_on_main:
            push_file(cluster, ".claude-cluster.toml", "allow_workflow_changes = true\n")
        cluster.agent()
        number = cluster.label_issue("Speed up CI", "the workflow is slow")
        task = cluster.wait_for(number)
        assert task["state"] == "completed", task
        pr = cluster.gh().get_repo(REPO).get_pull(task["pr_number"])
        files = {f.filename for f in pr.get_files()}
        assert "docs/ci.md" in files
        if allowed_on_main:
            assert WORKFLOW in files and "Left out" not in pr.body
        else:
            assert WORKFLOW not in files
            assert f"`{WORKFLOW}`" in pr.body and "allow_workflow_changes = true" in pr.body
            kept = cluster.tmp / "agent-1" / "tasks" / f"task-{task['id']}" / "repo" / WORKFLOW
            assert kept.exists()  # left on the agent host, not thrown away
