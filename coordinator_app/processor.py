"""The coordinator's background work: deliveries, analysis holds, leases, retries, offers, outbox.

Every step runs in its own transaction and locks rows with SKIP LOCKED, so several coordinator
processes (gunicorn workers, or replicas) can run it side by side without doing anything twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import redis
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from coordinator_app import dispatch, reviews, served, tasks
from coordinator_app.autoscaler import Autoscaler
from coordinator_app.config import CoordinatorConfig
from coordinator_app.db import Database
from coordinator_app.github_errors import classify
from coordinator_app.github_gateway import GitHubGateway, Throttled, send_outbox
from coordinator_app.intake import Intake
from coordinator_app.models import Task, WebhookDelivery, utcnow
from coordinator_app.queues import TaskQueues
from coordinator_app.states import TaskState

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
DEPENDENCY_RECHECK = timedelta(seconds=10)


class Processor:
    """Runs the background steps once (``run_once``) or in a loop woken by ``notify``."""

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
        self._last_autoscale_look = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_poll = 0.0
        self._last_review_look = 0.0
        self._routed_for: frozenset | None = None  # the live agents offers were last routed for
        self._next_sync = 0.0
        self._started = clock()
        # In App mode deliveries wait for the first sync: before it, no repository is served.
        self.synced = not config.app_mode
        self.sync_error: str | None = None  # why the last sync failed (admin pages)

    def notify(self) -> None:
        """Wake the loop now (a webhook was stored), instead of at the next tick."""
        self._wake.set()

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
        now = time.monotonic()
        if not self.config.app_mode or now < self._next_sync:
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
            self.sync_error = str(classify(exc))
            logger.warning("Served repositories not synced: %s", self.sync_error)
            self._next_sync = now + SYNC_RETRY_SECONDS
            with self.database.session() as session:
                # After a restart, the repositories known before serve until a sync succeeds.
                self.synced = self.synced or bool(served.listing(session, self.config))
            return 0
        with self.database.session() as session:
            added, removed = served.replace_all(session, found)
        self.synced, self.sync_error = True, None
        self._next_sync = now + self.config.repository_sync_seconds
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
        if not self.synced:
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
        if not self.config.poll_repositories or not self.synced:
            return 0
        if time.monotonic() - self._last_poll < self.config.poll_interval_seconds:
            return 0
        self._last_poll = time.monotonic()
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
        if time.monotonic() - self._last_review_look < REVIEW_LOOK_SECONDS:
            return 0
        self._last_review_look = time.monotonic()
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
        """Start a scheduled scaling run (in its own thread) when enabled and due."""
        if self.autoscaler is None or time.monotonic() - self._last_autoscale_look < 10:
            return 0
        self._last_autoscale_look = time.monotonic()
        return int(self.autoscaler.start_if_due(self.clock()) is not None)

    # Loop -----------------------------------------------------------------------------------

    def start(self, interval: float = 1.0) -> None:
        """Run the loop in a daemon thread until ``stop``."""
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="ccc-processor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(10)
        if self.autoscaler:
            self.autoscaler.stop()

    def _loop(self, interval: float) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._wake.wait(interval)
            self._wake.clear()
