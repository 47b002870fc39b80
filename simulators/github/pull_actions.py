"""Pull requests, reviews, review comments and pushes: GitHub's rules and the webhooks they fire."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from simulators.github.exceptions import (
    NotFound,
    ValidationFailed,
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
    Review,
    ReviewComment,
    utcnow,
)

if TYPE_CHECKING:
    from simulators.github.git_repos import GitStorage
    from simulators.github.payloads import Payloads
    from simulators.github.simulator import Identity
    from simulators.github.store import Store

logger = logging.getLogger(__name__)

REVIEW_STATES = {
    "APPROVE": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
    "COMMENT": "COMMENTED",
}


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

    def _refresh_head(self, repo: Repo, issue: Issue) -> None:
        """Reopening needs the head branch; its tip becomes the head sha."""
        assert issue.pull is not None  # noqa: S101 (callers pass pulls)
        sha = self.git.branch_sha(repo, issue.pull.head_ref)
        if sha is None:
            raise custom_error("PullRequest", "state cannot be changed. The branch was deleted.")
        issue.pull.head_sha = sha

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

    # reviews

    def create_review(
        self,
        repo: Repo | str,
        actor: Identity | str,
        number: int,
        event: str | None = None,
        body: str = "",
        *,
        comments: list[dict] | None = None,
        commit_id: str | None = None,
    ) -> Review:
        """Submit a review (APPROVE, REQUEST_CHANGES or COMMENT), with optional line comments.

        Without ``event`` the review stays PENDING and fires nothing, as on GitHub.
        """
        repo = self.repo(repo)
        issue = self.pull(repo, number)
        self.require(actor, repo, Permission.READ)
        login = self._login(actor)
        if event is not None and event not in REVIEW_STATES:
            raise invalid_field("PullRequestReview", "event")
        if event in ("REQUEST_CHANGES", "COMMENT") and not body and not comments:
            raise ValidationFailed(
                {
                    "resource": "PullRequestReview",
                    "code": "custom",
                    "field": "body",
                    "message": f"Review body is required for {event}",
                },
                message="Unprocessable Entity",
            )
        if event in ("APPROVE", "REQUEST_CHANGES") and login.lower() == issue.user.lower():
            verb = "approve" if event == "APPROVE" else "request changes on"
            raise custom_error("PullRequestReview", f"Can not {verb} your own pull request")
        assert issue.pull is not None  # noqa: S101 (self.pull checked it)
        with self.store.lock:
            review = Review(
                id=self.store.next_id(),
                pull_number=number,
                user=login,
                state=REVIEW_STATES[event] if event else "PENDING",
                commit_id=commit_id or issue.pull.head_sha,
                body=body or "",
            )
            repo.reviews[review.id] = review
            line_comments = [
                self._add_review_comment(repo, issue, login, spec, review)
                for spec in comments or []
            ]
            if event is not None:
                self._announce_review(repo, issue, review, line_comments)
        return review

    def _announce_review(
        self, repo: Repo, issue: Issue, review: Review, comments: list[ReviewComment]
    ) -> None:
        payload = self.payloads.pull_request_review("submitted", repo, issue, review)
        self.emit(repo, "pull_request_review", payload)
        for comment in comments:
            payload = self.payloads.pull_request_review_comment("created", repo, issue, comment)
            self.emit(repo, "pull_request_review_comment", payload)

    def create_review_comment(
        self,
        repo: Repo | str,
        actor: Identity | str,
        number: int,
        body: str,
        *,
        path: str | None = None,
        line: int | None = None,
        side: str = "RIGHT",
        commit_id: str | None = None,
        in_reply_to: int | None = None,
    ) -> ReviewComment:
        """Comment on a line of the diff, or reply to a comment (``in_reply_to``).

        GitHub wraps a lone comment in a COMMENTED review; so do we, firing both events.
        """
        repo = self.repo(repo)
        issue = self.pull(repo, number)
        self.require(actor, repo, Permission.READ)
        login = self._login(actor)
        if not body:
            raise missing_field("PullRequestReviewComment", "body")
        if in_reply_to is not None:
            parent = repo.review_comments.get(in_reply_to)
            if parent is None or parent.pull_number != number:
                raise NotFound()
            spec = {"path": parent.path, "line": parent.line, "side": parent.side, "body": body}
            commit_id = parent.commit_id
        else:
            if not commit_id:
                raise missing_field("PullRequestReviewComment", "commit_id")
            spec = {"path": path, "line": line, "side": side, "body": body}
        with self.store.lock:
            review = Review(self.store.next_id(), number, login, "COMMENTED", commit_id or "")
            repo.reviews[review.id] = review
            comment = self._add_review_comment(repo, issue, login, spec, review)
            comment.in_reply_to_id = in_reply_to
            self._announce_review(repo, issue, review, [comment])
        return comment

    def _add_review_comment(
        self, repo: Repo, issue: Issue, login: str, spec: dict, review: Review
    ) -> ReviewComment:
        """Validate one line comment against the diff and store it."""
        assert issue.pull is not None  # noqa: S101 (callers pass pulls)
        path, body = spec.get("path"), spec.get("body")
        if not path:
            raise missing_field("PullRequestReviewComment", "path")
        if not body:
            raise missing_field("PullRequestReviewComment", "body")
        hunk = self._diff_hunk(repo, issue.pull, path)
        if hunk is None:
            raise ValidationFailed(
                {
                    "resource": "PullRequestReviewComment",
                    "code": "custom",
                    "field": "pull_request_review_thread.path",
                    "message": "could not be resolved",
                },
                message="Unprocessable Entity",
            )
        line = spec.get("line") or spec.get("position")
        comment = ReviewComment(
            id=self.store.next_id(),
            pull_number=issue.number,
            user=login,
            body=body,
            path=path,
            commit_id=review.commit_id,
            line=int(line) if line is not None else None,
            side=spec.get("side") or "RIGHT",
            review_id=review.id,
            diff_hunk=hunk,
        )
        repo.review_comments[comment.id] = comment
        return comment

    def _diff_hunk(self, repo: Repo, pull: PullData, path: str) -> str | None:
        """The diff of ``path`` in the pull request from its first hunk, None if it is unchanged."""
        try:
            diff = self.git.diff(repo, pull.base_sha, pull.head_sha, path)
        except GitError:
            return None
        start = diff.find("@@")
        return diff[start:].rstrip("\n") if start >= 0 else None

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
