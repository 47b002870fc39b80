"""Webhook payloads in the shapes GitHub sends for each event."""

from __future__ import annotations

from simulators.github.issue_serializers import Serializer
from simulators.github.models import (
    App,
    Comment,
    Hook,
    Installation,
    Issue,
    Label,
    Repo,
    Review,
    ReviewComment,
)
from simulators.github.urls import node_id

ZEN = "Anything added dilutes everything else."


class Payloads:
    """Builds event payloads; every one ends with the `repository` and `sender` GitHub adds."""

    def __init__(self, serializer: Serializer) -> None:
        self.s = serializer

    def _envelope(self, repo: Repo, sender: str, **body: object) -> dict:
        """``body`` followed by repository, sender and, for a repository an organization owns,
        organization. (The App's copy also gets `installation`: see :meth:`for_installation`.)"""
        payload: dict = dict(body)
        payload["repository"] = self.s.repo(repo)
        owner = self.s.store.find_user(repo.owner)
        if owner is not None and owner.type == "Organization":
            payload["organization"] = self.s.organization(repo.owner)
        payload["sender"] = self.s.user(sender)
        return payload

    @staticmethod
    def for_installation(payload: dict, installation: Installation) -> dict:
        """``payload`` as the App's webhook gets it: with the installation it concerns."""
        reference = {"id": installation.id, "node_id": node_id("Installation", installation.id)}
        return {**payload, "installation": reference}

    def installation(
        self, action: str, app: App, installation: Installation, sender: str, repos: list[Repo]
    ) -> dict:
        """`installation` (created, deleted, suspend, unsuspend); created and deleted list the
        repositories the installation covers."""
        payload: dict = {
            "action": action,
            "installation": self.s.installation(app, installation),
        }
        if action in ("created", "deleted"):
            payload["repositories"] = [self.s.repo_summary(r) for r in repos]
        payload["sender"] = self.s.user(sender)
        return payload

    def installation_repositories(
        self,
        action: str,
        app: App,
        installation: Installation,
        sender: str,
        *,
        added: list[Repo],
        removed: list[Repo],
    ) -> dict:
        """`installation_repositories` (added, removed)."""
        return {
            "action": action,
            "installation": self.s.installation(app, installation),
            "repository_selection": installation.repository_selection.value,
            "repositories_added": [self.s.repo_summary(r) for r in added],
            "repositories_removed": [self.s.repo_summary(r) for r in removed],
            "requester": None,
            "sender": self.s.user(sender),
        }

    def ping(self, repo: Repo, hook: Hook, sender: str) -> dict:
        """`ping`, sent when a hook is created or pinged."""
        return {
            "zen": ZEN,
            "hook_id": hook.id,
            "hook": self.s.hook(repo, hook),
            **self._envelope(repo, sender),
        }

    def issues(
        self,
        action: str,
        repo: Repo,
        issue: Issue,
        sender: str,
        *,
        label: Label | None = None,
        changes: dict | None = None,
        assignee: str | None = None,
    ) -> dict:
        """`issues` (opened, edited, closed, reopened, labeled, unlabeled, assigned, ...)."""
        body: dict = {"action": action, "issue": self.s.issue(repo, issue, event=True)}
        if changes is not None:
            body["changes"] = changes
        if label is not None:
            body["label"] = self.s.label(repo, label)
        if assignee is not None:
            body["assignee"] = self.s.user(assignee)
        return self._envelope(repo, sender, **body)

    def issue_comment(
        self, action: str, repo: Repo, issue: Issue, comment: Comment, sender: str
    ) -> dict:
        """`issue_comment` (created, edited, deleted); also for comments on pull requests."""
        body = {
            "action": action,
            "issue": self.s.issue(repo, issue, event=True),
            "comment": self.s.comment(repo, comment),
        }
        return self._envelope(repo, sender, **body)

    def pull_request(
        self,
        action: str,
        repo: Repo,
        issue: Issue,
        sender: str,
        *,
        before: str | None = None,
        label: Label | None = None,
        changes: dict | None = None,
    ) -> dict:
        """`pull_request` (opened, edited, closed, reopened, synchronize, labeled, ...)."""
        body: dict = {"action": action, "number": issue.number}
        if action == "synchronize":
            assert issue.pull is not None  # noqa: S101 (only pulls synchronize)
            body["before"] = before
            body["after"] = issue.pull.head_sha
        if changes is not None:
            body["changes"] = changes
        body["pull_request"] = self.s.pull(repo, issue)
        if label is not None:
            body["label"] = self.s.label(repo, label)
        return self._envelope(repo, sender, **body)

    def pull_request_review(self, action: str, repo: Repo, issue: Issue, review: Review) -> dict:
        """`pull_request_review` (submitted, edited, dismissed)."""
        body = {
            "action": action,
            "review": self.s.review(repo, review),
            "pull_request": self.s.pull(repo, issue, full=False),
        }
        return self._envelope(repo, review.user, **body)

    def pull_request_review_comment(
        self, action: str, repo: Repo, issue: Issue, comment: ReviewComment
    ) -> dict:
        """`pull_request_review_comment` (created, edited, deleted)."""
        body = {
            "action": action,
            "comment": self.s.review_comment(repo, comment),
            "pull_request": self.s.pull(repo, issue, full=False),
        }
        return self._envelope(repo, comment.user, **body)

    def push(
        self, repo: Repo, ref: str, *, before: str, after: str, pusher: str, commits: list[dict]
    ) -> dict:
        """`push`, after a git push changed ``ref``."""
        repo_url = self.s.urls.repo_html(repo.full_name)
        rendered = [
            {
                "id": c["sha"],
                "tree_id": None,
                "distinct": True,
                "message": c["message"],
                "timestamp": c["committer_date"],
                "url": f"{repo_url}/commit/{c['sha']}",
                "author": {"name": c["author_name"], "email": c["author_email"]},
                "committer": {"name": c["committer_name"], "email": c["committer_email"]},
                "added": [],
                "removed": [],
                "modified": [],
            }
            for c in commits
        ]
        zero = "0" * 40
        body = {
            "ref": ref,
            "before": before,
            "after": after,
            "created": before == zero,
            "deleted": after == zero,
            "forced": False,
            "base_ref": None,
            "compare": f"{repo_url}/compare/{before[:12]}...{after[:12]}",
            "commits": rendered,
            "head_commit": rendered[-1] if rendered else None,
            "pusher": {"name": pusher, "email": None},
        }
        return self._envelope(repo, pusher, **body)
