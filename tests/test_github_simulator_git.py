"""Git over smart HTTP against the GitHub simulator, and the pull request flow built on it."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from pathlib import Path

import pytest
import requests
from github import Auth, Github
from github.GithubException import GithubException

from simulators.github import SimulatorConfig
from simulators.github.testing import (
    INSTALLATION_ID,
    TOKENS,
    WebhookReceiver,
    running_simulator,
    sample_seed,
)

SECRET = "hook-secret"


@pytest.fixture
def receiver():
    """A local webhook receiver."""
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def server(tmp_path, receiver):
    """The simulator with the sample seed, its private repo hooked to ``receiver``."""
    seed = sample_seed()
    seed["repos"][0]["hooks"] = [{"url": receiver.url, "secret": SECRET, "events": ["*"]}]
    with running_simulator(SimulatorConfig(seed=seed, data_dir=tmp_path / "data")) as running:
        yield running


@pytest.fixture
def git_env(tmp_path):
    """An environment where git never prompts and ignores the machine's configuration."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }


def git(env: dict, *args: str, cwd: Path | None = None, check: bool = True):
    """Run git; returns the completed process."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done


def remote(url: str, repo: str, user: str | None = None, token: str | None = None) -> str:
    """The clone URL of ``repo`` with Basic credentials in it."""
    host = url.removeprefix("http://")
    auth = f"{user}:{token}@" if token else ""
    return f"http://{auth}{host}/{repo}.git"


def commit_file(env: dict, work: Path, name: str, text: str) -> str:
    """Write and commit a file; returns the new HEAD sha."""
    (work / name).write_text(text)
    git(env, "add", name, cwd=work)
    git(env, "commit", "-q", "-m", f"Change {name}", cwd=work)
    return git(env, "rev-parse", "HEAD", cwd=work).stdout.strip()


@pytest.fixture
def gh(server):
    """PyGithub as bob (write access)."""
    _, url = server
    client = Github(
        base_url=f"{url}/api/v3",
        auth=Auth.Token(TOKENS["bob"]),
        seconds_between_requests=0,
        seconds_between_writes=0,
    )
    yield client
    client.close()


def test_clone_with_a_token(server, git_env, tmp_path):
    _, url = server
    as_app_user = remote(url, "acme/widgets", "x-access-token", TOKENS["carol"])
    git(git_env, "clone", "-q", as_app_user, str(tmp_path / "a"))
    assert (tmp_path / "a" / "README.md").read_text().startswith("# widgets")
    git(
        git_env,
        "clone",
        "-q",
        remote(url, "acme/widgets", "bob", TOKENS["bob"]),
        str(tmp_path / "b"),
    )
    git(git_env, "clone", "-q", remote(url, "acme/public-site"), str(tmp_path / "public"))
    assert (tmp_path / "public" / "index.html").exists()


def test_clone_without_valid_credentials_fails(server, git_env, tmp_path):
    _, url = server

    def clone(clone_url: str):
        return git(git_env, "clone", "-q", clone_url, str(tmp_path / "clone"), check=False)

    anonymous = clone(remote(url, "acme/widgets"))
    assert anonymous.returncode != 0
    assert "could not read Username" in anonymous.stderr  # git got a 401 challenge
    bad = clone(remote(url, "acme/widgets", "bob", "ghp_wrong"))
    assert bad.returncode != 0
    assert "Authentication failed" in bad.stderr
    outsider = clone(remote(url, "acme/widgets", "dave", TOKENS["dave"]))
    assert outsider.returncode != 0
    assert "not found" in outsider.stderr.lower()


def test_push_needs_write_permission(server, git_env, tmp_path):
    _, url = server
    work = tmp_path / "w"
    git(git_env, "clone", "-q", remote(url, "acme/widgets", "carol", TOKENS["carol"]), str(work))
    git(git_env, "checkout", "-q", "-b", "readers-branch", cwd=work)
    commit_file(git_env, work, "notes.txt", "hi\n")
    refused = git(git_env, "push", "-q", "origin", "readers-branch", cwd=work, check=False)
    assert refused.returncode != 0
    assert "403" in refused.stderr
    assert "Permission to acme/widgets.git denied to carol" in refused.stderr


def test_app_installation_token_clones_and_pushes(server, git_env, tmp_path):
    sim, url = server
    token = sim.installation_token(INSTALLATION_ID).value
    work = tmp_path / "w"
    git(git_env, "clone", "-q", remote(url, "acme/widgets", "x-access-token", token), str(work))
    git(git_env, "checkout", "-q", "-b", "claude/issue-1-fix", cwd=work)
    sha = commit_file(git_env, work, "fix.txt", "fixed\n")
    git(git_env, "push", "-q", "origin", "claude/issue-1-fix", cwd=work)
    assert sim.git.branch_sha(sim.repo("acme/widgets"), "claude/issue-1-fix") == sha


def test_pull_request_flow(server, gh, git_env, tmp_path, receiver):
    sim, url = server
    work = tmp_path / "w"
    git(git_env, "clone", "-q", remote(url, "acme/widgets", "bob", TOKENS["bob"]), str(work))
    git(git_env, "checkout", "-q", "-b", "feature", cwd=work)
    first = commit_file(git_env, work, "widgets/extra.py", "def triple(x):\n    return 3 * x\n")
    git(git_env, "push", "-q", "origin", "feature", cwd=work)

    repo = gh.get_repo("acme/widgets")
    with pytest.raises(GithubException) as raised:
        repo.create_pull(base="main", head="no-such-branch", title="x", body="y")
    assert raised.value.status == 422
    assert raised.value.data["errors"][0]["field"] == "head"

    pr = repo.create_pull(base="main", head="feature", title="Add triple", body="Closes #1")
    assert (pr.number, pr.head.sha, pr.head.ref, pr.base.ref) == (1, first, "feature", "main")
    assert (pr.commits, pr.additions, pr.changed_files, pr.mergeable) == (1, 2, 1, True)
    with pytest.raises(GithubException) as raised:
        repo.create_pull(base="main", head="acme:feature", title="again", body="")
    assert raised.value.status == 422
    assert "A pull request already exists for acme:feature." in str(raised.value.data)

    assert [p.number for p in repo.get_pulls(state="open", head="acme:feature")] == [1]
    assert list(repo.get_pulls(base="other")) == []
    assert [f.filename for f in pr.get_files()] == ["widgets/extra.py"]
    assert [c.sha for c in pr.get_commits()] == [first]
    listed = list(repo.get_issues())
    assert listed[0].pull_request is not None  # GitHub's issue list includes pull requests

    reviewer = Github(
        base_url=f"{url}/api/v3", auth=Auth.Token(TOKENS["alice"]), seconds_between_writes=0
    )
    try:
        alice_pr = reviewer.get_repo("acme/widgets").get_pull(1)
        review = alice_pr.create_review(
            body="Nearly there",
            event="REQUEST_CHANGES",
            comments=[{"path": "widgets/extra.py", "line": 2, "body": "Add a docstring"}],
        )
        assert review.state == "CHANGES_REQUESTED"
        line_comment = alice_pr.create_review_comment(
            "And a test", alice_pr.get_commits()[0], "widgets/extra.py", line=1
        )
        assert line_comment.line == 1
    finally:
        reviewer.close()
    reply = pr.create_review_comment_reply(line_comment.id, "Will do")
    assert reply.in_reply_to_id == line_comment.id
    with pytest.raises(GithubException) as raised:
        pr.create_review(body="LGTM", event="APPROVE")  # own pull request
    assert raised.value.status == 422

    reviews = [(r.user.login, r.state) for r in pr.get_reviews()]
    # A lone line comment or reply is wrapped in a COMMENTED review, as GitHub does.
    assert reviews == [
        ("alice", "CHANGES_REQUESTED"),
        ("alice", "COMMENTED"),
        ("bob", "COMMENTED"),
    ]
    bodies = [c.body for c in pr.get_review_comments()]
    assert bodies == ["Add a docstring", "And a test", "Will do"]
    pr.create_issue_comment("Thanks!")
    assert [c.body for c in pr.get_issue_comments()] == ["Thanks!"]

    # Pushing to the pull request's branch moves its head and fires `synchronize`.
    second = commit_file(git_env, work, "widgets/more.py", "X = 1\n")
    git(git_env, "push", "-q", "origin", "feature", cwd=work)
    assert repo.get_pull(1).head.sha == second
    assert sim.wait_idle()
    sync = [r for r in receiver.events("pull_request") if r.json()["action"] == "synchronize"]
    assert len(sync) == 1
    payload = sync[0].json()
    assert (payload["before"], payload["after"]) == (first, second)
    assert payload["pull_request"]["head"]["sha"] == second
    expected = hmac.new(SECRET.encode(), sync[0].body, hashlib.sha256).hexdigest()
    assert sync[0].headers["X-Hub-Signature-256"] == f"sha256={expected}"
    pushes = [r.json() for r in receiver.events("push")]
    assert [p["after"] for p in pushes] == [first, second]

    pr.edit(state="closed")
    closed = repo.get_pull(1)
    assert (closed.state, closed.merged) == ("closed", False)
    assert sim.wait_idle()
    actions = [r.json()["action"] for r in receiver.events("pull_request")]
    assert actions == ["opened", "synchronize", "closed"]
    kinds = {r.event for r in receiver.received}
    assert {"pull_request_review", "pull_request_review_comment", "issue_comment"} <= kinds


def test_merge_a_pull_request(server, gh, git_env, tmp_path, receiver):
    sim, url = server
    work = tmp_path / "w"
    git(git_env, "clone", "-q", remote(url, "acme/widgets", "bob", TOKENS["bob"]), str(work))
    git(git_env, "checkout", "-q", "-b", "docs", cwd=work)
    head = commit_file(git_env, work, "CHANGES.md", "- more docs\n")
    git(git_env, "push", "-q", "origin", "docs", cwd=work)
    repo = gh.get_repo("acme/widgets")
    pr = repo.create_pull(base="main", head="docs", title="Docs", body="")
    with pytest.raises(GithubException) as raised:
        pr.merge(sha="0" * 40)
    assert raised.value.status == 409

    status = pr.merge(merge_method="merge")
    assert status.merged is True
    merged = repo.get_pull(pr.number)
    assert (merged.state, merged.merged, merged.merged_by.login) == ("closed", True, "bob")
    assert merged.merge_commit_sha == status.sha
    assert pr.is_merged()
    git(git_env, "pull", "-q", "origin", "main", cwd=work)
    parents = git(git_env, "log", "-1", "--format=%P", "origin/main", cwd=work).stdout.split()
    assert parents[1] == head
    assert sim.wait_idle()
    closed = [r.json() for r in receiver.events("pull_request") if r.json()["action"] == "closed"]
    assert closed[0]["pull_request"]["merged"] is True
    with pytest.raises(GithubException) as raised:
        pr.merge()
    assert raised.value.status == 405


def test_draft_and_ready_for_review_through_graphql(server, gh, git_env, tmp_path, receiver):
    sim, url = server
    work = tmp_path / "w"
    git(git_env, "clone", "-q", remote(url, "acme/widgets", "bob", TOKENS["bob"]), str(work))
    git(git_env, "checkout", "-q", "-b", "wip", cwd=work)
    commit_file(git_env, work, "wip.txt", "wip\n")
    git(git_env, "push", "-q", "origin", "wip", cwd=work)
    pr = gh.get_repo("acme/widgets").create_pull(base="main", head="wip", title="WIP", draft=True)
    assert pr.draft

    pr.mark_ready_for_review()  # PyGithub: POST /api/graphql, markPullRequestReadyForReview
    assert pr.draft is False and gh.get_repo("acme/widgets").get_pull(pr.number).draft is False
    pr.mark_ready_for_review()  # already ready: no change, no second event
    pr.convert_to_draft()
    assert gh.get_repo("acme/widgets").get_pull(pr.number).draft is True
    sim.wait_idle()
    actions = [e.json()["action"] for e in receiver.events("pull_request")]
    assert actions == ["opened", "ready_for_review", "converted_to_draft"]

    # carol may read the repository, not change its pull requests.
    reader = Github(base_url=f"{url}/api/v3", auth=Auth.Token(TOKENS["carol"]))
    try:
        with pytest.raises(GithubException) as raised:
            reader.get_repo("acme/widgets").get_pull(pr.number).mark_ready_for_review()
        assert raised.value.data["errors"][0]["type"] == "FORBIDDEN"
    finally:
        reader.close()
    assert gh.get_repo("acme/widgets").get_pull(pr.number).draft is True

    graphql = f"{url}/api/graphql"
    document = {
        "query": "mutation Mutation($input: MarkPullRequestReadyForReviewInput!) "
        "{ markPullRequestReadyForReview(input: $input) { pullRequest { isDraft } } }",
        "variables": {"input": {"pullRequestId": "no-such-node"}},
    }
    anonymous = requests.post(graphql, json=document, timeout=5)
    assert anonymous.status_code == 401
    bob = {"Authorization": f"token {TOKENS['bob']}"}
    missing = requests.post(graphql, json=document, headers=bob, timeout=5).json()
    assert missing["errors"][0]["type"] == "NOT_FOUND"
    unknown = {"query": "mutation { mergePullRequest(input: $input) { clientMutationId } }"}
    answer = requests.post(graphql, json=unknown, headers=bob, timeout=5)
    assert answer.status_code == 200 and "doesn't exist" in answer.json()["errors"][0]["message"]
