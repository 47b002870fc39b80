"""Someone pushed to the task's branch while the task worked on it: the agent's push keeps their
commits (merged in, never forced over), and a change that conflicts with theirs is not pushed."""

from __future__ import annotations

import pytest

from agent_app.exceptions import PublishError
from agent_app.gitcmd import Git
from simulators.github.testing import TOKENS, push_commit, pygithub
from tests.agent.conftest import REPO

BRANCH = "claude/issue-1-x"  # the `checkout` fixture's


def branch_head(url: str) -> str:
    return pygithub(url, TOKENS["bob"]).get_repo(REPO).get_branch(BRANCH).commit.sha


def test_a_push_by_someone_else_is_kept_and_built_on(checkout):
    workspace, publisher, mirror, tmp = checkout
    url = publisher.access.grant.api_url.removesuffix("/api/v3")
    (workspace.repo / "first.md").write_text("the agent's first round\n")
    publisher.commit_all(workspace, "First round")
    publisher.push(mirror, workspace)
    theirs = push_commit(url, REPO, "bob", BRANCH, "bobs-fix.md", tmp)
    (workspace.repo / "second.md").write_text("the agent's second round\n")
    ours = publisher.commit_all(workspace, "Second round").sha

    pushed = publisher.push(mirror, workspace)

    assert branch_head(url) == pushed
    parents = Git()("log", "-1", "--format=%P", pushed, cwd=mirror).split()
    assert parents == [theirs, ours]
    files = Git()("ls-tree", "--name-only", pushed, cwd=mirror).split()
    assert {"first.md", "second.md", "bobs-fix.md"} <= set(files)
    message = Git()("log", "-1", "--format=%an <%ae>%n%B", pushed, cwd=mirror)
    assert message.startswith("cluster-bot <") and "new commits from GitHub" in message


def test_a_change_that_conflicts_with_theirs_is_not_pushed(checkout):
    workspace, publisher, mirror, tmp = checkout
    url = publisher.access.grant.api_url.removesuffix("/api/v3")
    (workspace.repo / "notes.md").write_text("the agent's first round\n")
    publisher.commit_all(workspace, "First round")
    publisher.push(mirror, workspace)
    theirs = push_commit(url, REPO, "bob", BRANCH, "notes.md", tmp)
    (workspace.repo / "notes.md").write_text("the agent's rewrite\n")
    publisher.commit_all(workspace, "Rewrite the notes")

    with pytest.raises(PublishError, match="conflicts with theirs; nothing was pushed"):
        publisher.push(mirror, workspace)

    assert branch_head(url) == theirs
