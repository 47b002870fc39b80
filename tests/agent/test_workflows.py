"""Workflow files run with the repository's secrets once pushed: the agent leaves them out
unless the repository's own configuration, on its default branch, allows them, and the task's
token may push them (a cluster's App token never may)."""

from __future__ import annotations

import subprocess

import pytest

from agent_app.gitcmd import Git
from agent_app.publisher import Publisher
from agent_app.workspace import Workspaces
from simulators.github.config import SimulatorConfig
from simulators.github.testing import TOKENS, running_simulator, sample_seed
from tests.agent.conftest import REPO, token_access
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
def test_an_app_token_never_pushes_workflow_files(cluster_factory, allowed_on_main):
    with cluster_factory([CHANGES_CI]) as cluster:
        if allowed_on_main:
            push_file(cluster, ".claude-cluster.toml", "allow_workflow_changes = true\n")
        cluster.agent()
        number = cluster.label_issue("Speed up CI", "the workflow is slow")
        task = cluster.wait_for(number)
        assert task["state"] == "review", task
        pr = cluster.gh().get_repo(REPO).get_pull(task["pr_number"])
        files = {f.filename for f in pr.get_files()}
        assert "docs/ci.md" in files and WORKFLOW not in files
        # Allowed by the repository or not, the task's token has no `workflows` permission:
        # GitHub would refuse the whole push, so the file is left out and the PR says why.
        assert f"`{WORKFLOW}`" in pr.body and "never carry the `workflows` permission" in pr.body
        kept = cluster.tmp / "agent-1" / "tasks" / f"task-{task['id']}" / "repo" / WORKFLOW
        assert kept.exists()  # left on the agent host, not thrown away


@pytest.mark.parametrize("allowed_on_main", [False, True])
def test_with_one_token_the_repositorys_configuration_decides(tmp_path, allowed_on_main):
    """Token mode: the token's scopes would let the push through, so the repository's own
    configuration on its default branch decides (never the checkout's copy of it)."""
    with running_simulator(SimulatorConfig(seed=sample_seed(), data_dir=tmp_path / "gh")) as (
        sim,
        url,
    ):
        if allowed_on_main:  # a maintainer allows it on main
            remote = url.replace("http://", f"http://x:{TOKENS['bob']}@") + f"/{REPO}.git"
            main = tmp_path / "main"
            subprocess.run(["git", "clone", "-q", remote, str(main)], check=True)
            (main / ".claude-cluster.toml").write_text("allow_workflow_changes = true\n")
            identity = ["-c", "user.name=Bob", "-c", "user.email=bob@example.com"]
            for args in (["add", "-A"], [*identity, "commit", "-qm", "Allow"], ["push", "-q"]):
                subprocess.run(["git", *args], cwd=main, check=True)
        workspaces = Workspaces(tmp_path / "agent", Git())
        access = token_access(url, "claude/issue-1-ci")
        workspace = workspaces.prepare(
            1, REPO, f"{url}/{REPO}.git", "claude/issue-1-ci", "main", access.token()
        )
        for path, text in ((WORKFLOW, "on: push\n"), (".claude-cluster.toml", SNEAKY_CONFIG)):
            (workspace.repo / path).parent.mkdir(parents=True, exist_ok=True)
            (workspace.repo / path).write_text(text)
        publisher = Publisher(workspaces.git, access)
        commit = publisher.commit_all(workspace, "Speed up CI")
        publisher.push(workspaces.mirror_path(REPO), workspace)
        pushed = sim.git.files(sim.repo(REPO), "main", "claude/issue-1-ci")
        names = {f["filename"] for f in pushed}
        assert (WORKFLOW in names) is allowed_on_main
        assert (WORKFLOW in commit.left_out) is not allowed_on_main
