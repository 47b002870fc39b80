"""Pull requests, their commits and files, reviews and review comments."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from simulators.github.api.common import (
    created,
    json_body,
    paginate,
    repo_access,
    require_caller,
    serializer,
    simulator,
)
from simulators.github.exceptions import NotFound, invalid_field
from simulators.github.models import Issue, Repo

bp = Blueprint("pulls", __name__)

PULL = "/repos/<owner>/<name>/pulls"
# Merging writes the base branch: an App needs `contents` as well as `pull_requests`.
MERGE = "contents=write,pull_requests=write"


def _listed(repo: Repo, issue: Issue) -> bool:
    """Whether a pull request passes the `state`, `head` and `base` list filters."""
    pull = issue.pull
    if pull is None:
        return False
    state = request.args.get("state", "open")
    head = request.args.get("head", "")
    head_owner, _, head_ref = head.rpartition(":")
    return (
        state in ("all", issue.state)
        and (not head or pull.head_ref == head_ref)
        and head_owner.lower() in ("", repo.owner.lower())
        and (not request.args.get("base") or pull.base_ref == request.args["base"])
    )


@bp.get(PULL)
def list_pulls(owner: str, name: str) -> Response:
    """Pull requests, newest first, in the "simple" shape GitHub lists them."""
    repo = repo_access(owner, name, accepts="pull_requests=read")
    if request.args.get("state", "open") not in ("open", "closed", "all"):
        raise invalid_field("PullRequest", "state")
    with simulator().store.lock:
        found = [i for i in repo.issues.values() if _listed(repo, i)]
    found.sort(key=lambda i: i.number)
    if request.args.get("direction", "desc") == "desc":
        found.reverse()
    out = serializer()
    return paginate(found, lambda issue: out.pull(repo, issue, full=False))


@bp.post(PULL)
def create_pull(owner: str, name: str) -> Response:
    """Open a pull request; 422 when the head branch is missing or already has an open PR."""
    repo = repo_access(owner, name, accepts="pull_requests=write")
    data = json_body()
    issue = simulator().create_pull(
        repo,
        require_caller(),
        data.get("title") or "",
        head=data.get("head") or "",
        base=data.get("base") or "",
        body=data.get("body"),
        draft=bool(data.get("draft", False)),
    )
    return created(serializer().pull(repo, issue))


@bp.get(f"{PULL}/<int:number>")
def get_pull(owner: str, name: str, number: int) -> Response:
    """One pull request, in full."""
    repo = repo_access(owner, name, accepts="pull_requests=read")
    return jsonify(serializer().pull(repo, simulator().pull(repo, number)))


@bp.patch(f"{PULL}/<int:number>")
def update_pull(owner: str, name: str, number: int) -> Response:
    """Edit title, body, state or base."""
    repo = repo_access(owner, name, accepts="pull_requests=write")
    data = json_body()
    fields = {k: data[k] for k in ("title", "body", "state", "base") if k in data}
    issue = simulator().update_pull(repo, require_caller(), number, fields)
    return jsonify(serializer().pull(repo, issue))


@bp.put(f"{PULL}/<int:number>/merge")
def merge_pull(owner: str, name: str, number: int) -> Response:
    """Merge (`merge_method` merge, squash or rebase; `sha` must match the head if given)."""
    repo = repo_access(owner, name, accepts=MERGE)
    data = json_body()
    issue = simulator().merge_pull(
        repo,
        require_caller(),
        number,
        commit_title=data.get("commit_title"),
        commit_message=data.get("commit_message"),
        merge_method=data.get("merge_method") or "merge",
        sha=data.get("sha"),
    )
    assert issue.pull is not None  # noqa: S101 (merge_pull only merges pulls)
    return jsonify(
        {
            "sha": issue.pull.merge_commit_sha,
            "merged": True,
            "message": "Pull Request successfully merged",
        }
    )


@bp.get(f"{PULL}/<int:number>/merge")
def is_merged(owner: str, name: str, number: int) -> Response:
    """204 when the pull request was merged, 404 otherwise."""
    repo = repo_access(owner, name, accepts="pull_requests=read")
    pull = simulator().pull(repo, number).pull
    if pull is None or pull.merged_at is None:
        raise NotFound()
    return Response(status=204)


@bp.get(f"{PULL}/<int:number>/commits")
def pull_commits(owner: str, name: str, number: int) -> Response:
    """The pull request's commits, oldest first."""
    repo = repo_access(owner, name, accepts="pull_requests=read")
    out = serializer()
    base = out.urls.repo(repo.full_name)
    html = out.urls.repo_html(repo.full_name)

    def render(c: dict) -> dict:
        return {
            "sha": c["sha"],
            "node_id": "",
            "url": f"{base}/commits/{c['sha']}",
            "html_url": f"{html}/commit/{c['sha']}",
            "comments_url": f"{base}/commits/{c['sha']}/comments",
            "commit": {
                "url": f"{base}/git/commits/{c['sha']}",
                "author": {
                    "name": c["author_name"],
                    "email": c["author_email"],
                    "date": c["author_date"],
                },
                "committer": {
                    "name": c["committer_name"],
                    "email": c["committer_email"],
                    "date": c["committer_date"],
                },
                "message": c["message"],
                "comment_count": 0,
            },
            "author": None,
            "committer": None,
            "parents": [
                {"sha": p, "url": f"{base}/commits/{p}", "html_url": f"{html}/commit/{p}"}
                for p in c["parents"].split()
            ],
        }

    return paginate(simulator().pull_commits(repo, number), render)


