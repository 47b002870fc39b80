"""The claude-agent daemon: bootstrap, then claim → heartbeat → execute → report, until stopped.

First SIGTERM: warm stop (no new claims; running tasks get ``stop_timeout_seconds`` to finish,
then are checkpointed and handed back). Second SIGTERM: cold stop (commands are killed, tasks
checkpointed and handed back at once).
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
import uuid

import redis

from agent_app import __version__
from agent_app.config import AgentConfig
from agent_app.coordinator_client import CoordinatorClient
from agent_app.exceptions import AgentError, CoordinatorRefused, CoordinatorUnavailable
from agent_app.task_runner import RunningTask, TaskRunner
from agent_app.workspace import Workspaces
from cluster_core import systemd
from cluster_core.queues import TaskQueues, queues_for

logger = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 60
CLEANUP_INTERVAL_SECONDS = 3600


class Worker:
    """One agent process."""

    def __init__(
        self,
        config: AgentConfig,
        coordinator: CoordinatorClient,
        queues: TaskQueues,
        runner: TaskRunner,
        workspaces: Workspaces,
    ) -> None:
        self.config = config
        self.coordinator = coordinator
        self.queues = queues
        self.runner = runner
        self.workspaces = workspaces
        self.instance = uuid.uuid4().hex
        self.tasks: dict[int, RunningTask] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()  # warm stop requested
        self.cold = threading.Event()  # cold stop requested
        self.draining = False  # the coordinator asked us to drain
        self.state = "starting"
        # Why this agent takes no work (its sandbox failed the start-up probe), or None.
        self.error: str | None = None
        self._last_cleanup = 0.0
        # The coordinator's heartbeat_seconds once it has answered: it sizes the leases.
        self.heartbeat_seconds = config.heartbeat_seconds

    # Lifecycle ---------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if not self.stopping.is_set():
            logger.info("Agent %s: warm stop requested (signal %s)", self.config.name, signum)
            self.stopping.set()
        else:
            logger.warning("Agent %s: cold stop requested", self.config.name)
            self.cold.set()
            for task in list(self.tasks.values()):
                task.handback.set()
                task.cancel.set()  # kills the running command's process group

    def bootstrap(self) -> None:
        """Authenticate and send the first heartbeat; refuse to run beside a live twin."""
        delay = 1.0
        # A crashed predecessor falls silent within two heartbeats; a live twin never does.
        twin_deadline = None
        while not self.stopping.is_set():
            try:
                self._heartbeat()
                logger.info(
                    "Agent %s: registered as id %s (instance %s)",
                    self.config.name,
                    self.coordinator.agent_id,
                    self.instance,
                )
                return
            except CoordinatorRefused as exc:
                if exc.status == 409:
                    # A twin is live, or our previous process died moments ago: wait it out.
                    now = time.monotonic()
                    twin_deadline = twin_deadline or now + 3 * self.heartbeat_seconds + 5
                    if now > twin_deadline:
                        raise AgentError(
                            f"another live agent is named {self.config.name}; "
                            "refusing to run beside it"
                        ) from exc
                    logger.warning("Agent %s: %s; waiting", self.config.name, exc)
                    delay = 1.0
                elif exc.status in (401, 403):
                    raise AgentError(f"the coordinator refused this agent's key: {exc}") from exc
                else:
                    raise
            except CoordinatorUnavailable as exc:
                logger.warning(
                    "Agent %s: coordinator unreachable (%s); retrying in %.0fs",
                    self.config.name,
                    exc,
                    delay,
                )
            self.stopping.wait(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    def run(self) -> int:
        """Run until stopped; returns the exit code.

        An agent whose sandbox does not hold still reports in, in the error state with the
        reason (admin pages, `systemctl status`), but never claims a task.
        """
        self.error = self.runner.sandbox_problem()
        if self.error:
            logger.error("Agent %s: taking no work: %s", self.config.name, self.error)
        self.bootstrap()
        if self.stopping.is_set():
            return 0
        heartbeats = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeats.start()
        systemd.notify(ready="1", status=self.status_line())
        try:
            if self.error:
                self.stopping.wait()
            else:
                self._claim_loop()
        finally:
            self._shutdown()
        return 0

    # The loop ----------------------------------------------------------------------------

    def _claim_loop(self) -> None:
        delay = 1.0
        queues = queues_for(self.config.specialties, self.config.clearance)
        while not self.stopping.is_set():
            self._reap_threads()
            self._maybe_cleanup()
            if self.draining or len(self.tasks) >= self.config.max_tasks:
                self.stopping.wait(1)
                continue
            if self.tasks:
                # Busy agents claim a little later, so idle ones win ties: load balancing.
                self.stopping.wait(0.2 * len(self.tasks) + random.random() * 0.1)  # noqa: S311
            try:
                offer = self.queues.claim(
                    self.config.name, queues, block_ms=self.config.claim_block_seconds * 1000
                )
                delay = 1.0
            except redis.RedisError as exc:
                logger.warning(
                    "Agent %s: Redis unreachable (%s); retrying in %.0fs",
                    self.config.name,
                    exc,
                    delay,
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                continue
            if offer is not None:
                self._take(offer)

    def _take(self, offer) -> None:
        """Confirm an offer with the coordinator, then start the task (or drop the offer)."""
        try:
            task = self.coordinator.claim(offer.task_id)
        except CoordinatorRefused as exc:
            logger.info("Agent %s: task %s not ours: %s", self.config.name, offer.task_id, exc)
            self.queues.ack(offer)  # the coordinator offers it again if it should run
            return
        except CoordinatorUnavailable as exc:
            # Unacknowledged: another agent takes the offer over after the claim timeout.
            logger.warning(
                "Agent %s: cannot confirm task %s: %s", self.config.name, offer.task_id, exc
            )
            self.stopping.wait(2)
            return
        self.queues.ack(offer)
        self.start(task)

    def start(self, task: dict) -> None:
        """Run a task the coordinator has confirmed as ours, in its own thread.

        A run of an earlier attempt of the same task (its lease was reaped while this agent
        was cut off) is stopped first, unpushed, and the new run waits for it to end: two runs
        of one task never share a workspace.
        """
        grant = task.pop("github", None) or {}
        running = RunningTask(task["id"], str(task.get("attempt") or ""), task, grant)
        with self._lock:
            earlier = self.tasks.get(running.id)
            if earlier is not None:
                logger.warning(
                    "Agent %s: task %s claimed again; stopping the run of attempt %s",
                    self.config.name,
                    running.id,
                    earlier.attempt[:8],
                )
                earlier.over.set()
                earlier.cancel.set()
            thread = threading.Thread(
                target=self._run_task,
                args=(running, self._threads.get(running.id)),
                daemon=True,
                name=f"task-{task['id']}",
            )
            self.tasks[running.id] = running
            self._threads[running.id] = thread
        logger.info(
            "Agent %s: task %s claimed (%s#%s, %s)",
            self.config.name,
            running.id,
            task["repository"],
            task["issue_number"],
            task.get("specialty"),
        )
        thread.start()
        self._publish_status()

    def _run_task(self, running: RunningTask, earlier: threading.Thread | None) -> None:
        try:
            if earlier is not None:
                earlier.join()
            self.runner.run(running)
        finally:
            with self._lock:
                if self.tasks.get(running.id) is running:
                    del self.tasks[running.id]
            self._publish_status()

    def _reap_threads(self) -> None:
        with self._lock:
            for task_id in [t for t, th in self._threads.items() if not th.is_alive()]:
                self._threads.pop(task_id).join()

    def _maybe_cleanup(self) -> None:
        if time.monotonic() - self._last_cleanup < CLEANUP_INTERVAL_SECONDS:
            return
        self._last_cleanup = time.monotonic()
        self.workspaces.cleanup(self.config.retention_days, keep=set(self.tasks))
        self.runner.caches.prune(self.config.retention_days)

    # Heartbeats ---------------------------------------------------------------------------

    def _heartbeat(self) -> dict:
        with self._lock:
            running = {t.id: t.attempt for t in self.tasks.values() if not t.over.is_set()}
        answer = self.coordinator.heartbeat(
            state=self._state(),
            load=self.load,
            tasks=running,
            version=__version__,
            instance=self.instance,
            address=f"{self.config.api_host}:{self.config.api_port}",
            error=self.error,
            timeout=max(self.heartbeat_seconds, 2),  # a hung beat must not outlast the lease
        )
        self.heartbeat_seconds = int(answer.get("heartbeat_seconds") or self.heartbeat_seconds)
        cancelled = set(answer.get("cancelled", []))
        for task_id in answer.get("stop", []):
            task = self.tasks.get(task_id)
            if task is None or task.cancel.is_set() or task.attempt != running.get(task_id):
                continue
            if task_id not in cancelled:
                # Reaped while we were out of touch, or claimed again: not ours to push.
                task.over.set()
            logger.warning(
                "Agent %s: coordinator says stop task %s (%s)",
                self.config.name,
                task_id,
                "cancelled" if task_id in cancelled else "attempt over",
            )
            task.cancel.set()
        if answer.get("drain") != self.draining:
            self.draining = bool(answer.get("drain"))
            logger.info(
                "Agent %s: %s", self.config.name, "draining" if self.draining else "accepting work"
            )
        return answer

    def _heartbeat_loop(self) -> None:
        """Beat every ``heartbeat_seconds`` in a thread of its own, sharing no lock with the
        work (only the task table, for an instant): a busy agent never misses its lease. A
        failed beat is tried again a second later."""
        while not self.cold.is_set():
            try:
                self._heartbeat()
                wait = self.heartbeat_seconds
            except AgentError as exc:
                logger.warning("Agent %s: heartbeat failed: %s", self.config.name, exc)
                wait = 1
            self._publish_status()
            if self.stopping.is_set() and not self.tasks:
                return
            self.cold.wait(wait)

    # State -------------------------------------------------------------------------------

    @property
    def load(self) -> float:
        return round(len(self.tasks) / self.config.max_tasks, 3)

    def _state(self) -> str:
        if self.error:
            return "error"
        if self.stopping.is_set() or self.draining:
            return "maintenance"
        return "busy" if self.tasks else "idle"

    def status_line(self) -> str:
        """One line for `systemctl status`: state and current tasks."""
        tasks = ", ".join(
            f"task {t.id} ({t.data['repository']}#{t.data['issue_number']}: {t.phase})"
            for t in list(self.tasks.values())
        )
        if self.error:
            return f"error: taking no work: {self.error}"
        return f"{self._state()}; {len(self.tasks)}/{self.config.max_tasks} tasks" + (
            f": {tasks}" if tasks else ""
        )

    def _publish_status(self) -> None:
        systemd.notify(status=self.status_line())

    # Stopping ----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Warm stop: let tasks finish within the deadline, then checkpoint and hand back."""
        systemd.notify(stopping="1", status="stopping: finishing or checkpointing tasks")
        deadline = time.monotonic() + self.config.stop_timeout_seconds
        while self.tasks and time.monotonic() < deadline and not self.cold.is_set():
            time.sleep(0.2)
        for task in list(self.tasks.values()):
            task.handback.set()  # checkpoint at the next step boundary
        handback_deadline = time.monotonic() + 30
        while self.tasks and time.monotonic() < handback_deadline:
            if time.monotonic() > deadline:
                for task in list(self.tasks.values()):
                    task.cancel.set()  # commands are killed; the runner checkpoints
            time.sleep(0.2)
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(5)
        self.cold.set()
        logger.info("Agent %s: stopped", self.config.name)
