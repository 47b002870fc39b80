"""The coordinator running playbooks/autoscale.yml through ansible-runner, and the record of it.

Off until an admin enables it (admin pages or `ccc scale enable`). While enabled, the
processor starts a run every ``[autoscale] interval_seconds``. An admin's "Run now" records a
requested run and wakes the processor, which starts it on its next pass: web workers run no
playbook. One run at a time in the whole cluster: a run holds a PostgreSQL advisory lock on its
own connection for as long as it lasts, so processors on other hosts and `ccc scale run` never
run the playbook side by side, and a run left "running" by a process that died is marked lost
by the next one.

Every Ansible event with output is stored as it happens (ScalingEvent), with the plan the
playbook read from GET /api/v1/scaling and the recap, so the admin pages show what each run
did. The playbook's secrets come from ``extra_vars_file`` as ``-e @FILE``: they are not copied
into ansible-runner's directories, and Ansible's own output hides ``no_log`` results.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from coordinator_app import audit, schedules
from coordinator_app.config import Autoscale
from coordinator_app.db import Database
from coordinator_app.exceptions import Conflict
from coordinator_app.models import ScalingEvent, ScalingRun, Setting, utcnow

logger = logging.getLogger(__name__)

ENABLED_KEY = "autoscale_enabled"
LOCK_KEY = 0x43434353  # "CCCS": the advisory lock one scaling run holds
MAX_STDOUT = 8000  # characters of one event's output kept
# ansible-runner's outcomes, plus "error" (the run could not start) and "lost".
FINISHED = ("successful", "failed", "timeout", "canceled", "error", "lost")
REQUESTED = "requested"  # an admin asked for a run; the processor starts it


class AutoscaleUnavailable(Conflict):
    """This coordinator is not set up to run the playbook (the message says what is missing)."""


class AutoscaleBusy(Conflict):
    """Another scaling run is in progress."""


def is_enabled(session: Session) -> bool:
    """Whether an admin turned scheduled autoscaling on."""
    setting = session.get(Setting, ENABLED_KEY)
    return bool(setting and setting.value)


def set_enabled(session: Session, enabled: bool, actor: str) -> None:
    """Turn scheduled autoscaling on or off (audited; the caller commits)."""
    setting = session.get(Setting, ENABLED_KEY)
    if setting is None:
        session.add(Setting(key=ENABLED_KEY, value=enabled, updated_by=actor))
    else:
        setting.value, setting.updated_by = enabled, actor
    audit.record(session, actor, "autoscale.enable" if enabled else "autoscale.disable")


def unavailable_reason(settings: Autoscale) -> str | None:
    """Why a coordinator with these settings cannot run the playbook, or None when it can."""
    s = settings
    if not s.project_dir:
        return "autoscale.project_dir is not set: the Ansible project is not on this host"
    playbook = Path(s.project_dir, s.playbook)
    if not playbook.is_file():
        return f"the playbook {playbook} does not exist"
    if not s.inventory or not Path(s.inventory).exists():
        return f"the inventory {s.inventory or '(autoscale.inventory unset)'} does not exist"
    if s.extra_vars_file and not Path(s.extra_vars_file).is_file():
        return f"the extra vars file {s.extra_vars_file} does not exist"
    try:
        import ansible_runner  # noqa: F401
    except ImportError:
        return "ansible-runner is not installed here (install the `scaling` extra)"
    return None


def request_run(session: Session, settings: Autoscale, actor: str) -> int:
    """An admin's "Run now": record a run for the processor to start on its next pass; its id.
    One request waits at a time (a run in progress delays it, it does not refuse it). The
    caller commits, then wakes the processor."""
    reason = unavailable_reason(settings)
    if reason:
        raise AutoscaleUnavailable(reason)
    waiting = session.scalar(select(ScalingRun.id).where(ScalingRun.status == REQUESTED))
    if waiting is not None:
        raise AutoscaleBusy(f"scaling run {waiting} is already requested")
    run = ScalingRun(trigger="admin", requested_by=actor, status=REQUESTED)
    session.add(run)
    session.flush()
    schedules.make_due(session, schedules.AUTOSCALE)
    return run.id


class EventRecorder:
    """ansible-runner's event handler: stores each event with output, and the plan it read."""

    def __init__(self, database: Database, run_id: int, echo: Callable[[str], None] | None):
        self.database, self.run_id, self.echo = database, run_id, echo

    def __call__(self, event: dict[str, Any]) -> bool:
        stdout = (event.get("stdout") or "").strip()
        data = event.get("event_data") or {}
        plan = None
        if event.get("event") == "runner_on_ok" and str(data.get("task_action", "")).endswith(
            "cluster_scaling_facts"
        ):
            plan = data.get("res") or {}
        try:
            self._store(event, data, stdout, plan)
        except SQLAlchemyError as exc:  # the playbook goes on; ansible-runner keeps the event
            logger.warning("Scaling run %s: event not recorded: %s", self.run_id, exc)
        if stdout and self.echo:
            self.echo(stdout)
        return True  # keep the event in ansible-runner's artifacts too

    def _store(self, event: dict, data: dict, stdout: str, plan: dict | None) -> None:
        if not stdout and plan is None:
            return
        with self.database.session() as session:
            if stdout:
                session.add(self._row(event, data, stdout))
            if plan is not None:
                run = session.get(ScalingRun, self.run_id)
                run.scale_up = list(plan.get("scale_up", []))
                run.scale_down = list(plan.get("scale_down", []))
                run.reasons = list(plan.get("reasons", []))

    def _row(self, event: dict[str, Any], data: dict[str, Any], stdout: str) -> ScalingEvent:
        name = event.get("event", "")
        return ScalingEvent(
            run_id=self.run_id,
            seq=int(event.get("counter", 0)),
            event=name[:60],
            host=str(data["host"])[:200] if data.get("host") else None,
            play=data.get("play") or None,
            task=data.get("task") or None,
            changed=bool((data.get("res") or {}).get("changed")) if "res" in data else False,
            failed=name in ("runner_on_failed", "runner_on_unreachable", "runner_item_on_failed")
            and not data.get("ignore_errors"),
            stdout=stdout[-MAX_STDOUT:],
        )


