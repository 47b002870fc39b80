"""The admin views: read pages and the few actions an operator needs (cancel, retry, drain,
autoscaling)."""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from flask import abort, flash, redirect, render_template, request, url_for
from flask import session as flask_session
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from cluster_core import storable
from cluster_core.states import TaskState
from coordinator_app import (
    acceptance,
    agents,
    audit,
    autoscaler,
    commands,
    dispatch,
    leadership,
    ratelimit,
    reviews,
    scaling,
    schedules,
    served,
    test_results,
)
from coordinator_app.admin import bp
from coordinator_app.auth import admin_fingerprint
from coordinator_app.db import INT_MAX, get_session
from coordinator_app.exceptions import CoordinatorError, NotFound, RateLimited
from coordinator_app.models import (
    AdminUser,
    Agent,
    AuditEntry,
    OutboxMessage,
    ProgressEvent,
    ScalingRun,
    Task,
    utcnow,
)
from coordinator_app.services import services

PAGE_SIZE = 50


# Compared against when the user does not exist, so both answers take as long.
_NO_SUCH_USER_HASH = generate_password_hash("no such user")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        session = get_session()
        username = request.form.get("username", "")
        ccc = services()
        try:
            per_minute = ccc.config.login_attempts_per_minute
            ratelimit.check(ccc.redis, "login-address", per_minute)
            ratelimit.check(ccc.redis, "login-user", per_minute, subject=username.lower()[:100])
        except RateLimited:
            flash("Too many log-in attempts; wait a minute.")
            return render_template("admin/login.html"), 429
        user = None
        if not storable.UNSTORABLE.search(username):  # else no one's, and PostgreSQL's error
            user = session.scalar(select(AdminUser).where(AdminUser.username == username))
        password = request.form.get("password", "")
        matches = check_password_hash(user.password_hash if user else _NO_SUCH_USER_HASH, password)
        if user and matches:
            flask_session.clear()  # a fresh session: nothing from before the log-in carries over
            login_user(user)
            flask_session["password_fingerprint"] = admin_fingerprint(user)
            audit.record(session, f"admin:{user.username}", "login", user.username)
            session.commit()
            target = request.args.get("next", "")
            # Only local paths: an open redirect would let a link send the admin elsewhere.
            if not target.startswith("/admin") or target.startswith("//"):
                target = url_for("admin.overview")
            return redirect(target)
        flash("Wrong username or password.")
    return render_template("admin/login.html")


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flask_session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/")
@login_required
def overview():
    session = get_session()
    ccc = services()
    by_state = dict(session.execute(select(Task.state, func.count()).group_by(Task.state)).all())
    states = agents.states_by_agent(session, ccc.config, utcnow())
    try:
        depth = ccc.queues.depth()
    except redis.RedisError:  # the page stays useful when Redis is down
        depth = None
    return render_template(
        "admin/overview.html",
        by_state=by_state,
        task_states=list(TaskState),
        agents=states.values(),
        depth=depth,
        unclaimable=dispatch.waiting_without_taker(session, ccc.config, utcnow()),
        processor=leadership.holder(session),
        duties=schedules.listing(session),
        now=utcnow(),
    )


