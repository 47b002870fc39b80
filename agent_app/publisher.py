"""Commit, push and open (or update) the pull request.

The checkout is the model's playground: anything in it may have been written by a command
Claude ran or by the repository's own scripts. So the agent's git works on it only through
its git directory, which lives outside the checkout and only the agent writes, with a fixed
configuration (agent_app.gitcmd); the branch is fetched from that git directory into the
agent's own mirror, and the push, with the task's token, goes from the mirror.

Everything here acts with the task's grant (agent_app.github_access): commits carry the
cluster's bot identity and credit whoever asked for the work; the push goes to the task's
branch only.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from github import Github

from agent_app.exceptions import GitHubRefused, PublishError
from agent_app.gitcmd import Git, GitError
from agent_app.github_access import Grant, TaskAccess
from agent_app.github_retry import patiently
from agent_app.redaction import Redactor
from agent_app.repo_config import REPO_CONFIG
from agent_app.workspace import TaskWorkspace
from cluster_core.github_client import github_client
from cluster_core.github_errors import classify

logger = logging.getLogger(__name__)
WORKFLOWS = ".github/workflows"
# How git says a push was refused because the branch has commits the push lacks.
BRANCH_MOVED = ("(fetch first)", "(non-fast-forward)")


def nested_repositories(checkout: Path) -> list[str]:
    """Folders below the checkout's top that hold a `.git` (links are not followed)."""
    found = []
    for folder, dirs, files in os.walk(checkout):
        if folder != str(checkout) and (".git" in dirs or ".git" in files):
            found.append(os.path.relpath(folder, checkout))
            dirs.clear()
        elif ".git" in dirs:
            dirs.remove(".git")
    return sorted(found)


@dataclass
class Commit:
    """What commit_all made: the new commit (None when nothing could be committed), and the
    paths it left out (workflow files, nested repositories)."""

    sha: str | None
    left_out: list[str]


@dataclass
class PullRequest:
    number: int
    url: str
    created: bool


