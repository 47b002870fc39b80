"""GitHub's JSON shapes for issues, comments, pull requests, reviews and review comments."""

from __future__ import annotations

from typing import Protocol

from simulators.github.models import Comment, Issue, IssueEvent, Repo, Review, ReviewComment
from simulators.github.serializers import BaseSerializer, reactions
from simulators.github.store import Store
from simulators.github.urls import Urls, iso, node_id


class DiffStats(Protocol):
    """What the serializer needs from git: the size of a pull request's change."""

    def diff_stats(self, repo: Repo, base: str, head: str) -> tuple[int, int, int, int]:
        """(commits, additions, deletions, changed_files) between ``base`` and ``head``."""
        ...


class Serializer(BaseSerializer):
    """Renders every record the simulator keeps as GitHub JSON."""

    def __init__(self, store: Store, urls: Urls, git: DiffStats | None = None) -> None:
        super().__init__(store, urls)
        self.git = git

    def author_association(self, repo: Repo, login: str) -> str:
        """OWNER, COLLABORATOR or NONE, as GitHub labels an author."""
        if login.lower() == repo.owner.lower():
            return "OWNER"
        if any(login.lower() == c.lower() for c in repo.collaborators):
            return "COLLABORATOR"
        return "NONE"

    def issue(self, repo: Repo, issue: Issue, *, event: bool = False) -> dict:
        """An issue; a pull request's issue carries the `pull_request` key as in issue lists.

        ``event``: the webhook flavour, which lacks the REST-only `closed_by`.
        """
        url = self.urls.issue(repo.full_name, issue.number)
        kind = "pull" if issue.pull else "issues"
        html = f"{self.urls.repo_html(repo.full_name)}/{kind}/{issue.number}"
        assignees = [self.user(login) for login in issue.assignees]
        data: dict = {
            "url": url,
            "repository_url": self.urls.repo(repo.full_name),
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": html,
            "id": issue.id,
            "node_id": node_id("Issue", issue.id),
            "number": issue.number,
            "title": issue.title,
            "user": self.user(issue.user),
            "labels": self.issue_labels(repo, issue),
            "state": issue.state,
            "locked": issue.locked,
            "assignee": assignees[0] if assignees else None,
            "assignees": assignees,
            "milestone": None,
            "comments": self.comment_count(repo, issue),
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "author_association": self.author_association(repo, issue.user),
            "active_lock_reason": None,
            "draft": bool(issue.pull and issue.pull.draft),
            "body": issue.body,
            "closed_by": self.user(issue.closed_by),
            "reactions": reactions(f"{url}/reactions"),
            "timeline_url": f"{url}/timeline",
            "performed_via_github_app": None,
            "state_reason": issue.state_reason,
        }
        if event:
            del data["closed_by"]
        if issue.pull:
            data["pull_request"] = {
                "url": self.urls.pull(repo.full_name, issue.number),
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": iso(issue.pull.merged_at),
            }
        return data

    def issue_labels(self, repo: Repo, issue: Issue) -> list[dict]:
        """The labels on an issue, in the order they were added."""
        found = (repo.label(name) for name in issue.labels)
        return [self.label(repo, label) for label in found if label]

    @staticmethod
    def comment_count(repo: Repo, issue: Issue) -> int:
        """Number of conversation comments on an issue."""
        return sum(1 for c in repo.comments.values() if c.issue_number == issue.number)

    def comment(self, repo: Repo, comment: Comment) -> dict:
        """An issue comment."""
        issue = repo.issues[comment.issue_number]
        url = f"{self.urls.repo(repo.full_name)}/issues/comments/{comment.id}"
        kind = "pull" if issue.pull else "issues"
        html = f"{self.urls.repo_html(repo.full_name)}/{kind}/{issue.number}"
        return {
            "url": url,
            "html_url": f"{html}#issuecomment-{comment.id}",
            "issue_url": self.urls.issue(repo.full_name, issue.number),
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "user": self.user(comment.user),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "author_association": self.author_association(repo, comment.user),
            "body": comment.body,
            "reactions": reactions(f"{url}/reactions"),
            "performed_via_github_app": None,
        }

    def issue_event(self, repo: Repo, event: IssueEvent) -> dict:
        """One entry of an issue's events."""
        data: dict = {
            "id": event.id,
            "node_id": node_id("LabeledEvent", event.id),
            "url": f"{self.urls.repo(repo.full_name)}/issues/events/{event.id}",
            "actor": self.user(event.actor),
            "event": event.event,
            "commit_id": None,
            "commit_url": None,
            "created_at": iso(event.created_at),
            "performed_via_github_app": None,
        }
        if event.label is not None:
            label = repo.label(event.label)
            data["label"] = {"name": event.label, "color": label.color if label else "ededed"}
        if event.rename is not None:
            data["rename"] = dict(event.rename)
        if event.event in ("closed", "reopened"):
            data["state_reason"] = repo.issues[event.issue_number].state_reason
        data["issue"] = self.issue(repo, repo.issues[event.issue_number])
        return data

    def pull(self, repo: Repo, issue: Issue, *, full: bool = True) -> dict:
        """A pull request: ``full`` as `GET /pulls/{n}` and `pull_request` events send it,
        otherwise the "simple" shape of lists and review events."""
        pull = issue.pull
        assert pull is not None, "not a pull request"  # noqa: S101 (caller bug)
        url = self.urls.pull(repo.full_name, issue.number)
        issue_url = self.urls.issue(repo.full_name, issue.number)
        html = f"{self.urls.repo_html(repo.full_name)}/pull/{issue.number}"
        statuses = f"{self.urls.repo(repo.full_name)}/statuses/{pull.head_sha}"
        assignees = [self.user(login) for login in issue.assignees]
        links = {
            "self": url,
            "html": html,
            "issue": issue_url,
            "comments": f"{issue_url}/comments",
            "review_comments": f"{url}/comments",
            "review_comment": f"{self.urls.repo(repo.full_name)}/pulls/comments{{/number}}",
            "commits": f"{url}/commits",
            "statuses": statuses,
        }
        data: dict = {
            "url": url,
            "id": pull.id,
            "node_id": node_id("PullRequest", pull.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue_url,
            "number": issue.number,
            "state": issue.state,
            "locked": issue.locked,
            "title": issue.title,
            "user": self.user(issue.user),
            "body": issue.body,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": assignees[0] if assignees else None,
            "assignees": assignees,
            "requested_reviewers": [],
            "requested_teams": [],
            "labels": self.issue_labels(repo, issue),
            "milestone": None,
            "draft": pull.draft,
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": links["review_comment"],
            "comments_url": f"{issue_url}/comments",
            "statuses_url": statuses,
            "head": self.branch(repo, pull.head_ref, pull.head_sha),
            "base": self.branch(repo, pull.base_ref, pull.base_sha),
            "_links": {name: {"href": href} for name, href in links.items()},
            "author_association": self.author_association(repo, issue.user),
            "auto_merge": None,
            "active_lock_reason": None,
        }
        if full:
            data.update(self._pull_details(repo, issue))
        return data

    def _pull_details(self, repo: Repo, issue: Issue) -> dict:
        """The fields only the full pull request has (`GET /pulls/{n}`, `pull_request` events;
        lists and review events send the "simple" one): merge state and size of the change."""
        pull = issue.pull
        assert pull is not None  # noqa: S101 (checked by the caller)
        commits = additions = deletions = changed = 0
        if self.git is not None:
            commits, additions, deletions, changed = self.git.diff_stats(
                repo, pull.base_sha, pull.head_sha
            )
        merged = pull.merged_at is not None
        details = {
            "merged": merged,
            "mergeable": None if merged or issue.state == "closed" else True,
            "rebaseable": None if merged or issue.state == "closed" else True,
            "mergeable_state": "unknown" if issue.state == "closed" else "clean",
            "merged_by": self.user(pull.merged_by),
            "comments": self.comment_count(repo, issue),
            "review_comments": sum(
                1 for c in repo.review_comments.values() if c.pull_number == issue.number
            ),
            "maintainer_can_modify": False,
            "commits": commits,
            "additions": additions,
            "deletions": deletions,
            "changed_files": changed,
        }
        return details

    def branch(self, repo: Repo, ref: str, sha: str) -> dict:
        """A pull request's `head` or `base`."""
        return {
            "label": f"{repo.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.user(repo.owner),
            "repo": self.repo(repo),
        }

    def review(self, repo: Repo, review: Review) -> dict:
        """A pull request review."""
        pull_url = self.urls.pull(repo.full_name, review.pull_number)
        html = (
            f"{self.urls.repo_html(repo.full_name)}/pull/{review.pull_number}"
            f"#pullrequestreview-{review.id}"
        )
        return {
            "id": review.id,
            "node_id": node_id("PullRequestReview", review.id),
            "user": self.user(review.user),
            "body": review.body,
            "commit_id": review.commit_id,
            "submitted_at": iso(review.submitted_at),
            "state": review.state,
            "html_url": html,
            "pull_request_url": pull_url,
            "author_association": self.author_association(repo, review.user),
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
        }

    def review_comment(self, repo: Repo, comment: ReviewComment) -> dict:
        """A comment on a pull request's diff."""
        url = f"{self.urls.repo(repo.full_name)}/pulls/comments/{comment.id}"
        pull_url = self.urls.pull(repo.full_name, comment.pull_number)
        html = (
            f"{self.urls.repo_html(repo.full_name)}/pull/{comment.pull_number}"
            f"#discussion_r{comment.id}"
        )
        data = {
            "url": url,
            "pull_request_review_id": comment.review_id,
            "id": comment.id,
            "node_id": node_id("PullRequestReviewComment", comment.id),
            "diff_hunk": comment.diff_hunk,
            "path": comment.path,
            "position": comment.line,
            "original_position": comment.line,
            "commit_id": comment.commit_id,
            "original_commit_id": comment.commit_id,
            "user": self.user(comment.user),
            "body": comment.body,
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "html_url": html,
            "pull_request_url": pull_url,
            "author_association": self.author_association(repo, comment.user),
            "_links": {
                "self": {"href": url},
                "html": {"href": html},
                "pull_request": {"href": pull_url},
            },
            "reactions": reactions(f"{url}/reactions"),
            "start_line": None,
            "original_start_line": None,
            "start_side": None,
            "line": comment.line,
            "original_line": comment.line,
            "side": comment.side,
        }
        if comment.in_reply_to_id is not None:
            data["in_reply_to_id"] = comment.in_reply_to_id
        return data
