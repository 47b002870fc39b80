"""Issues, labels and issue comments."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from simulators.github.api.common import (
    created,
    json_body,
    no_content,
    paginate,
    repo_access,
    require_caller,
    serializer,
    simulator,
)
from simulators.github.exceptions import NotFound, invalid_field
from simulators.github.models import Issue, Permission

bp = Blueprint("issues", __name__)

REPO = "/repos/<owner>/<name>"
ISSUE_FIELDS = ("title", "body", "state", "state_reason", "labels", "assignees")
# Labels serve issues and pull requests alike, so either permission reads them.
LABELS_READ = "issues=read; pull_requests=read"


def _label_names(values: list) -> list[str]:
    """Label names from a body: strings or `{"name": ...}` objects both occur in the wild."""
    names = [v.get("name") if isinstance(v, dict) else v for v in values]
    if not all(isinstance(n, str) and n for n in names):
        raise invalid_field("Label", "name")
    return names


def _since() -> datetime | None:
    raw = request.args.get("since")
    if not raw:
        return None
    try:
        since = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_field("Issue", "since") from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)  # GitHub reads naive as UTC


def _matches(issue: Issue, state: str, labels: set[str], since: datetime | None) -> bool:
    args = request.args
    return (
        state in ("all", issue.state)
        and labels <= {n.lower() for n in issue.labels}
        and (since is None or issue.updated_at >= since)
        and (not args.get("creator") or issue.user.lower() == args["creator"].lower())
        and (
            not args.get("assignee")
            or (args["assignee"] == "none" and not issue.assignees)
            or (args["assignee"] == "*" and bool(issue.assignees))
            or args["assignee"].lower() in {a.lower() for a in issue.assignees}
        )
    )


@bp.get(f"{REPO}/issues")
def list_issues(owner: str, name: str) -> Response:
    """Issues and pull requests (with `pull_request`), filtered as GitHub filters them."""
    repo = repo_access(owner, name, accepts="issues=read")
    state = request.args.get("state", "open")
    if state not in ("open", "closed", "all"):
        raise invalid_field("Issue", "state")
    labels = {n.strip().lower() for n in request.args.get("labels", "").split(",") if n.strip()}
    since = _since()
    sort = request.args.get("sort", "created")
    key = {"updated": "updated_at", "comments": "number"}.get(sort, "created_at")
    with simulator().store.lock:
        found = [i for i in repo.issues.values() if _matches(i, state, labels, since)]
        found.sort(key=lambda i: (getattr(i, key), i.number))
        if request.args.get("direction", "desc") == "desc":
            found.reverse()
    out = serializer()
    return paginate(found, lambda issue: out.issue(repo, issue))


@bp.post(f"{REPO}/issues")
def create_issue(owner: str, name: str) -> Response:
    """Open an issue."""
    repo = repo_access(owner, name, accepts="issues=write")
    data = json_body()
    assignees = data.get("assignees") or ([data["assignee"]] if data.get("assignee") else [])
    issue = simulator().create_issue(
        repo,
        require_caller(),
        data.get("title") or "",
        data.get("body"),
        labels=_label_names(data.get("labels") or []),
        assignees=assignees,
    )
    return created(serializer().issue(repo, issue))


@bp.get(f"{REPO}/issues/<int:number>")
def get_issue(owner: str, name: str, number: int) -> Response:
    """One issue (pull requests too, as on GitHub)."""
    repo = repo_access(owner, name, accepts="issues=read", number=number)
    return jsonify(serializer().issue(repo, simulator().issue(repo, number)))


@bp.patch(f"{REPO}/issues/<int:number>")
def update_issue(owner: str, name: str, number: int) -> Response:
    """Edit title, body, state (with state_reason), labels or assignees."""
    repo = repo_access(owner, name, accepts="issues=write", number=number)
    data = json_body()
    fields = {k: data[k] for k in ISSUE_FIELDS if k in data}
    if "labels" in fields:
        fields["labels"] = _label_names(fields["labels"] or [])
    sim = simulator()
    issue = sim.update_issue(repo, require_caller(), number, fields)
    return jsonify(serializer().issue(repo, issue))


@bp.get(f"{REPO}/issues/<int:number>/events")
def issue_events(owner: str, name: str, number: int) -> Response:
    """An issue's events (labeled, unlabeled, closed, reopened, renamed), oldest first."""
    repo = repo_access(owner, name, accepts="issues=read", number=number)
    simulator().issue(repo, number)
    out = serializer()
    found = [e for e in repo.issue_events if e.issue_number == number]
    return paginate(found, lambda event: out.issue_event(repo, event))


