"""Pull requests, merges and pushes: GitHub's rules and the webhooks they fire."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from simulators.github.exceptions import (
    Conflict,
    MethodNotAllowed,
    NotFound,
    custom_error,
    invalid_field,
    missing_field,
)
from simulators.github.git_repos import ZERO_SHA, GitError
from simulators.github.models import (
    Issue,
    Permission,
    PullData,
    Repo,
    utcnow,
)
from simulators.github.urls import node_id

if TYPE_CHECKING:
    from simulators.github.git_repos import GitStorage
    from simulators.github.payloads import Payloads
    from simulators.github.simulator import Identity
    from simulators.github.store import Store

logger = logging.getLogger(__name__)


class PullActions:
    """Pull request operations of :class:`~simulators.github.simulator.GitHubSimulator`."""

    store: Store
    git: GitStorage
    if TYPE_CHECKING:
        payloads: Payloads

        def repo(self, repo: Repo | str) -> Repo: ...
        def emit(self, repo: Repo, event: str, payload: dict) -> None: ...
        def issue(self, repo: Repo | str, number: int) -> Issue: ...
        def update_issue(
            self, repo: Repo | str, actor: Identity | str, number: int, fields: dict
        ) -> Issue: ...
        def _set_state(
            self, repo: Repo, issue: Issue, login: str, state: str, reason: str | None
        ) -> None: ...
        def require(
            self, who: Identity | str | None, repo: Repo, needed: Permission
        ) -> Permission: ...
        @staticmethod
        def _login(actor: Identity | str) -> str: ...

    def pull(self, repo: Repo | str, number: int) -> Issue:
        """Pull request ``number`` (an Issue with ``pull`` set), or NotFound."""
        issue = self.issue(repo, number)
        if issue.pull is None:
            raise NotFound()
        return issue

    def _branch(self, repo: Repo, spec: str, field: str) -> str:
        """The branch of ``spec`` ("branch" or "owner:branch"), which must be in ``repo``."""
        owner, _, branch = spec.rpartition(":")
        if owner and owner.lower() != repo.owner.lower():
            # Forks are not simulated: a head in another account cannot exist here.
            raise invalid_field("PullRequest", field)
        return branch

    def create_pull(
        self,
        repo: Repo | str,
        actor: Identity | str,
        title: str,
        *,
        head: str,
        base: str,
        body: str | None = None,
        draft: bool = False,
    ) -> Issue:
        """Open a pull request from branch ``head`` into ``base`` (both pushed to the repo)."""
        repo = self.repo(repo)
        self.require(actor, repo, Permission.READ)
        for value, field in ((title, "title"), (head, "head"), (base, "base")):
            if not value:
                raise missing_field("PullRequest", field)
        head_ref, base_ref = self._branch(repo, head, "head"), self._branch(repo, base, "base")
        head_sha = self.git.branch_sha(repo, head_ref)
        base_sha = self.git.branch_sha(repo, base_ref)
        if head_sha is None:
            raise invalid_field("PullRequest", "head")
        if base_sha is None:
            raise invalid_field("PullRequest", "base")
        if not self.git.commits(repo, base_sha, head_sha):
            raise custom_error("PullRequest", f"No commits between {base_ref} and {head_ref}")
        login = self._login(actor)
        with self.store.lock:
            for other in repo.issues.values():
                p = other.pull
                if p and other.state == "open" and (p.head_ref, p.base_ref) == (head_ref, base_ref):
                    raise custom_error(
                        "PullRequest", f"A pull request already exists for {repo.owner}:{head_ref}."
                    )
            issue = Issue(
                id=self.store.next_id(),
                number=repo.next_number(),
                title=title,
                body=body,
                user=login,
                pull=PullData(head_ref, head_sha, base_ref, base_sha, self.store.next_id(), draft),
            )
            repo.issues[issue.number] = issue
            payload = self.payloads.pull_request("opened", repo, issue, login)
            self.emit(repo, "pull_request", payload)
        return issue

    def update_pull(
        self, repo: Repo | str, actor: Identity | str, number: int, fields: dict
    ) -> Issue:
        """Apply ``fields`` (title, body, state, base) to a pull request."""
        repo = self.repo(repo)
        issue = self.pull(repo, number)
        fields = dict(fields)
        if "base" in fields:
            self.require(actor, repo, Permission.WRITE)
            base_ref = self._branch(repo, fields.pop("base"), "base")
            base_sha = self.git.branch_sha(repo, base_ref)
            if base_sha is None:
                raise invalid_field("PullRequest", "base")
            assert issue.pull is not None  # noqa: S101 (self.pull checked it)
            issue.pull.base_ref, issue.pull.base_sha = base_ref, base_sha
        if fields.get("state") == "open" and issue.state == "closed":
            self._refresh_head(repo, issue)
        fields.pop("state_reason", None)  # pull requests have none
        return self.update_issue(repo, actor, number, fields)

    def pull_by_node_id(self, node: str) -> tuple[Repo, Issue]:
        """The pull request whose GraphQL global id is ``node``, or NotFound."""
        with self.store.lock:
            for repo in self.store.repos.values():
                for issue in repo.issues.values():
                    if issue.pull is not None and node_id("PullRequest", issue.pull.id) == node:
                        return repo, issue
        raise NotFound(f"Could not resolve to a node with the global id of '{node}'")

    def set_draft(self, repo: Repo | str, actor: Identity | str, number: int, draft: bool) -> Issue:
        """Mark an open pull request ready for review, or convert it to a draft (GraphQL's
        markPullRequestReadyForReview / convertPullRequestToDraft); its author or anyone with
        write access may. A pull request already in that state is left as it is, no event."""
        repo = self.repo(repo)
        issue = self.pull(repo, number)
        login = self._login(actor)
        if login.lower() != issue.user.lower():
            self.require(actor, repo, Permission.WRITE)
        else:
            self.require(actor, repo, Permission.READ)
        assert issue.pull is not None  # noqa: S101 (self.pull checked it)
        if issue.state != "open":
            raise custom_error("PullRequest", "Pull request is closed")
        with self.store.lock:
            if issue.pull.draft == draft:
                return issue
            issue.pull.draft = draft
            issue.updated_at = utcnow()
            action = "converted_to_draft" if draft else "ready_for_review"
            self.emit(repo, "pull_request", self.payloads.pull_request(action, repo, issue, login))
        return issue

    def _refresh_head(self, repo: Repo, issue: Issue) -> None:
        """Reopening needs the head branch; its tip becomes the head sha."""
        assert issue.pull is not None  # noqa: S101 (callers pass pulls)
        sha = self.git.branch_sha(repo, issue.pull.head_ref)
        if sha is None:
            raise custom_error("PullRequest", "state cannot be changed. The branch was deleted.")
        issue.pull.head_sha = sha

    def merge_pull(
        self,
        repo: Repo | str,
        actor: Identity | str,
        number: int,
        *,
        commit_title: str | None = None,
        commit_message: str | None = None,
        merge_method: str = "merge",
        sha: str | None = None,
    ) -> Issue:
        """Merge a pull request into its base (merge commit, or one commit for squash/rebase),
        close it and fire `pull_request` closed with `merged` true and the base's `push`."""
        repo = self.repo(repo)
        issue = self.pull(repo, number)
        self.require(actor, repo, Permission.WRITE)
        pull = issue.pull
        assert pull is not None  # noqa: S101 (self.pull checked it)
        if merge_method not in ("merge", "squash", "rebase"):
            raise invalid_field("PullRequest", "merge_method")
        if issue.state != "open":
            raise MethodNotAllowed()
        if sha and sha != pull.head_sha:
            raise Conflict()
        login = self._login(actor)
        title = commit_title or (
            f"Merge pull request #{number} from {repo.owner}/{pull.head_ref}"
            if merge_method == "merge"
            else f"{issue.title} (#{number})"
        )
        message = f"{title}\n\n{commit_message}" if commit_message else title
        with self.store.lock:
            old = self.git.branch_sha(repo, pull.base_ref) or ZERO_SHA
            squash = merge_method != "merge"
            merged = self.git.merge(
                repo, pull.base_ref, pull.head_sha, message, author=login, squash=squash
            )
            if merged is None:
                raise MethodNotAllowed()
            pull.merged_at, pull.merged_by, pull.merge_commit_sha = utcnow(), login, merged
            self._set_state(repo, issue, login, "closed", None)
            self.on_push(repo, login, [(f"refs/heads/{pull.base_ref}", old, merged)])
        return issue

    def pull_commits(self, repo: Repo | str, number: int) -> list[dict]:
        """Commits of a pull request, oldest first (git's view)."""
        repo = self.repo(repo)
        pull = self.pull(repo, number).pull
        assert pull is not None  # noqa: S101 (self.pull checked it)
        return self.git.commits(repo, pull.base_sha, pull.head_sha)

    def pull_files(self, repo: Repo | str, number: int) -> list[dict]:
        """Files a pull request changes."""
        repo = self.repo(repo)
        pull = self.pull(repo, number).pull
        assert pull is not None  # noqa: S101 (self.pull checked it)
        return self.git.files(repo, pull.base_sha, pull.head_sha)

    # pushes

    def on_push(self, repo: Repo | str, pusher: str, changes: list[tuple[str, str, str]]) -> None:
        """Record a git push: ``changes`` are (ref, old sha, new sha).

        Fires `push`, moves the head of every open pull request on a pushed branch and fires its
        `synchronize`, as GitHub does after a push.
        """
        repo = self.repo(repo)
        with self.store.lock:
            repo.pushed_at = utcnow()
            for ref, old, new in changes:
                commits = [] if new == ZERO_SHA else self._pushed_commits(repo, old, new)
                self.emit(
                    repo,
                    "push",
                    self.payloads.push(
                        repo, ref, before=old, after=new, pusher=pusher, commits=commits
                    ),
                )
                if not ref.startswith("refs/heads/") or new == ZERO_SHA:
                    continue
                branch = ref.removeprefix("refs/heads/")
                for issue in repo.issues.values():
                    pull = issue.pull
                    if pull and issue.state == "open" and pull.head_ref == branch:
                        before, pull.head_sha = pull.head_sha, new
                        issue.updated_at = utcnow()
                        payload = self.payloads.pull_request(
                            "synchronize", repo, issue, pusher, before=before
                        )
                        self.emit(repo, "pull_request", payload)
                        logger.info("Repo %s: PR #%s synchronized", repo.full_name, issue.number)

    def _pushed_commits(self, repo: Repo, old: str, new: str) -> list[dict]:
        base = repo.default_branch if old == ZERO_SHA else old
        try:
            return self.git.commits(repo, base, new)
        except GitError:
            return []