@bp.get(f"{PULL}/<int:number>/files")
def pull_files(owner: str, name: str, number: int) -> Response:
    """Files the pull request changes, with line counts."""
    repo = repo_access(owner, name, accepts="pull_requests=read")
    pull = simulator().pull(repo, number).pull
    assert pull is not None  # noqa: S101 (simulator.pull checked it)
    html = serializer().urls.repo_html(repo.full_name)

    def render(f: dict) -> dict:
        return {
            "sha": None,
            **f,
            "blob_url": f"{html}/blob/{pull.head_sha}/{f['filename']}",
            "raw_url": f"{html}/raw/{pull.head_sha}/{f['filename']}",
            "contents_url": f"{serializer().urls.repo(repo.full_name)}/contents/{f['filename']}",
        }

    return paginate(simulator().pull_files(repo, number), render)


# reviews


@bp.get(f"{PULL}/<int:number>/reviews")
def list_reviews(owner: str, name: str, number: int) -> Response:
    """Reviews, oldest first."""
    repo = repo_access(owner, name, accepts="pull_requests=read")
    simulator().pull(repo, number)
    out = serializer()
    found = [r for r in repo.reviews.values() if r.pull_number == number]
    return paginate(found, lambda review: out.review(repo, review))


@bp.get(f"{PULL}/<int:number>/reviews/<int:review_id>")
def get_review(owner: str, name: str, number: int, review_id: int) -> Response:
    """One review."""
    repo = repo_access(owner, name, accepts="pull_requests=read")
    review = repo.reviews.get(review_id)
    if review is None or review.pull_number != number:
        raise NotFound()
    return jsonify(serializer().review(repo, review))


@bp.post(f"{PULL}/<int:number>/reviews")
def create_review(owner: str, name: str, number: int) -> Response:
    """Submit a review (`event` APPROVE/REQUEST_CHANGES/COMMENT, `body`, `comments`)."""
    repo = repo_access(owner, name, accepts="pull_requests=write")
    data = json_body()
    comments = data.get("comments") or []
    if not isinstance(comments, list) or not all(isinstance(c, dict) for c in comments):
        raise invalid_field("PullRequestReview", "comments")
    review = simulator().create_review(
        repo,
        require_caller(),
        number,
        data.get("event") or None,
        data.get("body") or "",
        comments=comments,
        commit_id=data.get("commit_id"),
    )
    return jsonify(serializer().review(repo, review))


# review comments


@bp.get(f"{PULL}/<int:number>/comments")
def list_review_comments(owner: str, name: str, number: int) -> Response:
    """Comments on the diff, oldest first."""
    repo = repo_access(owner, name, accepts="pull_requests=read")
    simulator().pull(repo, number)
    out = serializer()
    found = [c for c in repo.review_comments.values() if c.pull_number == number]
    return paginate(found, lambda comment: out.review_comment(repo, comment))


@bp.get(f"{PULL}/<int:number>/reviews/<int:review_id>/comments")
def list_review_comments_of_review(owner: str, name: str, number: int, review_id: int) -> Response:
    """Comments of one review."""
    repo = repo_access(owner, name, accepts="pull_requests=read")
    out = serializer()
    found = [c for c in repo.review_comments.values() if c.review_id == review_id]
    return paginate(found, lambda comment: out.review_comment(repo, comment))


@bp.post(f"{PULL}/<int:number>/comments")
def create_review_comment(owner: str, name: str, number: int) -> Response:
    """Comment on a line (`path`, `line`, `side`, `commit_id`) or reply (`in_reply_to`)."""
    repo = repo_access(owner, name, accepts="pull_requests=write")
    data = json_body()
    line = data.get("line", data.get("position"))
    comment = simulator().create_review_comment(
        repo,
        require_caller(),
        number,
        data.get("body") or "",
        path=data.get("path"),
        line=line,
        side=data.get("side") or "RIGHT",
        commit_id=data.get("commit_id"),
        in_reply_to=data.get("in_reply_to"),
    )
    return created(serializer().review_comment(repo, comment))


@bp.post(f"{PULL}/<int:number>/comments/<int:comment_id>/replies")
def reply_review_comment(owner: str, name: str, number: int, comment_id: int) -> Response:
    """Reply to a review comment."""
    repo = repo_access(owner, name, accepts="pull_requests=write")
    body = json_body().get("body") or ""
    comment = simulator().create_review_comment(
        repo, require_caller(), number, body, in_reply_to=comment_id
    )
    return created(serializer().review_comment(repo, comment))


@bp.get(f"{PULL}/comments/<int:comment_id>")
def get_review_comment(owner: str, name: str, comment_id: int) -> Response:
    """One review comment."""
    repo = repo_access(owner, name, accepts="pull_requests=read")
    comment = repo.review_comments.get(comment_id)
    if comment is None:
        raise NotFound()
    return jsonify(serializer().review_comment(repo, comment))
