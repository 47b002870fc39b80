"""`ccc`: the coordinator's command line (migrations, admins, agents, GitHub sync, scaling)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys

import click
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from cluster_core import systemd
from cluster_core.errors import ConfigError
from cluster_core.specialties import SPECIALTIES
from coordinator_app import agents as registry
from coordinator_app import audit, autoscaler, commands, migrate, scaling
from coordinator_app.app import create_app
from coordinator_app.autoscaler import Autoscaler
from coordinator_app.config import CoordinatorConfig
from coordinator_app.db import Database
from coordinator_app.exceptions import CoordinatorError
from coordinator_app.models import AdminUser, ScalingRun, utcnow

# What a command reports as its error message rather than a traceback.
FAILURES = (ConfigError, CoordinatorError)


def _config(ctx: click.Context) -> CoordinatorConfig:
    try:
        return CoordinatorConfig.load(ctx.obj.get("config_path"))
    except FAILURES as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: $CCC_CONFIG or /etc/claude-coordinator/coordinator.toml).",
)
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Claude Code Cluster coordinator administration."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"config_path": config_path}


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the database to the newest schema (safe to run again)."""
    config = _config(ctx)
    migrate.upgrade(config.database_url)
    click.echo(f"database at revision {migrate.current(config.database_url)}")


@contextlib.contextmanager
def _session(ctx: click.Context):
    """A committed-on-success session on the configured database, disposed afterwards."""
    database = Database(_config(ctx).database_url)
    try:
        with database.session() as session:
            yield session
    except FAILURES as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.dispose()


@main.command("create-admin")
@click.argument("username")
@click.option(
    "--password-env",
    default="CCC_ADMIN_PASSWORD",
    show_default=True,
    help="Environment variable holding the password (else you are prompted).",
)
@click.option("--update/--no-update", default=False, help="Change the password if the user exists.")
@click.pass_context
def create_admin(ctx: click.Context, username: str, password_env: str, update: bool) -> None:
    """Create an admin user (or, with --update, reset its password). Prints changed/unchanged."""
    password = os.environ.get(password_env) or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    if len(password) < 12:
        raise click.ClickException("the password must be at least 12 characters")
    with _session(ctx) as session:
        user = session.scalar(select(AdminUser).where(AdminUser.username == username))
        if user and not update:
            click.echo(f"admin {username} unchanged (exists)")
            return
        if user is None:
            user = AdminUser(username=username, password_hash="")
            session.add(user)
        user.password_hash = generate_password_hash(password)
        audit.record(session, "cli", "admin.create", username)
    click.echo(f"admin {username} changed")


@main.command("create-agent")
@click.argument("name")
@click.option(
    "--specialty",
    "specialties",
    multiple=True,
    type=click.Choice(SPECIALTIES),
    required=True,
    help="Repeat for several.",
)
@click.option("--max-tasks", default=1, show_default=True)
@click.option("--clearance", default="standard", type=click.Choice(["standard", "restricted"]))
@click.pass_context
def create_agent(ctx, name: str, specialties: tuple[str, ...], max_tasks: int, clearance: str):
    """Register an agent and print its key as JSON (shown only this once)."""
    with _session(ctx) as session:
        agent, key = registry.register_agent(
            session, registry.AgentSpec(name, list(specialties), max_tasks, clearance)
        )
        audit.record(session, "cli", "agent.register", name)
        click.echo(json.dumps({"id": agent.id, "name": agent.name, "key": key}))


@main.command("sync-github")
@click.pass_context
def sync_github(ctx: click.Context) -> None:
    """Poll the configured repositories for labelled issues once (the webhook fallback)."""
    app = _app(ctx)
    created = app.extensions["ccc"].processor.poll()
    click.echo(f"{created} task(s) created")


@main.command("process")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between passes.")
@click.pass_context
def process(ctx: click.Context, interval: float) -> None:
    """Run the background processor (the claude-coordinator-processor unit): active while it
    holds the cluster's processor lock, standing by while another processor does."""
    processor = _app(ctx).extensions["ccc"].processor
    signal.signal(signal.SIGTERM, lambda *_: processor.request_stop())
    systemd.notify(ready="1", status="starting")
    try:
        processor.run(interval, report=lambda status: systemd.notify(status=status))
    except KeyboardInterrupt:
        pass
    finally:
        systemd.notify(stopping="1")
        processor.stop()


