"""Commit, push and open (or update) the pull request.

The checkout is the model's playground: anything in its .git (hooks, filters, config) may have
been written by a command Claude ran. So the token never goes near it: commits there run with
hooks off and no credentials, the branch is fetched into the agent's own mirror, and the push
goes from the mirror, whose configuration only the agent writes.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import github

from agent_app.exceptions import PublishError
from agent_app.gitcmd import Git, GitError
from coordinator_app.github_gateway import github_client

logger = logging.getLogger(__name__)


def branch_name(issue_number: int, title: str) -> str:
    """``claude/issue-<n>-<slug>``."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-") or "task"
    return f"claude/issue-{issue_number}-{slug}"


@dataclass
class PullRequest:
    number: int
    url: str
    created: bool


class Publisher:
    """Everything that leaves the agent for GitHub."""

    def __init__(self, git: Git, api_url: str, token: str, author: tuple[str, str]) -> None:
        self.git = git
        self.github = github_client(api_url, token)
        self.author_name, self.author_email = author

    def close(self) -> None:
        self.github.close()

    def clone_url(self, repository: str) -> tuple[str, str]:
        """The repository's HTTPS clone URL and default branch."""
        repo = self.github.get_repo(repository)
        return repo.clone_url, repo.default_branch

    def commit_all(self, checkout: Path, message: str) -> str | None:
        """Commit every change in the checkout; returns the new commit, or None if clean."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(checkout),
            "LANG": "C.UTF-8",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": self.author_name,
            "GIT_AUTHOR_EMAIL": self.author_email,
            "GIT_COMMITTER_NAME": self.author_name,
            "GIT_COMMITTER_EMAIL": self.author_email,
        }
        safe = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]

        def git(*args: str) -> str:
            done = subprocess.run(
                ["git", *safe, *args],
                cwd=checkout,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                raise PublishError(f"git {args[0]}: {done.stderr.strip()[-500:]}")
            return done.stdout

        git("add", "--all")
        if not git("status", "--porcelain").strip():
            return None
        git("commit", "--quiet", "--no-verify", "-m", message)
        return git("rev-parse", "HEAD").strip()

    def push(self, mirror: Path, checkout: Path, branch: str) -> str:
        """Bring the branch into the mirror and push it from there; returns the pushed commit."""
        try:
            self.git(
                "fetch",
                "--quiet",
                "--no-tags",
                str(checkout),
                f"+refs/heads/{branch}:refs/heads/{branch}",
                cwd=mirror,
            )
            # To the URL, not "origin": a mirror remote refuses single refspecs. Not --force: a
            # follow-up builds on the branch, so anything else there is a real conflict.
            url = self.git("remote", "get-url", "origin", cwd=mirror).strip()
            self.git("push", "--quiet", url, f"refs/heads/{branch}:refs/heads/{branch}", cwd=mirror)
            return self.git("rev-parse", f"refs/heads/{branch}", cwd=mirror).strip()
        except GitError as exc:
            raise PublishError(f"push of {branch} failed: {exc}") from exc

    def open_or_update_pr(
        self, repository: str, branch: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequest:
        """One pull request per branch: create it, or update the open one.

        ``draft``: whether the tests failed or could not run. A draft whose tests now pass is
        marked ready for review, and a ready one whose tests fail goes back to draft, as the
        body says (REST cannot change this: it is GitHub's GraphQL, through PyGithub).
        """
        repo = self.github.get_repo(repository)
        owner = repository.split("/", maxsplit=1)[0]
        try:
            for pull in repo.get_pulls(state="open", head=f"{owner}:{branch}"):
                pull.edit(body=body)
                if pull.draft and not draft:
                    pull.mark_ready_for_review()
                elif draft and not pull.draft:
                    pull.convert_to_draft()
                return PullRequest(pull.number, pull.html_url, created=False)
            pull = repo.create_pull(title=title, body=body, head=branch, base=base, draft=draft)
        except github.GithubException as exc:
            raise PublishError(f"cannot open the pull request: {exc.status} {exc.data}") from exc
        return PullRequest(pull.number, pull.html_url, created=True)
