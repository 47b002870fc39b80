"""Task endpoints: admins list, create, cancel and retry; agents claim, report and finish."""

from __future__ import annotations

import logging
from decimal import Decimal

from flask import request, url_for
from sqlalchemy import select

from cluster_core.github_errors import classify
from cluster_core.states import TaskState
from coordinator_app import audit, commands, grants, outbox, served, tasks
from coordinator_app.api import bp
from coordinator_app.api.operations import (
    ATTEMPT_HEADER,
    COST_LIMIT,
    json_body,
    paginate,
    query_args,
)
from coordinator_app.api.schemas import event_json, task_json
from coordinator_app.auth import current_principal, require
from coordinator_app.db import get_session
from coordinator_app.exceptions import (
    AttemptOver,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unavailable,
)
from coordinator_app.github_gateway import Throttled, is_pull_request_url
from coordinator_app.intake import Intake
from coordinator_app.models import ProgressEvent, Task, utcnow
from coordinator_app.services import services

logger = logging.getLogger(__name__)
# GitHub's answers that say the repository itself is out of the App's reach: not installed
# there (404), taken out of the installation (422), the installation suspended (403).
REPOSITORY_REFUSALS = {403, 404, 422}
# States an agent may report while it works (completion and failure go through /result).
AGENT_REPORTABLE = {TaskState.IN_PROGRESS, TaskState.TESTING}