@main.group()
def task() -> None:
    """Task operations, as the API and the admin pages do them (audited as cli:<user>)."""


@task.command("cancel")
@click.argument("task_id", type=int)
@click.option("--reason", default="cancelled from the command line", show_default=True)
@click.pass_context
def task_cancel(ctx: click.Context, task_id: int, reason: str) -> None:
    """Cancel a task that is not final."""
    with _session(ctx) as session:
        done = commands.cancel(session, task_id, actor=_operator(), reason=reason)
        click.echo(f"task {done.id}: {done.state}")


@task.command("retry")
@click.argument("task_id", type=int)
@click.pass_context
def task_retry(ctx: click.Context, task_id: int) -> None:
    """Queue a failed task again now, whatever its attempt count."""
    with _session(ctx) as session:
        reason = "retried from the command line"
        done = commands.retry(session, task_id, actor=_operator(), reason=reason)
        click.echo(f"task {done.id}: {done.state}")


@main.group()
def scale() -> None:
    """Autoscaling: the decision, and running playbooks/autoscale.yml from the coordinator."""


@scale.command("plan")
@click.pass_context
def scale_plan(ctx: click.Context) -> None:
    """Print the current decision: desired, live and delta agents per specialty."""
    config = _config(ctx)
    with _session(ctx) as session:
        decisions, _ = scaling.current(session, config, utcnow())
    for name, decision in decisions.items():
        click.echo(f"{name}: {json.dumps(decision.as_json(), sort_keys=True)}")


@scale.command("run")
@click.pass_context
def scale_run(ctx: click.Context) -> None:
    """Run the autoscale playbook now, showing its output; exits 1 unless it succeeded."""
    config = _config(ctx)
    database = Database(config.database_url)
    try:
        run_id = Autoscaler(database, config.autoscale).run("cli", _operator(), echo=click.echo)
        with database.session() as session:
            run = session.get(ScalingRun, run_id)
            status, error = run.status, run.error
    except FAILURES as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        database.dispose()
    click.echo(f"scaling run {run_id}: {status}")
    if status != "successful":
        raise click.ClickException(error or status)


@scale.command("enable")
@click.pass_context
def scale_enable(ctx: click.Context) -> None:
    """Let the coordinator run the playbook every autoscale.interval_seconds."""
    _set_autoscale(ctx, enabled=True)


@scale.command("disable")
@click.pass_context
def scale_disable(ctx: click.Context) -> None:
    """Stop scheduled runs (a run in progress finishes)."""
    _set_autoscale(ctx, enabled=False)


def _set_autoscale(ctx: click.Context, enabled: bool) -> None:
    with _session(ctx) as session:
        autoscaler.set_enabled(session, enabled, _operator())
    click.echo(f"autoscaling {'enabled' if enabled else 'disabled'}")


@scale.command("status")
@click.option("--runs", default=10, show_default=True, help="How many recent runs to list.")
@click.pass_context
def scale_status(ctx: click.Context, runs: int) -> None:
    """Whether autoscaling is enabled and can run here, and the recent runs."""
    config = _config(ctx)
    reason = autoscaler.unavailable_reason(config.autoscale)
    with _session(ctx) as session:
        enabled = autoscaler.is_enabled(session)
        recent = session.scalars(select(ScalingRun).order_by(ScalingRun.id.desc()).limit(runs))
        click.echo(f"autoscaling {'enabled' if enabled else 'disabled'}")
        click.echo(f"runs here: {'yes' if reason is None else 'no, ' + reason}")
        for run in recent:
            moves = [f"+{h}" for h in run.scale_up] + [f"-{h}" for h in run.scale_down]
            click.echo(
                f"#{run.id} {run.started_at:%Y-%m-%d %H:%M:%S} {run.trigger} by "
                f"{run.requested_by}: {run.status} {' '.join(moves) or '(no moves)'}"
            )


def _operator() -> str:
    """Who runs the command, for the audit log and the run's record."""
    return f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or os.getuid()}"


def _app(ctx: click.Context):
    try:
        return create_app(_config(ctx))
    except FAILURES as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    sys.exit(main())
