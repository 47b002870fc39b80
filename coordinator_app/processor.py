"""The coordinator's background work: deliveries, analysis holds, leases, retries, offers, outbox.

It runs as its own service (``ccc process``, the ``claude-coordinator-processor`` unit), never
in the web workers. One processor in the cluster is active at a time (coordinator_app.leadership);
its periodic duties are timed in PostgreSQL (coordinator_app.schedules). Every step runs in its
own transaction and locks rows with SKIP LOCKED, so even a brief overlap at a takeover does
nothing twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import redis
from sqlalchemy import select, text, update
from sqlalchemy.exc import SQLAlchemyError

from cluster_core.github_errors import classify
from cluster_core.queues import TaskQueues
from cluster_core.states import TaskState
from coordinator_app import dispatch, reviews, schedules, served, tasks
from coordinator_app.autoscaler import Autoscaler
from coordinator_app.config import CoordinatorConfig
from coordinator_app.db import Database
from coordinator_app.github_gateway import GitHubGateway, Throttled, send_outbox
from coordinator_app.intake import Intake
from coordinator_app.leadership import CHANNEL, Leadership, identity
from coordinator_app.models import Task, WebhookDelivery, utcnow

logger = logging.getLogger(__name__)

DELIVERY_BATCH = 50


class GitHubUnavailable(Exception):
    """GitHub could not answer; the work is kept and tried again on the next pass."""


def _is_outage(exc: Exception) -> bool:
    """A temporary failure (network, 5xx, rate limit), as opposed to an answer about the
    request itself."""
    if isinstance(exc, Throttled):
        return True
    failure = classify(exc)
    return failure is not None and not failure.permanent


SYNC_RETRY_SECONDS = 30
REVIEW_LOOK_SECONDS = 10  # how often pull requests due for a check or a reminder are looked for
AUTOSCALE_LOOK_SECONDS = 10  # how often the autoscaler is asked whether a run is due
DEPENDENCY_RECHECK = timedelta(seconds=10)
STANDBY_SECONDS = 2.0  # how often a standby processor tries to take over


class Processor:
    """Runs the background steps once (``run_once``), or while it leads (``run``), woken early
    by ``notify``."""

    def __init__(
        self,
        database: Database,
        config: CoordinatorConfig,
        queues: TaskQueues,
        gateway: GitHubGateway,
        clock: Callable[[], datetime] = utcnow,
        autoscaler: Autoscaler | None = None,
    ) -> None:
        self.database, self.config, self.queues, self.gateway = database, config, queues, gateway
        self.clock = clock
        self.autoscaler = autoscaler
        self.name = identity()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._routed_for: frozenset | None = None  # the live agents offers were last routed for
        self._started = clock()

    def notify(self) -> None:
        """Wake the active processor now (a webhook was stored, a task freed), wherever it
        runs, instead of at its next tick. Best effort: the next tick comes anyway."""
        try:
            with self.database.engine.begin() as connection:
                connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
        except SQLAlchemyError as exc:
            logger.debug("Processor not woken: %s", exc)

    def _due(self, name: str, every: float) -> bool:
        with self.database.session() as session:
            return schedules.start_if_due(session, name, every, self.clock(), self.name)

    def _finished(self, name: str, error: str | None = None) -> None:
        with self.database.session() as session:
            schedules.finished(session, name, self.clock(), error)

    def synced(self, session) -> bool:
        """Whether the served repositories are known. In App mode deliveries wait for the first
        sync (before it no repository is served); the list of the last one serves until the
        next succeeds."""
        if not self.config.app_mode:
            return True
        schedule = schedules.get(session, schedules.SYNC)
        if schedule is not None and schedule.last_ok_at is not None:
            return True
        return bool(served.listing(session, self.config))

    def run_once(self) -> dict[str, int]:
        """One pass over every step; each failure is logged and the other steps still run."""
        counts: dict[str, int] = {}
        for name, step in (
            ("synced", self.sync_repositories_if_due),
            ("rebuilt", self.rebuild_queues_if_lost),
            ("deliveries", self.process_deliveries),
            ("released", self.release_dependencies),
            ("reaped", self.reap_leases),
            ("retried", self.retry_failed),
            ("rerouted", self.reroute_offers),
            ("offered", self.offer_queued),
            ("outbox", self.send_outbox),
            ("polled", self.poll_if_due),
            ("reviews", self.follow_reviews_if_due),
            ("autoscaled", self.autoscale_if_due),
        ):
            try:
                counts[name] = step()
            except (SQLAlchemyError, redis.RedisError, OSError) as exc:
                logger.warning("Processor step %s failed: %s", name, exc)
                counts[name] = -1
            except Exception:
                logger.exception("Processor step %s crashed", name)
                counts[name] = -1
        return counts

    # Steps ----------------------------------------------------------------------------------

    def sync_repositories_if_due(self) -> int:
        """App mode: read the installations' repositories again (at start, then every
        repository_sync_seconds), catching up on missed installation webhooks. Returns how
        many were added or removed."""
        if not self.config.app_mode:
            return 0
        with self.database.session() as session:
            last = schedules.get(session, schedules.SYNC)
        failing = last is not None and last.last_error is not None
        every = SYNC_RETRY_SECONDS if failing else self.config.repository_sync_seconds
        if not self._due(schedules.SYNC, every):
            return 0
        try:
            found = {
                name: installation
                for installation, names in self.gateway.auth.installations().items()
                for name in names
            }
        except Exception as exc:
            if classify(exc) is None:
                raise
            logger.warning("Served repositories not synced: %s", classify(exc))
            self._finished(schedules.SYNC, str(classify(exc)))
            return 0
        with self.database.session() as session:
            added, removed = served.replace_all(session, found)
            schedules.finished(session, schedules.SYNC, self.clock())
        return added + removed

    def rebuild_queues_if_lost(self) -> int:
        """If Redis lost the queues, recreate them and offer every queued task again."""
        if self.queues.intact():
            return 0
        self.queues.ensure()
        with self.database.session() as session:
            result = session.execute(
                update(Task).where(Task.state == TaskState.QUEUED.value).values(queue_entry=None)
            )
        logger.warning(
            "Redis had lost the queues: recreated, %s queued task(s) to offer again",
            result.rowcount,
        )
        return result.rowcount

    def process_deliveries(self) -> int:
        """Act on stored webhook deliveries, oldest first (once the served repositories are
        known)."""
        with self.database.session() as session:
            if not self.synced(session):
                return 0
        done = 0
        while True:
            with self.database.session() as session:
                delivery = session.scalar(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.status == "received")
                    .order_by(WebhookDelivery.received_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if delivery is None:
                    return done
                try:
                    self._process(session, delivery)
                except GitHubUnavailable as exc:
                    logger.warning("Delivery %s waits: GitHub unavailable (%s)", delivery.id, exc)
                    return done
                done += 1
            if done >= DELIVERY_BATCH:
                return done

    def _process(self, session, delivery: WebhookDelivery) -> None:
        try:
            with session.begin_nested():
                outcome, task = Intake(session, self.config, self.gateway).handle(
                    delivery.event, delivery.payload
                )
            delivery.status = "ignored" if outcome.startswith("ignored") else "processed"
            delivery.task_id = task.id if task else None
        except Exception as exc:
            if _is_outage(exc):
                raise GitHubUnavailable(str(exc)) from exc  # kept for the next pass
            # Recorded, not retried forever: an admin sees it and can redeliver from GitHub.
            logger.warning("Delivery %s failed: %s", delivery.id, exc, exc_info=True)
            outcome, delivery.status = f"error: {exc}", "failed"
        delivery.outcome = outcome[:2000]
        delivery.processed_at = self.clock()
        logger.info(
            "Delivery %s (%s.%s): %s", delivery.id, delivery.event, delivery.action, outcome
        )

    def release_dependencies(self) -> int:
        """Queue pending tasks whose dependencies have completed since the last look."""
        now = self.clock()
        released = 0
        with self.database.session() as session:
            held = session.scalars(
                select(Task)
                .where(
                    Task.state == TaskState.PENDING.value,
                    Task.updated_at < now - DEPENDENCY_RECHECK,
                )
                .with_for_update(skip_locked=True)
            ).all()
            intake = Intake(session, self.config, self.gateway)
            for task in held:
                if task.specialty is None:  # never analysed (crash mid-way): start over
                    intake.analyze_and_queue(task, task.analysis.get("labels", []), now=now)
                    released += task.state == TaskState.QUEUED.value
                elif intake.queue_if_ready(task, now):
                    released += 1
                else:
                    task.updated_at = now  # look again after DEPENDENCY_RECHECK
        return released

    def reap_leases(self) -> int:
        """Hand back tasks whose lease ran out; not in the first lease after this process
        started: agents that kept working while the coordinator was down need one heartbeat
        to renew, and reaping before it would run their tasks twice."""
        if self.clock() - self._started < timedelta(seconds=self.config.lease_seconds):
            return 0
        with self.database.session() as session:
            return len(tasks.reap_expired_leases(session, self.clock()))

    def retry_failed(self) -> int:
        with self.database.session() as session:
            return len(tasks.retry_due(session, self.clock()))

    def offer_queued(self) -> int:
        """Put queued tasks that are on no Redis queue yet onto one, within the caps."""
        now = self.clock()
        offered = 0
        with self.database.session() as session:
            waiting = session.scalars(
                select(Task)
                .where(Task.state == TaskState.QUEUED.value, Task.queue_entry.is_(None))
                .order_by(Task.id)
                .with_for_update(skip_locked=True)
            ).all()
            if not waiting:
                return 0
            live = dispatch.live_agents(session, self.config, now)
            for task in waiting:
                if not tasks.has_capacity(session, self.config, task.repository):
                    continue
                queue = dispatch.route(task, live)
                dispatch.note_route(task, queue)
                task.queue_entry = self.queues.offer(task.id, queue)
                task.offered_queue = queue
                offered += 1
        return offered

    def reroute_offers(self) -> int:
        """Move offers to the queue they belong on now that the live agents changed (a
        specialist came up, the last one went away); ``offer_queued`` offers them again. An
        agent that read the old entry meanwhile may still claim the task: PostgreSQL decides."""
        with self.database.session() as session:
            live = dispatch.live_agents(session, self.config, self.clock())
            lineup = dispatch.lineup(live)
            if lineup == self._routed_for:
                return 0  # nobody came or went: every offer is where it belongs
            moved = dispatch.misrouted(session, live)
            for task in moved:
                self.queues.withdraw(task.offered_queue, task.queue_entry)
                logger.info(
                    "Task %s: offer moves from %s to %s",
                    task.id,
                    task.offered_queue,
                    dispatch.route(task, live),
                )
                task.queue_entry = task.offered_queue = None
        self._routed_for = lineup
        return len(moved)

    def send_outbox(self) -> int:
        with self.database.session() as session:
            return send_outbox(session, self.gateway, self.clock())

    def poll_if_due(self) -> int:
        """The polling fallback: feed labelled issues through the same intake as webhooks."""
        if not self.config.poll_repositories:
            return 0
        with self.database.session() as session:
            if not self.synced(session):
                return 0
        if not self._due(schedules.POLL, self.config.poll_interval_seconds):
            return 0
        return self.poll()

    def poll(self) -> int:
        """List labelled issues of every polled repository that is served, and create missing
        tasks; one repository's failure does not stop the others."""
        created = 0
        for repository in self.config.poll_repositories:
            with self.database.session() as session:
                if not served.is_served(session, self.config, repository):
                    logger.warning("Not polling %s: it is not served by this cluster", repository)
                    continue
            try:
                issues = self.gateway.labelled_issues(repository, self.config.trigger_label)
            except Exception as exc:
                if not _is_outage(exc) and classify(exc) is None:
                    raise
                logger.warning("Poll of %s failed: %s", repository, classify(exc) or exc)
                continue
            for issue in issues:
                sender = {**issue["labeled_by"], "type": "User"}
                payload = {
                    "action": "labeled",
                    "label": {"name": self.config.trigger_label},
                    "repository": {"full_name": repository},
                    "sender": sender,
                    "issue": {**issue, "labels": [{"name": n} for n in issue["labels"]]},
                }
                with self.database.session() as session:
                    outcome, task = Intake(session, self.config, self.gateway).handle(
                        "issues", payload
                    )
                created += task is not None
                logger.debug("Poll %s#%s: %s", repository, issue["number"], outcome)
        return created

    def follow_reviews_if_due(self) -> int:
        """Pull requests in review: read back from GitHub those not checked for
        review_check_seconds (a merge whose webhook was lost still completes its task), and
        remind people of the quiet ones. Returns how many were checked or reminded."""
        if not self._due(schedules.REVIEWS, REVIEW_LOOK_SECONDS):
            return 0
        now = self.clock()
        with self.database.session() as session:
            due = []
            for pull in reviews.due_for_check(session, self.config.review_check_seconds, now):
                pull.checked_at = now
                due.append((pull.repository, pull.number))
        checked = 0
        for repository, number in due:  # GitHub is asked outside any transaction
            try:
                found = self.gateway.pull_request(repository, number)
            except Exception as exc:
                if not _is_outage(exc) and classify(exc) is None:
                    raise
                logger.warning("PR %s#%s not checked: %s", repository, number, classify(exc) or exc)
                if _is_outage(exc):
                    break  # the others wait for the next look
                continue
            with self.database.session() as session:
                outcome = reviews.catch_up(session, repository, number, found)
            checked += 1
            logger.info("PR %s#%s checked: %s", repository, number, outcome)
        with self.database.session() as session:
            reminded = reviews.remind_stale(session, self.config.stale_review_seconds, now)
        return checked + reminded

    def autoscale_if_due(self) -> int:
        """Start a requested scaling run, or a scheduled one when enabled and due (in its own
        thread)."""
        if self.autoscaler is None or not self._due(schedules.AUTOSCALE, AUTOSCALE_LOOK_SECONDS):
            return 0
        return int(self.autoscaler.start_if_due(self.clock()) is not None)

    # Loop -----------------------------------------------------------------------------------

    def run(
        self,
        interval: float = 1.0,
        standby: float = STANDBY_SECONDS,
        report: Callable[[str], object] = lambda status: None,
    ) -> None:
        """Until ``stop``: stand by until this processor holds the cluster's processor lock,
        then pass over the steps every ``interval`` seconds (sooner when notified).
        ``report`` hears each change of role (``systemctl status`` shows it)."""
        leadership = Leadership(self.config.database_url, self.name)
        standing_by = False
        try:
            while not self._stop.is_set():
                if not leadership.holds():
                    if not leadership.try_take():
                        if not standing_by:
                            report("standby: another processor is active")
                            standing_by = True
                        self._stop.wait(standby)
                        continue
                    standing_by = False
                    logger.info("%s is the active processor", self.name)
                    report("active")
                    # Leases are reaped one lease after taking over, as after a start.
                    self._started, self._routed_for = self.clock(), None
                self.run_once()
                leadership.wait(interval)
        finally:
            leadership.release()

    def start(self, interval: float = 1.0, standby: float = STANDBY_SECONDS, **kwargs) -> None:
        """``run`` in a daemon thread until ``stop``."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, args=(interval, standby), kwargs=kwargs, name="ccc-processor",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def request_stop(self) -> None:
        """Let ``run`` end after its current pass (safe in a signal handler)."""
        self._stop.set()

    def stop(self) -> None:
        """Stop ``run`` after its current pass and wait for it; the lock goes with it."""
        self._stop.set()
        self.notify()  # out of its wait at once
        if self._thread:
            self._thread.join(30)
        if self.autoscaler:
            self.autoscaler.stop()