def _task_or_404(task_id: int) -> Task:
    task = get_session().get(Task, task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return task


def _visible(task: Task) -> None:
    principal = current_principal()
    if principal.kind == "agent" and task.agent_id != principal.id:
        raise Forbidden("agents may only see their own tasks")


def _owned(task_id: int) -> Task:
    """The task, locked, if the calling agent holds it now in the attempt its report names
    (header ``X-Task-Attempt``): a run whose attempt was reaped, cancelled or claimed again is
    refused with 409, and must stop without pushing."""
    task = commands.locked(get_session(), task_id)
    principal = current_principal()
    if task.agent_id != principal.id or not TaskState(task.state).is_running:
        raise Forbidden(f"task {task_id} is not held by {principal.name} (it is {task.state})")
    attempt = request.headers.get(ATTEMPT_HEADER)
    if not attempt:
        raise InvalidRequest(f"reports on a task name its attempt ({ATTEMPT_HEADER})")
    if attempt != task.attempt_id:
        raise AttemptOver(f"attempt {attempt[:32]} of task {task_id} is over; stop without pushing")
    return task


@bp.get("/tasks")
@require("admin")
def list_tasks():
    """Tasks, newest first, filtered by state, repository, specialty or agent id."""
    query = select(Task).order_by(Task.id.desc())
    filters = {k: v for k, v in query_args().items() if k not in {"page", "per_page"}}
    for name, value in filters.items():
        query = query.where(getattr(Task, name) == value)
    return paginate(get_session(), query, "api.list_tasks", task_json, **filters)


@bp.post("/tasks")
@require("admin")
def create_task():
    """Create a task by hand (as a label would), analysed and queued like any other."""
    data = json_body()
    session = get_session()
    ccc = services()
    principal = current_principal()
    repository = data["repository"]
    if not served.is_served(session, ccc.config, repository):
        raise InvalidRequest(f"{repository} is not served by this cluster")
    task = tasks.create_task(
        session,
        ccc.config,
        repository=repository,
        issue_number=data["issue_number"],
        title=data["title"],
        body=data.get("body", ""),
        requested_by=principal.name,
        reason=f"created by {principal.actor}",
    )
    if task is None:
        raise Conflict("the issue already has a live task")
    try:  # the issues it depends on are looked up on GitHub
        Intake(session, ccc.config, ccc.gateway).analyze_and_queue(task, data.get("labels", []))
    except Exception as exc:
        failure = exc if isinstance(exc, Throttled) else classify(exc)
        if failure is None:
            raise
        raise Unavailable(f"no task now: {failure}") from exc  # rolled back; try again later
    audit.record(session, principal.actor, "task.create", str(task.id))
    session.commit()
    ccc.processor.notify()
    return task_json(task, detail=True), 201, {"Location": url_for("api.get_task", task_id=task.id)}


@bp.get("/tasks/<int:task_id>")
@require("admin", "agent")
def get_task(task_id: int):
    """A task with its analysis, budget and full state history."""
    task = _task_or_404(task_id)
    _visible(task)
    return task_json(task, detail=True)


@bp.get("/tasks/<int:task_id>/events")
@require("admin", "agent")
def task_events(task_id: int):
    task = _task_or_404(task_id)
    _visible(task)
    query = select(ProgressEvent).where(ProgressEvent.task_id == task.id).order_by(ProgressEvent.id)
    return paginate(get_session(), query, "api.task_events", event_json, task_id=task_id)


@bp.post("/tasks/<int:task_id>/cancel")
@require("admin")
def cancel_task(task_id: int):
    reason = json_body().get("reason") or "cancelled by an admin"
    task = commands.cancel(get_session(), task_id, actor=current_principal().actor, reason=reason)
    return task_json(task, detail=True)


@bp.post("/tasks/<int:task_id>/retry")
@require("admin")
def retry_task(task_id: int):
    """Queue a failed task again now, whatever its attempt count."""
    actor = current_principal().actor
    task = commands.retry(get_session(), task_id, actor=actor, reason="retried by an admin")
    services().processor.notify()
    return task_json(task, detail=True)


@bp.post("/tasks/<int:task_id>/claim")
@require("agent")
def claim_task(task_id: int):
    """Confirm a claim read from a queue: 200 with the task, or 409/403 (acknowledge and drop)."""
    session = get_session()
    principal = current_principal()
    ccc = services()
    try:
        task = tasks.claim_task(session, ccc.config, task_id, principal.agent, utcnow())
    except (Conflict, Forbidden):
        session.commit()  # keep queue_entry=NULL so the task is offered again
        raise
    grant = _grant(session, task, principal)
    outbox.comment(
        session,
        task.repository,
        task.issue_number,
        f"Agent `{principal.name}` picked this up ({task.specialty}, complexity "
        f"{task.complexity}, attempt {task.attempts}).",
    )
    audit.record(session, principal.actor, "task.claim", str(task.id))
    session.commit()
    return {**task_json(task, detail=True), "attempt": task.attempt_id, "github": grant}


@bp.post("/tasks/<int:task_id>/github-token")
@require("agent")
def github_token(task_id: int):
    """A fresh GitHub grant for a task the agent holds: to push, or to renew one.

    The request names the ``ref`` the agent will push: the task's own branch, and no other.
    """
    task = _owned(task_id)
    ref = json_body()["ref"]
    if ref != f"refs/heads/{task.branch}":
        raise Forbidden(f"task {task_id} may push refs/heads/{task.branch} only, not {ref}")
    session = get_session()
    grant = _grant(session, task, current_principal())
    audit.record(session, current_principal().actor, "task.github_token", str(task.id))
    session.commit()
    return grant


def _grant(session, task: Task, principal) -> dict:
    """The task's GitHub grant. GitHub's refusal about the task's repository (not installed,
    taken out of the installation, suspended) fails the task for good (409); anything else,
    an outage or the coordinator's own sign-in, leaves the task as it was (503: the agent
    tries again later)."""
    ccc = services()
    if not served.is_served(session, ccc.config, task.repository):
        error = f"{task.repository} is no longer served by this cluster"
    else:
        try:
            return grants.for_task(task, ccc.gateway, ccc.config.github_api_url)
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            if not failure.permanent or failure.status not in REPOSITORY_REFUSALS:
                session.rollback()
                if failure.permanent:  # 401: the App's key or clock; an operator must look
                    logger.error("GitHub refused the cluster's own credentials: %s", failure)
                raise Unavailable(f"no GitHub token for task {task.id} now: {failure}") from exc
            error = f"GitHub gives no access to {task.repository}: {failure.reason}"
    tasks.fail_task(session, ccc.config, task, actor=principal.actor, error=error, permanent=True)
    session.commit()
    raise Conflict(f"task {task.id} failed: {error}")


@bp.post("/tasks/<int:task_id>/release")
@require("agent")
def release_task(task_id: int):
    """The agent hands a task back (warm stop, drain): it is queued for another agent."""
    task = _owned(task_id)
    reason = json_body().get("reason") or "handed back"
    commands.release(get_session(), task, actor=current_principal().actor, reason=reason)
    services().processor.notify()
    return task_json(task)


@bp.patch("/tasks/<int:task_id>")
@require("agent")
def update_task(task_id: int):
    """Progress of the state (in_progress, testing) and the branch/PR as they appear."""
    task = _owned(task_id)
    data = json_body()
    session = get_session()
    principal = current_principal()
    _apply_branch_fields(task, data)
    if "state" in data:
        state = TaskState(data["state"])
        if state not in AGENT_REPORTABLE:
            raise InvalidRequest(
                f"agents report {sorted(s.value for s in AGENT_REPORTABLE)} "
                "here; completion and failure go to /result"
            )
        if state.value != task.state:
            tasks.transition(
                session, task, state, actor=principal.actor, reason=data.get("reason", "")
            )
    session.commit()
    return task_json(task)


def _apply_branch_fields(task: Task, data: dict) -> None:
    """The branch and pull request an agent reports, as they appear. A pull request URL is
    accepted only as the web page of the task's own repository's pull request: the admin
    pages and comments link to it."""
    if "branch" in data and data["branch"] != task.branch:
        raise InvalidRequest(f"task {task.id} works on {task.branch}, not {data['branch']}")
    for key in ("pr_number", "pr_url"):
        if key in data:
            setattr(task, key, data[key])
    if "pr_url" in data and not is_pull_request_url(
        task.pr_url, services().config.github_api_url, task.repository, task.pr_number
    ):
        raise InvalidRequest(
            f"pr_url must be the pull request #{task.pr_number} of {task.repository} on GitHub"
        )


@bp.post("/tasks/<int:task_id>/events")
@require("agent")
def add_events(task_id: int):
    """Progress events (turns, tool calls, tests, tokens, cost); token and cost fields add up."""
    task = _owned(task_id)
    events = json_body()["events"]
    session = get_session()
    for item in events:
        payload = item.get("data", {})
        task.input_tokens += payload.get("input_tokens", 0)
        task.output_tokens += payload.get("output_tokens", 0)
        task.cost_usd = Decimal(task.cost_usd or 0) + Decimal(str(payload.get("cost_usd", 0)))
        session.add(
            ProgressEvent(
                task_id=task.id, agent_id=task.agent_id, kind=item["kind"][:40], data=payload
            )
        )
    if task.cost_usd >= COST_LIMIT:
        raise InvalidRequest(f"the task's cost would reach ${COST_LIMIT:,}, more than it records")
    session.commit()
    return {
        "accepted": len(events),
        "input_tokens": task.input_tokens,
        "output_tokens": task.output_tokens,
        "cost_usd": float(task.cost_usd),
    }


@bp.post("/tasks/<int:task_id>/result")
@require("agent")
def finish_task(task_id: int):
    """The end of a run: ``completed`` (its PR is open: the task waits in review until GitHub
    merges or closes it) or ``failed`` (with the error)."""
    task = _owned(task_id)
    data = json_body()
    session = get_session()
    ccc = services()
    actor = current_principal().actor
    _apply_branch_fields(task, data)
    task.result = {k: data[k] for k in ("summary", "tests", "pushed_commit", "limit") if k in data}
    if data["outcome"] == "completed":
        commands.complete(session, task, actor=actor, executor=data.get("executor"))
    else:
        error = data.get("error") or "the agent reported a failure"
        permanent = data.get("permanent", False)
        commands.fail(session, ccc.config, task, actor=actor, error=error, permanent=permanent)
    ccc.processor.notify()
    return task_json(task, detail=True)
