"""Issues, labels and issue comments: the rules GitHub applies and the webhooks it fires."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulators.github.exceptions import (
    NotFound,
    ValidationFailed,
    invalid_field,
    missing_field,
)
from simulators.github.models import Comment, Issue, IssueEvent, Label, Permission, Repo, utcnow

if TYPE_CHECKING:
    from simulators.github.payloads import Payloads
    from simulators.github.simulator import Identity
    from simulators.github.store import Store

STATE_REASONS = {"closed": ("completed", "not_planned"), "open": ("reopened",)}


class IssueActions:
    """Issue operations of :class:`~simulators.github.simulator.GitHubSimulator` (a mixin).

    ``actor`` is the login (or Identity) acting; permission checks happen here, so the API and
    the admin surface behave the same way.
    """

    store: Store
    if TYPE_CHECKING:
        payloads: Payloads

        def repo(self, repo: Repo | str) -> Repo: ...
        def emit(self, repo: Repo, event: str, payload: dict) -> None: ...
        def permission(self, who: Identity | str | None, repo: Repo) -> Permission: ...
        def require(
            self, who: Identity | str | None, repo: Repo, needed: Permission
        ) -> Permission: ...

    @staticmethod
    def _login(actor: Identity | str) -> str:
        return actor if isinstance(actor, str) else actor.login

    def issue(self, repo: Repo | str, number: int) -> Issue:
        """Issue (or pull request) ``number`` of ``repo``, or NotFound."""
        issue = self.repo(repo).issues.get(number)
        if issue is None:
            raise NotFound()
        return issue

    # labels of the repository

    def create_label(
        self, repo: Repo | str, name: str, color: str = "ededed", description: str | None = None
    ) -> Label:
        """Add a label to ``repo``; 422 when the name is taken."""
        repo = self.repo(repo)
        if not name:
            raise missing_field("Label", "name")
        color = (color or "ededed").lstrip("#").lower()
        if len(color) != 6 or any(c not in "0123456789abcdef" for c in color):
            raise invalid_field("Label", "color")
        with self.store.lock:
            if repo.label(name):
                raise ValidationFailed(
                    {"resource": "Label", "code": "already_exists", "field": "name"}
                )
            label = Label(self.store.next_id(), name, color, description)
            repo.labels[name.lower()] = label
            return label

    def _ensure_label(self, repo: Repo, name: str) -> Label:
        """The label ``name``, created on the fly as GitHub does when an issue gets it."""
        return repo.label(name) or self.create_label(repo, name)

    # issues

    def create_issue(
        self,
        repo: Repo | str,
        actor: Identity | str,
        title: str,
        body: str | None = None,
        *,
        labels: list[str] | None = None,
        assignees: list[str] | None = None,
    ) -> Issue:
        """Open an issue; labels and assignees need triage access and are dropped otherwise."""
        repo = self.repo(repo)
        role = self.require(actor, repo, Permission.READ)
        if not title:
            raise missing_field("Issue", "title")
        login = self._login(actor)
        may_triage = role.allows(Permission.TRIAGE)
        with self.store.lock:
            names = [self._ensure_label(repo, n).name for n in labels or []] if may_triage else []
            issue = Issue(
                id=self.store.next_id(),
                number=repo.next_number(),
                title=title,
                body=body,
                user=login,
                labels=list(dict.fromkeys(names)),
                assignees=self._valid_assignees(repo, assignees) if may_triage else [],
            )
            repo.issues[issue.number] = issue
            self.emit(repo, "issues", self.payloads.issues("opened", repo, issue, login))
            for name in issue.labels:
                label = repo.label(name)
                self._record_event(repo, issue, login, "labeled", label=name)
                payload = self.payloads.issues("labeled", repo, issue, login, label=label)
                self.emit(repo, "issues", payload)
        return issue

    def _valid_assignees(self, repo: Repo, logins: list[str] | None) -> list[str]:
        found = []
        for login in logins or []:
            user = self.store.find_user(login)
            if user is None or not self.permission(user.login, repo).allows(Permission.READ):
                raise invalid_field("Issue", "assignees")
            found.append(user.login)
        return list(dict.fromkeys(found))

    def update_issue(
        self, repo: Repo | str, actor: Identity | str, number: int, fields: dict
    ) -> Issue:
        """Apply ``fields`` (title, body, state, state_reason, labels, assignees) to an issue.

        The author may edit and close their own issue; anything else needs triage access.
        """
        repo = self.repo(repo)
        login = self._login(actor)
        issue = self.issue(repo, number)
        role = self.require(actor, repo, Permission.READ)
        if not role.allows(Permission.TRIAGE):
            own = login.lower() == issue.user.lower()
            allowed = {"title", "body", "state", "state_reason"} if own else set()
            if set(fields) - allowed:
                self.require(actor, repo, Permission.TRIAGE)
        with self.store.lock:
            changes = {}
            for key in ("title", "body"):
                if key in fields and fields[key] != getattr(issue, key):
                    if key == "title" and not fields[key]:
                        raise missing_field("Issue", "title")
                    changes[key] = {"from": getattr(issue, key)}
                    setattr(issue, key, fields[key])
            if "assignees" in fields:
                issue.assignees = self._valid_assignees(repo, fields["assignees"])
            if "title" in changes:
                rename = {"from": changes["title"]["from"], "to": issue.title}
                self._record_event(repo, issue, login, "renamed", rename=rename)
            if changes:
                issue.updated_at = utcnow()
                event, payload = self._issue_event("edited", repo, issue, login, changes=changes)
                self.emit(repo, event, payload)
            if "labels" in fields:
                self.set_labels(repo, actor, number, fields["labels"] or [])
            if "state" in fields:
                self._set_state(repo, issue, login, fields["state"], fields.get("state_reason"))
        return issue

    def _set_state(
        self, repo: Repo, issue: Issue, login: str, state: str, reason: str | None
    ) -> None:
        if state not in STATE_REASONS:
            raise invalid_field("Issue", "state")
        if reason is not None and reason not in STATE_REASONS[state]:
            raise invalid_field("Issue", "state_reason")
        if state == issue.state:
            return
        issue.state = state
        issue.updated_at = utcnow()
        if state == "closed":
            issue.closed_at, issue.closed_by = issue.updated_at, login
            issue.state_reason = None if issue.pull else reason or "completed"
        else:
            issue.closed_at = issue.closed_by = None
            issue.state_reason = None if issue.pull else "reopened"
        action = "closed" if state == "closed" else "reopened"
        self._record_event(repo, issue, login, action)
        event, payload = self._issue_event(action, repo, issue, login)
        self.emit(repo, event, payload)

    def _record_event(self, repo: Repo, issue: Issue, login: str, event: str, **fields) -> None:
        """Add to the issue's timeline (`GET .../issues/{n}/events`)."""
        repo.issue_events.append(
            IssueEvent(self.store.next_id(), issue.number, login, event, **fields)
        )

    def _issue_event(self, action: str, repo: Repo, issue: Issue, login: str, **extra) -> tuple:
        """(event name, payload): pull requests fire `pull_request`, issues fire `issues`."""
        if issue.pull:
            return "pull_request", self.payloads.pull_request(action, repo, issue, login, **extra)
        return "issues", self.payloads.issues(action, repo, issue, login, **extra)

    def close_issue(
        self, repo: Repo | str, actor: Identity | str, number: int, reason: str = "completed"
    ) -> Issue:
        """Close an issue (or pull request)."""
        fields = {"state": "closed"}
        if not self.issue(repo, number).pull:
            fields["state_reason"] = reason
        return self.update_issue(repo, actor, number, fields)

    # labels on an issue

    def add_labels(
        self, repo: Repo | str, actor: Identity | str, number: int, names: list[str]
    ) -> list[Label]:
        """Add labels to an issue (creating unknown ones); returns all its labels."""
        repo = self.repo(repo)
        issue = self.issue(repo, number)
        self.require(actor, repo, Permission.TRIAGE)
        with self.store.lock:
            for name in names:
                label = self._ensure_label(repo, name)
                if label.name not in issue.labels:
                    issue.labels.append(label.name)
                    self._label_event("labeled", repo, issue, self._login(actor), label)
            return [label for n in issue.labels if (label := repo.label(n))]

    def set_labels(
        self, repo: Repo | str, actor: Identity | str, number: int, names: list[str]
    ) -> list[Label]:
        """Replace an issue's labels; returns them."""
        repo = self.repo(repo)
        issue = self.issue(repo, number)
        self.require(actor, repo, Permission.TRIAGE)
        with self.store.lock:
            wanted = {self._ensure_label(repo, n).name for n in names}
            for name in [n for n in issue.labels if n not in wanted]:
                self.remove_label(repo, actor, number, name)
        return self.add_labels(repo, actor, number, names)

    def remove_label(
        self, repo: Repo | str, actor: Identity | str, number: int, name: str
    ) -> list[Label]:
        """Take a label off an issue; 404 "Label does not exist" when it is not on it."""
        repo = self.repo(repo)
        issue = self.issue(repo, number)
        self.require(actor, repo, Permission.TRIAGE)
        with self.store.lock:
            label = repo.label(name)
            if label is None or label.name not in issue.labels:
                raise NotFound("Label does not exist")
            issue.labels.remove(label.name)
            self._label_event("unlabeled", repo, issue, self._login(actor), label)
            return [found for n in issue.labels if (found := repo.label(n))]

    def _label_event(self, action: str, repo: Repo, issue: Issue, login: str, label: Label) -> None:
        issue.updated_at = utcnow()
        self._record_event(repo, issue, login, action, label=label.name)
        event, payload = self._issue_event(action, repo, issue, login, label=label)
        self.emit(repo, event, payload)

    # comments

    def comment(self, repo: Repo | str, comment_id: int) -> Comment:
        """Issue comment ``comment_id`` of ``repo``, or NotFound."""
        comment = self.repo(repo).comments.get(comment_id)
        if comment is None:
            raise NotFound()
        return comment

    def create_comment(
        self, repo: Repo | str, actor: Identity | str, number: int, body: str
    ) -> Comment:
        """Comment on an issue or pull request."""
        repo = self.repo(repo)
        issue = self.issue(repo, number)
        self.require(actor, repo, Permission.READ)
        if not body:
            raise missing_field("IssueComment", "body")
        login = self._login(actor)
        with self.store.lock:
            comment = Comment(self.store.next_id(), issue.number, login, body)
            repo.comments[comment.id] = comment
            issue.updated_at = utcnow()
            payload = self.payloads.issue_comment("created", repo, issue, comment, login)
            self.emit(repo, "issue_comment", payload)
        return comment

    def update_comment(
        self, repo: Repo | str, actor: Identity | str, comment_id: int, body: str
    ) -> Comment:
        """Edit a comment (its author, or someone with triage access)."""
        repo = self.repo(repo)
        comment = self.comment(repo, comment_id)
        self._require_author_or(actor, repo, comment.user)
        if not body:
            raise missing_field("IssueComment", "body")
        login = self._login(actor)
        with self.store.lock:
            old = comment.body
            comment.body, comment.updated_at = body, utcnow()
            issue = repo.issues[comment.issue_number]
            payload = self.payloads.issue_comment("edited", repo, issue, comment, login)
            payload = {**payload, "changes": {"body": {"from": old}}}
            self.emit(repo, "issue_comment", payload)
        return comment

    def delete_comment(self, repo: Repo | str, actor: Identity | str, comment_id: int) -> None:
        """Delete a comment (its author, or someone with triage access)."""
        repo = self.repo(repo)
        comment = self.comment(repo, comment_id)
        self._require_author_or(actor, repo, comment.user)
        with self.store.lock:
            issue = repo.issues[comment.issue_number]
            payload = self.payloads.issue_comment(
                "deleted", repo, issue, comment, self._login(actor)
            )
            del repo.comments[comment_id]
            self.emit(repo, "issue_comment", payload)

    def _require_author_or(self, actor: Identity | str, repo: Repo, author: str) -> None:
        self.require(actor, repo, Permission.READ)
        if self._login(actor).lower() != author.lower():
            self.require(actor, repo, Permission.TRIAGE)