class Autoscaler:
    """Starts scaling runs (now, in the background, or when due) and records them."""

    def __init__(self, database: Database, settings: Autoscale) -> None:
        self.database, self.settings = database, settings
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def unavailable_reason(self) -> str | None:
        """Why this coordinator cannot run the playbook, or None when it can."""
        return unavailable_reason(self.settings)

    # Starting runs ----------------------------------------------------------------------------

    def run(self, trigger: str, actor: str, echo: Callable[[str], None] | None = None) -> int:
        """Run the playbook in this thread; the run's id (its status tells how it ended)."""
        lock, run_id = self._begin(trigger, actor)
        self._execute(lock, run_id, echo)
        return run_id

    def start_if_due(self, now: datetime | None = None) -> int | None:
        """The processor's step: start the run an admin requested, or a scheduled run when
        enabled and due; its id or None."""
        if self._thread and self._thread.is_alive():
            return None
        reason = self.unavailable_reason()
        with self.database.session() as session:
            if reason:  # shown in the admin pages; a request gets it as its outcome
                _refuse_requests(session, reason)
                return None
            requested = session.scalar(
                select(func.min(ScalingRun.id)).where(ScalingRun.status == REQUESTED)
            )
            if requested is None and (
                not is_enabled(session) or not self._due(session, now or utcnow())
            ):
                return None
        try:
            lock, run_id = self._begin("schedule", "system", now=now, requested=requested)
        except AutoscaleBusy:
            return None  # another process runs one; the request waits for the next look
        if run_id is None:  # another process ran it between our look and the lock
            _release(lock)
            return None
        self._spawn(lock, run_id)
        return run_id

    def stop(self, timeout: float = 30) -> None:
        """Cancel a background run (the coordinator is stopping) and wait for its record."""
        self._cancel.set()
        if self._thread:
            self._thread.join(timeout)

    def _due(self, session: Session, now: datetime) -> bool:
        last = session.scalar(select(func.max(ScalingRun.started_at)))
        return last is None or now - last >= timedelta(seconds=self.settings.interval_seconds)

    def _begin(
        self, trigger: str, actor: str, now: datetime | None = None, requested: int | None = None
    ) -> tuple[Connection, Any]:
        """Take the lock, close runs a dead process left, record the new run (or start the
        ``requested`` one)."""
        reason = self.unavailable_reason()
        if reason:
            raise AutoscaleUnavailable(reason)
        lock = self.database.engine.connect()
        try:
            if not lock.execute(select(func.pg_try_advisory_lock(LOCK_KEY))).scalar():
                raise AutoscaleBusy("another scaling run is in progress")
            lock.commit()  # the lock is the session's: do not sit idle in a transaction
            with self.database.session() as session:
                session.execute(
                    update(ScalingRun)
                    .where(ScalingRun.status == "running")
                    .values(
                        status="lost",
                        finished_at=utcnow(),
                        error="the coordinator process running it stopped",
                    )
                )
                if requested is not None:
                    run = session.get(ScalingRun, requested, with_for_update=True)
                    if run is None or run.status != REQUESTED:
                        return lock, None
                    run.status, run.started_at = "running", utcnow()
                    return lock, run.id
                if trigger == "schedule" and not self._due(session, now or utcnow()):
                    return lock, None
                run = ScalingRun(trigger=trigger, requested_by=actor, status="running")
                session.add(run)
                session.flush()
                return lock, run.id
        except BaseException:
            _release(lock)
            raise

    def _spawn(self, lock: Connection, run_id: int) -> None:
        self._cancel.clear()
        self._thread = threading.Thread(
            target=self._execute, args=(lock, run_id, None), name="ccc-autoscale", daemon=True
        )
        self._thread.start()

    # Running ------------------------------------------------------------------------------------

    def _execute(self, lock: Connection, run_id: int, echo: Callable[[str], None] | None) -> None:
        try:
            outcome = self._run_playbook(run_id, echo)
            logger.info("Scaling run %s: %s", run_id, outcome["status"])
        except Exception as exc:  # recorded: an admin sees why the run never got going
            logger.exception("Scaling run %s could not run", run_id)
            outcome = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            _release(lock)
        self._finish(run_id, outcome)

    def _run_playbook(self, run_id: int, echo: Callable[[str], None] | None) -> dict[str, Any]:
        import ansible_runner

        s = self.settings
        private = Path(s.data_dir, f"run-{run_id}")
        private.mkdir(parents=True, mode=0o700)
        Path(s.data_dir).chmod(0o700)  # artifacts hold the playbook's full results
        cmdline = ["-e", f"@{s.extra_vars_file}"] if s.extra_vars_file else []
        bin_dir = str(Path(sys.executable).parent)  # ansible-playbook of this virtualenv
        result = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=s.project_dir,
            playbook=s.playbook,
            inventory=s.inventory,
            cmdline=shlex.join(cmdline) or None,
            envvars={
                "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_CONFIG": str(Path(s.project_dir, "ansible.cfg")),
            },
            event_handler=EventRecorder(self.database, run_id, echo),
            cancel_callback=self._cancel.is_set,
            timeout=s.timeout_seconds,
            quiet=True,
        )
        outcome: dict[str, Any] = {"status": result.status, "rc": result.rc}
        outcome["stats"] = result.stats or {}
        if result.status != "successful":
            outcome["error"] = self._failure_summary(run_id, result.status)
        return outcome

    def _failure_summary(self, run_id: int, status: str) -> str:
        if status == "timeout":
            return f"stopped after {self.settings.timeout_seconds}s (autoscale.timeout_seconds)"
        if status == "canceled":
            return "canceled: the coordinator stopped"
        with self.database.session() as session:
            failed = session.scalars(
                select(ScalingEvent)
                .where(ScalingEvent.run_id == run_id, ScalingEvent.failed)
                .order_by(ScalingEvent.seq)
            ).first()
            if failed:
                return f"{failed.task} on {failed.host}: {failed.stdout[-1000:]}"
            last = session.scalars(
                select(ScalingEvent)
                .where(ScalingEvent.run_id == run_id)
                .order_by(ScalingEvent.seq.desc())
            ).first()
            return last.stdout[-1000:] if last else "the playbook failed before any output"

    def _finish(self, run_id: int, outcome: dict[str, Any]) -> None:
        with self.database.session() as session:
            run = session.get(ScalingRun, run_id)
            run.status = outcome["status"]
            run.rc = outcome.get("rc")
            run.stats = outcome.get("stats") or {}
            run.error = outcome.get("error")
            run.finished_at = utcnow()
            newest = select(ScalingRun.id).order_by(ScalingRun.id.desc())
            old = newest.offset(self.settings.keep_runs).scalar_subquery()
            session.execute(delete(ScalingRun).where(ScalingRun.id.in_(old)))


def _refuse_requests(session: Session, reason: str) -> None:
    """Close requested runs this coordinator cannot start, with the reason."""
    session.execute(
        update(ScalingRun)
        .where(ScalingRun.status == REQUESTED)
        .values(status="error", error=reason, finished_at=utcnow())
    )


def _release(lock: Connection) -> None:
    """Give the advisory lock back, then the connection (a pooled one would keep the lock)."""
    with contextlib.suppress(Exception):
        lock.execute(select(func.pg_advisory_unlock(LOCK_KEY)))
        lock.commit()
    lock.close()