@bp.get(f"{REPO}/issues/events")
def repo_issue_events(owner: str, name: str) -> Response:
    """Every issue event of the repository, newest first."""
    repo = repo_access(owner, name, accepts="issues=read")
    out = serializer()
    return paginate(repo.issue_events[::-1], lambda event: out.issue_event(repo, event))


@bp.get(f"{REPO}/issues/events/<int:event_id>")
def issue_event(owner: str, name: str, event_id: int) -> Response:
    """One issue event."""
    repo = repo_access(owner, name, accepts="issues=read")
    found = next((e for e in repo.issue_events if e.id == event_id), None)
    if found is None:
        raise NotFound()
    return jsonify(serializer().issue_event(repo, found))


# labels


@bp.get(f"{REPO}/labels")
def list_labels(owner: str, name: str) -> Response:
    """The repository's labels."""
    repo = repo_access(owner, name, accepts=LABELS_READ)
    out = serializer()
    return paginate(list(repo.labels.values()), lambda label: out.label(repo, label))


@bp.post(f"{REPO}/labels")
def create_label(owner: str, name: str) -> Response:
    """Add a label (push access)."""
    repo = repo_access(owner, name, Permission.WRITE, accepts="issues=write")
    data = json_body()
    label = simulator().create_label(
        repo, data.get("name") or "", data.get("color") or "ededed", data.get("description")
    )
    return created(serializer().label(repo, label))


@bp.get(f"{REPO}/labels/<path:label_name>")
def get_label(owner: str, name: str, label_name: str) -> Response:
    """One label, by name."""
    repo = repo_access(owner, name, accepts=LABELS_READ)
    label = repo.label(label_name)
    if label is None:
        raise NotFound()
    return jsonify(serializer().label(repo, label))


@bp.delete(f"{REPO}/labels/<path:label_name>")
def delete_label(owner: str, name: str, label_name: str) -> Response:
    """Delete a label from the repository and every issue."""
    repo = repo_access(owner, name, Permission.WRITE, accepts="issues=write")
    with simulator().store.lock:
        label = repo.labels.pop(label_name.lower(), None)
        if label is None:
            raise NotFound()
        for issue in repo.issues.values():
            if label.name in issue.labels:
                issue.labels.remove(label.name)
    return no_content()


@bp.get(f"{REPO}/issues/<int:number>/labels")
def issue_labels(owner: str, name: str, number: int) -> Response:
    """Labels on an issue."""
    repo = repo_access(owner, name, accepts="issues=read", number=number)
    issue = simulator().issue(repo, number)
    out = serializer()
    return paginate(out.issue_labels(repo, issue), lambda label: label)


def _labels_body() -> list[str]:
    """`["a", "b"]` or `{"labels": [...]}`, both accepted by GitHub."""
    data = json_body(kind=object)
    if isinstance(data, dict):
        data = data.get("labels") or []
    if not isinstance(data, list):
        raise invalid_field("Label", "labels")
    return _label_names(data)


@bp.post(f"{REPO}/issues/<int:number>/labels")
def add_labels(owner: str, name: str, number: int) -> Response:
    """Add labels to an issue; answers with all its labels."""
    repo = repo_access(owner, name, accepts="issues=write", number=number)
    labels = simulator().add_labels(repo, require_caller(), number, _labels_body())
    out = serializer()
    return jsonify([out.label(repo, label) for label in labels])


