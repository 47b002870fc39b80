"""The processor's periodic duties, timed in PostgreSQL (``processor_schedules``).

A duty runs when its row says it has not run for its interval. The row outlives the process, so
a processor that takes over from another keeps the same rhythm (no second poll of GitHub right
after a failover), and the admin pages read when each duty last ran and how it went.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from coordinator_app.models import ProcessorSchedule

SYNC = "repository_sync"  # App mode: the installations' repositories read again
POLL = "poll"  # the polling fallback for labelled issues
REVIEWS = "reviews"  # pull requests in review read back, quiet ones reminded
AUTOSCALE = "autoscale"  # a scheduled scaling run started when due


def start_if_due(session: Session, name: str, every: float, now: datetime, run_by: str) -> bool:
    """Mark ``name`` as run now if it last ran ``every`` seconds ago or more (or never): True
    when the caller should run it. One statement, so two callers never both get True."""
    table = ProcessorSchedule.__table__
    statement = (
        insert(table)
        .values(name=name, last_run_at=now, run_by=run_by)
        .on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"last_run_at": now, "run_by": run_by},
            where=or_(
                table.c.last_run_at.is_(None),
                table.c.last_run_at <= now - timedelta(seconds=every),
            ),
        )
        .returning(table.c.name)
    )
    return session.execute(statement).first() is not None


def finished(session: Session, name: str, now: datetime, error: str | None = None) -> None:
    """Record how the run of ``name`` that started last ended: ``error`` None is a success."""
    values = {"last_error": error} if error else {"last_error": None, "last_ok_at": now}
    session.execute(update(ProcessorSchedule).where(ProcessorSchedule.name == name).values(values))


def get(session: Session, name: str) -> ProcessorSchedule | None:
    return session.get(ProcessorSchedule, name)


def make_due(session: Session, name: str) -> None:
    """Let ``name`` run on the processor's next pass, whenever it last ran."""
    session.execute(
        update(ProcessorSchedule).where(ProcessorSchedule.name == name).values(last_run_at=None)
    )


def listing(session: Session) -> list[ProcessorSchedule]:
    return list(session.query(ProcessorSchedule).order_by(ProcessorSchedule.name))