class Publisher:
    """Everything that leaves the agent for GitHub, with one task's access."""

    def __init__(self, git: Git, access: TaskAccess, secrets: list[str] = ()) -> None:
        """``secrets``: what must never leave in a commit, a diff or a pull request."""
        self.git = git
        self.access = access
        self.secrets = list(secrets)
        self._client: Github | None = None
        self._client_token = ""

    @property
    def redact(self) -> Redactor:
        return Redactor([self.access.token(), *self.secrets])

    def _repo(self):
        """The task's repository, through a client with the current token."""
        grant = self.access.grant
        if self._client is None or self._client_token != grant.token:
            self.close()
            self._revoke(self.access.take_retired())  # renewed: the old tokens are not needed
            self._client = github_client(grant.api_url, grant.token)
            self._client_token = grant.token
        return self._client.get_repo(grant.repository)

    def close(self, revoke: bool = False) -> None:
        """Close the client; ``revoke``: also end the task's tokens on GitHub (an App's
        installation tokens, ``DELETE /installation/token``), so they are worth nothing after
        the task, whatever their expiry says."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if revoke:
            self._revoke([*self.access.take_retired(), self.access.held])

    def _revoke(self, grants: list[Grant]) -> None:
        for grant in grants:
            if grant.expires_at is None:  # token mode: the cluster's one token stays
                continue
            client = github_client(grant.api_url, grant.token)
            try:
                client.requester.requestJsonAndCheck("DELETE", "/installation/token")
            except Exception as exc:  # it expires within the hour anyway
                logger.warning("A task's GitHub token was not revoked: %s", classify(exc) or exc)
            finally:
                client.close()

    def clone_url(self) -> tuple[str, str]:
        """The repository's HTTPS clone URL and default branch."""

        def look_up() -> tuple[str, str]:
            repo = self._repo()
            return repo.clone_url, repo.default_branch

        return patiently("reading the repository", look_up)

    def protected(self, branch: str) -> bool:
        """Whether GitHub protects ``branch`` (rules on merging it)."""
        return patiently(
            "reading branch protection", lambda: self._repo().get_branch(branch).protected
        )

    def commit_all(self, workspace: TaskWorkspace, message: str) -> Commit:
        """Commit every change in the checkout that may be pushed; say what was left out."""

        def git(*args: str) -> str:
            try:
                return self._git_in(workspace, *args)
            except GitError as exc:
                raise PublishError(str(exc)) from exc

        # A folder with a `.git` of its own (a `git init` the model ran, a vendored clone) would
        # become a broken submodule, or stop `git add` altogether: it is left out.
        nested = nested_repositories(workspace.repo)
        if nested:
            logger.warning("Not committing nested repositories: %s", ", ".join(nested))
        git("add", "--all", "--", ".", *(f":(top,literal,exclude){path}" for path in nested))
        # Workflow files run with the repository's secrets once pushed: only where the
        # repository's own configuration (on its default branch, not in this checkout) says so.
        workflows = git("diff", "--cached", "--name-only", "--", WORKFLOWS).split()
        if workflows and not self._workflows_allowed(workspace):
            git("reset", "--quiet", "--", WORKFLOWS)
            logger.warning("Not committing workflow changes: %s", ", ".join(workflows))
        else:
            workflows = []
        left_out = [*(f"{n}/ (a nested repository)" for n in nested), *workflows]
        if not git("diff", "--cached", "--name-only").strip():
            return Commit(None, left_out)
        trailers = self.access.commit_trailers()
        message = self.redact(message).rstrip() + "\n" + (f"\n{trailers}" if trailers else "")
        git("commit", "--quiet", "--no-verify", "-m", message)
        return Commit(git("rev-parse", "HEAD").strip(), left_out)

    def _git_in(self, workspace: TaskWorkspace, *args: str) -> str:
        """git on the task's checkout with its git directory (kept outside the checkout), as
        the cluster's bot."""
        return self.git(
            *args, cwd=workspace.repo, git_dir=workspace.git_dir, author=self.access.grant.author
        )

    def _workflows_allowed(self, workspace: TaskWorkspace) -> bool:
        if not self.access.grant.may_change_workflows:
            return False  # GitHub would refuse the whole push
        try:
            text = self._git_in(workspace, "show", f"refs/remotes/origin/HEAD:{REPO_CONFIG}")
        except GitError:
            return False  # no configuration: not allowed
        try:
            return tomllib.loads(text).get("allow_workflow_changes") is True
        except tomllib.TOMLDecodeError:
            return False

    def push(self, mirror: Path, workspace: TaskWorkspace) -> str:
        """Bring the task's branch into the mirror and push it from there; returns the pushed
        commit.

        The new commits (their messages and diffs) are checked first: a change that holds a
        secret is not pushed, and stays on the agent host for an operator to look at. The
        coordinator confirms that this run still holds the task (TaskAccess.confirm). A branch
        that moved on GitHub meanwhile is merged in first; GitHub's refusal raises
        GitHubRefused; an outage is waited out (agent_app.github_retry).
        """
        branch = self.access.grant.branch
        self._refuse_secrets(workspace, branch)
        try:
            self.git(
                "fetch",
                "--quiet",
                "--no-tags",
                str(workspace.git_dir),
                f"+refs/heads/{branch}:refs/heads/{branch}",
                cwd=mirror,
            )
            # To the URL, not "origin": a mirror remote refuses single refspecs. Never --force:
            # what people pushed to the branch stays (merged in below when the branch moved).
            url = self.git("remote", "get-url", "origin", cwd=mirror).strip()
        except GitError as exc:
            raise PublishError(f"push of {branch} failed: {exc}") from exc
        ref = f"refs/heads/{branch}"
        self.access.confirm()  # this run still holds the task: else nothing is pushed

        def send() -> str:
            return self.git("push", "--quiet", url, f"{ref}:{ref}", cwd=mirror,
                            token=self.access.token())  # fmt: skip

        try:
            patiently(f"push of {branch}", send)
        except GitHubRefused as exc:
            if not any(sign in str(exc) for sign in BRANCH_MOVED):
                raise
            # Someone pushed to the branch since the task began: build on their work.
            self._merge_theirs(mirror, url, ref)
            self.access.confirm()
            patiently(f"push of {branch}", send)
        return self.git("rev-parse", ref, cwd=mirror).strip()

    def _merge_theirs(self, mirror: Path, url: str, ref: str) -> None:
        """Merge the branch as it is on GitHub into the task's work, in the mirror (no
        checkout: git merge-tree), so the push adds to what people pushed and never replaces
        it. A conflict stops the push: their change and the task's touch the same lines."""
        theirs = "refs/claude-cluster/theirs"
        patiently(f"fetching {ref}", lambda: self.git(
            "fetch", "--quiet", "--no-tags", url, f"+{ref}:{theirs}", cwd=mirror,
            token=self.access.token()))  # fmt: skip
        try:
            tree = self.git("merge-tree", "--write-tree", theirs, ref, cwd=mirror).split()[0]
        except GitError as exc:
            raise PublishError(
                f"{ref.removeprefix('refs/heads/')} moved on GitHub (someone pushed to it) and "
                "this task's change conflicts with theirs; nothing was pushed"
            ) from exc
        trailers = self.access.commit_trailers()
        message = "Merge the branch's new commits from GitHub" + (
            f"\n\n{trailers}" if trailers else ""
        )
        merge = self.git("commit-tree", tree, "-p", theirs, "-p", ref, "-m", message,
                         cwd=mirror, author=self.access.grant.author).strip()  # fmt: skip
        self.git("update-ref", ref, merge, cwd=mirror)
        logger.info("%s moved on GitHub: merged into the task's work as %s", ref, merge[:12])

    def _refuse_secrets(self, workspace: TaskWorkspace, branch: str) -> None:
        try:
            # The commits on the branch that the remote did not have when the task began.
            new = self._git_in(
                workspace, "log", "--patch", "--binary", "--format=%B", branch, "--not", "--remotes"
            )
        except GitError as exc:
            raise PublishError(f"cannot check the change before pushing: {exc}") from exc
        found = self.redact.findings(new)
        if found:
            raise PublishError(
                f"the change holds {', '.join(found)}; it was not pushed. The work stays on the "
                f"agent host in {workspace.root} for an operator to inspect"
            )

    def open_or_update_pr(self, base: str, title: str, body: str, draft: bool) -> PullRequest:
        """One pull request per branch: create it, or update the open one.

        ``draft``: whether the tests failed or could not run. A draft whose tests now pass is
        marked ready for review, and a ready one whose tests fail goes back to draft, as the
        body says (REST cannot change this: it is GitHub's GraphQL, through PyGithub).
        """
        grant = self.access.grant
        branch, owner = grant.branch, grant.repository.split("/", maxsplit=1)[0]
        redact = self.redact
        title, body = redact(title), redact(body)

        def open_or_update() -> PullRequest:
            repo = self._repo()
            for pull in repo.get_pulls(state="open", head=f"{owner}:{branch}"):
                pull.edit(body=body)
                if pull.draft and not draft:
                    pull.mark_ready_for_review()
                elif draft and not pull.draft:
                    pull.convert_to_draft()
                return PullRequest(pull.number, pull.html_url, created=False)
            pull = repo.create_pull(title=title, body=body, head=branch, base=base, draft=draft)
            return PullRequest(pull.number, pull.html_url, created=True)

        # A retry after a lost answer finds the pull request the first try opened.
        return patiently("opening the pull request", open_or_update)
