"""One active processor in the cluster: the holder of PostgreSQL's advisory lock. The others
stand by and take over when it stops or dies; its duties keep their rhythm in PostgreSQL; the
web workers wake it wherever it runs."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from sqlalchemy import text

from coordinator_app import schedules
from coordinator_app.leadership import Leadership, holder
from coordinator_app.models import Task, utcnow
from coordinator_app.processor import Processor
from tests.coordinator.test_admin_pages import admin_session
from tests.coordinator.test_api_tasks import create
from tests.lab_checks import wait_until

STANDBY = 0.1  # seconds between a standby's tries (production: 2)


def wait_for(condition, timeout: float = 20.0):
    """``condition()`` once it is truthy (polled every 50 ms)."""
    return wait_until(getattr(condition, "__name__", "a condition"), condition, timeout, 0.05)


def current_holder(ccc) -> str | None:
    with ccc.database.session() as session:
        return holder(session)


@contextlib.contextmanager
def processors(ccc, *names: str, interval: float = 0.2, first_leads: bool = True):
    """Processors of the same cluster (as on several coordinator hosts), running in threads;
    the first one named takes the lock before the next starts (``first_leads``)."""
    started = []
    statuses: dict[str, list[str]] = {}
    try:
        for name in names:
            processor = Processor(ccc.database, ccc.config, ccc.queues, ccc.gateway)
            processor.name = name
            statuses[name] = []
            processor.start(interval=interval, standby=STANDBY, report=statuses[name].append)
            started.append(processor)
            if first_leads and len(started) == 1:
                wait_for(lambda: current_holder(ccc) == names[0])
        yield started, statuses
    finally:
        for processor in started:
            processor.stop()


def test_one_processor_is_active_and_another_takes_over_when_it_stops(ccc):
    with processors(ccc, "processor a", "processor b") as ((a, _), statuses):
        wait_for(lambda: statuses["processor b"])
        assert current_holder(ccc) == "processor a"
        assert statuses["processor a"] == ["active"]
        assert statuses["processor b"] == ["standby: another processor is active"]
        a.stop()
        assert wait_for(lambda: current_holder(ccc)) == "processor b"
        wait_for(lambda: "active" in statuses["processor b"])


def test_a_holder_whose_connection_dies_loses_the_lock_and_a_standby_takes_it(ccc):
    with processors(ccc, "processor b"):
        leader = Leadership(ccc.config.database_url, "processor gone")
        assert not leader.try_take()  # b holds it
    # b stopped; a holder that then vanishes (its host died): PostgreSQL ends its session.
    try:
        assert leader.try_take() and leader.holds()
        with processors(ccc, "processor c", first_leads=False):
            with ccc.database.session() as session:
                session.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'processor gone'"
                    )
                )
            # The terminated session may show as the holder for a moment: wait for the standby.
            wait_for(lambda: current_holder(ccc) == "processor c")
            assert not leader.holds()  # the old holder finds out before its next pass
    finally:
        leader.release()


def test_a_stored_change_wakes_the_active_processor_wherever_it_runs(ccc, client, admin_headers):
    # A pass every 60 s: only the wake-up sent by the API can offer the task sooner.
    with processors(ccc, "processor elsewhere", interval=60):
        task = create(client, admin_headers)

        def offered():
            with ccc.database.session() as session:
                return session.get(Task, task["id"]).queue_entry

        assert wait_for(offered)


def test_a_duty_runs_once_per_interval_whichever_processor_asks(ccc):
    now = utcnow()
    with ccc.database.session() as session:
        assert schedules.start_if_due(session, schedules.POLL, 60, now, "processor a")
    with ccc.database.session() as session:  # another processor, after a takeover
        later = now + timedelta(seconds=30)
        assert not schedules.start_if_due(session, schedules.POLL, 60, later, "processor b")
        later = now + timedelta(seconds=60)
        assert schedules.start_if_due(session, schedules.POLL, 60, later, "processor b")
        schedules.finished(session, schedules.POLL, later, "GitHub unavailable")
    with ccc.database.session() as session:
        row = schedules.get(session, schedules.POLL)
        assert (row.run_by, row.last_error, row.last_ok_at) == (
            "processor b",
            "GitHub unavailable",
            None,
        )
        schedules.make_due(session, schedules.POLL)
    with ccc.database.session() as session:
        assert schedules.start_if_due(session, schedules.POLL, 60, later, "processor b")


def test_the_overview_names_the_active_processor_and_its_duties(ccc, server, admin_user):
    session = admin_session(server.url)
    with processors(ccc, "processor on coord-2"):
        wait_for(lambda: schedules_listed(ccc))
        page = session.get(f"{server.url}/admin/", timeout=5).text
    assert "Background work runs on <b>processor on coord-2</b>" in page
    assert "<td>reviews</td>" in page and "processor on coord-2" in page.split('id="duties"')[1]
    idle = session.get(f"{server.url}/admin/", timeout=5).text
    assert "No processor is active" in idle


def schedules_listed(ccc) -> bool:
    with ccc.database.session() as session:
        return any(duty.name == schedules.REVIEWS for duty in schedules.listing(session))