@bp.get("/tasks")
@login_required
def task_list():
    page = min(max(request.args.get("page", 1, type=int), 1), INT_MAX)
    query = select(Task).order_by(Task.id.desc())
    state = request.args.get("state")
    if state not in {s.value for s in TaskState}:
        state = None  # all tasks, rather than none or an error
    if state:
        query = query.where(Task.state == state)
    items = get_session().scalars(query.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
    return render_template(
        "admin/tasks.html",
        tasks=items[:PAGE_SIZE],
        page=page,
        state=state,
        has_next=len(items) > PAGE_SIZE,
        task_states=list(TaskState),
    )


@bp.get("/tasks/<int:task_id>")
@login_required
def task_detail(task_id: int):
    session = get_session()
    task = session.get(Task, task_id) or abort(404)
    events = session.scalars(
        select(ProgressEvent).where(ProgressEvent.task_id == task_id).order_by(ProgressEvent.id)
    ).all()
    # The final result once there is one, else the latest run an agent reported.
    tests = (task.result or {}).get("tests") or next(
        (e.data for e in reversed(events) if e.kind == "tests"), None
    )
    unclaimable = None
    if task.state == TaskState.QUEUED.value:
        live = dispatch.live_agents(session, services().config, utcnow())
        unclaimable = dispatch.unclaimable(task, live)
    return render_template(
        "admin/task.html",
        task=task,
        unclaimable=unclaimable,
        events=events,
        tests_status=test_results.status(tests),
        tests_line=test_results.describe(tests),
    )


@bp.post("/tasks/<int:task_id>/<any(cancel, retry):action>")
@login_required
def task_action(task_id: int, action: str):
    session = get_session()
    command = commands.cancel if action == "cancel" else commands.retry
    reason = "cancelled in the admin pages" if action == "cancel" else "retried in the admin pages"
    try:
        command(session, task_id, actor=f"admin:{current_user.username}", reason=reason)
        services().processor.notify()
        flash(f"Task {task_id}: {action} done.")
    except NotFound:
        abort(404)
    except CoordinatorError as exc:
        session.rollback()
        flash(f"Task {task_id}: {exc}")
    return redirect(url_for("admin.task_detail", task_id=task_id))


@bp.get("/agents")
@login_required
def agent_list():
    states = agents.states_by_agent(get_session(), services().config, utcnow())
    return render_template("admin/agents.html", agents=states.values(), now=utcnow())


@bp.post("/agents/<int:agent_id>/<any(drain, resume):action>")
@login_required
def agent_action(agent_id: int, action: str):
    session = get_session()
    agent = session.get(Agent, agent_id) or abort(404)
    agent.draining = action == "drain"
    audit.record(session, f"admin:{current_user.username}", f"agent.{action}", agent.name)
    session.commit()
    flash(f"Agent {agent.name}: {'draining' if agent.draining else 'accepting work'}.")
    return redirect(url_for("admin.agent_list"))


@bp.get("/acceptance")
@login_required
def acceptance_page():
    """The acceptance figures as a table and a chart of merge rates, and the pull requests
    waiting too long for a review."""
    by = request.args.get("by")
    if by not in acceptance.GROUPINGS:
        by = acceptance.GROUPINGS[0]  # the default view, rather than an error
    session = get_session()
    now = utcnow()
    *groups, total = acceptance.figures(session, by)
    stale_seconds = services().config.stale_review_seconds
    return render_template(
        "admin/acceptance.html",
        by=by,
        groupings=acceptance.GROUPINGS,
        groups=groups,
        total=total,
        stale_seconds=stale_seconds,
        waiting=reviews.stale_reviews(session, stale_seconds, now),
        now=now,
    )


@bp.app_template_filter("duration")
def duration(seconds: float) -> str:
    """``seconds`` in its two largest units: "2 d 3 h", "13 h", "4 min 10 s"."""
    left, parts = round(abs(seconds)), []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count or parts:  # from the largest unit on, zeros hold their place, unshown
            parts.append(f"{count} {unit}" if count else "")
    shown = " ".join(part for part in parts[:2] if part) or "0 s"
    return f"-{shown}" if seconds < 0 else shown


@bp.app_template_filter("utc")
def utc(moment: datetime) -> str:
    """``moment`` to the minute, in UTC whatever the database session's time zone."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@bp.get("/audit")
@login_required
def audit_log():
    entries = get_session().scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(200))
    return render_template("admin/audit.html", entries=entries)


@bp.get("/github")
@login_required
def github_page():
    """How the cluster reaches GitHub: its identity, served repositories, refused messages."""
    session = get_session()
    ccc = services()
    unsent = (OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None))
    pending = session.scalar(select(func.count()).where(*unsent))
    failed = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.failed_at.is_not(None))
        .order_by(OutboxMessage.failed_at.desc())
        .limit(PAGE_SIZE)
    ).all()
    return render_template(
        "admin/github.html",
        config=ccc.config,
        identity=ccc.gateway.auth.known_login,  # pages never wait for GitHub
        paused=ccc.gateway.paused_seconds(),
        sync_error=getattr(schedules.get(session, schedules.SYNC), "last_error", None),
        served=served.listing(session, ccc.config),
        pending=pending,
        failed=failed,
    )


@bp.get("/scaling")
@login_required
def scaling_page():
    session = get_session()
    ccc = services()
    decisions, _ = scaling.current(session, ccc.config, utcnow())
    runs = session.scalars(select(ScalingRun).order_by(ScalingRun.id.desc()).limit(PAGE_SIZE))
    return render_template(
        "admin/scaling.html",
        enabled=autoscaler.is_enabled(session),
        unavailable=ccc.autoscaler.unavailable_reason(),
        settings=ccc.config.autoscale,
        decisions=decisions,
        runs=runs,
    )


@bp.post("/scaling/<any(enable, disable):action>")
@login_required
def scaling_toggle(action: str):
    session = get_session()
    autoscaler.set_enabled(session, action == "enable", f"admin:{current_user.username}")
    session.commit()
    flash(f"Autoscaling {action}d.")
    return redirect(url_for("admin.scaling_page"))


@bp.post("/scaling/run")
@login_required
def scaling_run_now():
    """Ask the processor for a run (this worker runs no playbook) and show it."""
    actor = f"admin:{current_user.username}"
    session = get_session()
    ccc = services()
    try:
        run_id = autoscaler.request_run(session, ccc.config.autoscale, actor)
    except CoordinatorError as exc:
        flash(f"Cannot start a scaling run: {exc}")
        return redirect(url_for("admin.scaling_page"))
    audit.record(session, actor, "autoscale.run", str(run_id))
    session.commit()
    ccc.processor.notify()
    flash(f"Scaling run {run_id} requested: the processor starts it.")
    return redirect(url_for("admin.scaling_run", run_id=run_id))


@bp.get("/scaling/runs/<int:run_id>")
@login_required
def scaling_run(run_id: int):
    run = get_session().get(ScalingRun, run_id) or abort(404)
    return render_template("admin/scaling_run.html", run=run)