@bp.put(f"{REPO}/issues/<int:number>/labels")
def set_labels(owner: str, name: str, number: int) -> Response:
    """Replace an issue's labels."""
    repo = repo_access(owner, name, accepts="issues=write", number=number)
    labels = simulator().set_labels(repo, require_caller(), number, _labels_body())
    out = serializer()
    return jsonify([out.label(repo, label) for label in labels])


@bp.delete(f"{REPO}/issues/<int:number>/labels")
def clear_labels(owner: str, name: str, number: int) -> Response:
    """Remove every label from an issue."""
    repo = repo_access(owner, name, accepts="issues=write", number=number)
    simulator().set_labels(repo, require_caller(), number, [])
    return no_content()


@bp.delete(f"{REPO}/issues/<int:number>/labels/<path:label_name>")
def remove_label(owner: str, name: str, number: int, label_name: str) -> Response:
    """Remove one label; 404 "Label does not exist" when it is not on the issue."""
    repo = repo_access(owner, name, accepts="issues=write", number=number)
    labels = simulator().remove_label(repo, require_caller(), number, label_name)
    out = serializer()
    return jsonify([out.label(repo, label) for label in labels])


# comments


def _commented(owner: str, name: str, comment_id: int) -> int | None:
    """The number of the issue or pull request a comment is on (None: no such comment), which
    decides the App permissions that reach it."""
    repo = simulator().store.find_repo(f"{owner}/{name}")
    comment = repo.comments.get(comment_id) if repo else None
    return comment.issue_number if comment else None


@bp.get(f"{REPO}/issues/<int:number>/comments")
def list_comments(owner: str, name: str, number: int) -> Response:
    """Comments on an issue, oldest first."""
    repo = repo_access(owner, name, accepts="issues=read", number=number)
    simulator().issue(repo, number)
    since = _since()
    found = [
        c
        for c in repo.comments.values()
        if c.issue_number == number and (since is None or c.updated_at >= since)
    ]
    out = serializer()
    return paginate(found, lambda comment: out.comment(repo, comment))


@bp.get(f"{REPO}/issues/comments")
def list_repo_comments(owner: str, name: str) -> Response:
    """Every issue comment of the repository."""
    repo = repo_access(owner, name, accepts="issues=read")
    out = serializer()
    return paginate(list(repo.comments.values()), lambda comment: out.comment(repo, comment))


@bp.post(f"{REPO}/issues/<int:number>/comments")
def create_comment(owner: str, name: str, number: int) -> Response:
    """Comment on an issue or pull request."""
    repo = repo_access(owner, name, accepts="issues=write", number=number)
    body = json_body().get("body") or ""
    comment = simulator().create_comment(repo, require_caller(), number, body)
    return created(serializer().comment(repo, comment))


@bp.get(f"{REPO}/issues/comments/<int:comment_id>")
def get_comment(owner: str, name: str, comment_id: int) -> Response:
    """One comment."""
    repo = repo_access(
        owner, name, accepts="issues=read", number=_commented(owner, name, comment_id)
    )
    return jsonify(serializer().comment(repo, simulator().comment(repo, comment_id)))


@bp.patch(f"{REPO}/issues/comments/<int:comment_id>")
def update_comment(owner: str, name: str, comment_id: int) -> Response:
    """Edit a comment."""
    repo = repo_access(
        owner, name, accepts="issues=write", number=_commented(owner, name, comment_id)
    )
    body = json_body().get("body") or ""
    comment = simulator().update_comment(repo, require_caller(), comment_id, body)
    return jsonify(serializer().comment(repo, comment))


@bp.delete(f"{REPO}/issues/comments/<int:comment_id>")
def delete_comment(owner: str, name: str, comment_id: int) -> Response:
    """Delete a comment."""
    repo = repo_access(
        owner, name, accepts="issues=write", number=_commented(owner, name, comment_id)
    )
    simulator().delete_comment(repo, require_caller(), comment_id)
    return no_content()
