"""Pull request reviews and review comments: GitHub's rules and the webhooks they fire."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulators.github.exceptions import (
    NotFound,
    ValidationFailed,
    custom_error,
    invalid_field,
    missing_field,
)
from simulators.github.git_repos import GitError
from simulators.github.models import Issue, Permission, PullData, Repo, Review, ReviewComment

if TYPE_CHECKING:
    from simulators.github.git_repos import GitStorage
    from simulators.github.payloads import Payloads
    from simulators.github.simulator import Identity
    from simulators.github.store import Store

REVIEW_STATES = {
    "APPROVE": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
    "COMMENT": "COMMENTED",
}


class ReviewActions:
    """Review operations of :class:`~simulators.github.simulator.GitHubSimulator` (a mixin)."""

    store: Store
    git: GitStorage
    if TYPE_CHECKING:
        payloads: Payloads

        def repo(self, repo: Repo | str) -> Repo: ...
        def emit(self, repo: Repo, event: str, payload: dict) -> None: ...
        def pull(self, repo: Repo | str, number: int) -> Issue: ...
        def require(
            self, who: Identity | str | None, repo: Repo, needed: Permission
        ) -> Permission: ...
        @staticmethod
        def _login(actor: Identity | str) -> str: ...

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
