"""Webhook ingest rate and webhook → task-queued latency of the coordinator under real gunicorn.

Starts private PostgreSQL and Redis, the GitHub simulator, and
``gunicorn --worker-class gthread --workers 2 --threads 8 coordinator_app.wsgi:app`` on loopback
with the processor (``ccc process``) beside it, then measures:

1. a plain single-row INSERT rate into a jsonb table of the same PostgreSQL (the baseline);
2. sustained signed ``issues.labeled`` ingest with several client threads, a share of them
   redeliveries of earlier deliveries (same id: stored once, answered 200 "duplicate");
3. how long the background processor takes to work off what was ingested;
4. latency from the POST of a trigger-label event to the moment its task row is ``queued``
   (a LISTEN/NOTIFY trigger added to the benchmark's own database reports the commit).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import logging
import os
import random
import re
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as bench/webhook_ingest.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench.procstat import MachineCPU, TreeCPU
from bench.report import machine, ms, percentile, table, verdict
from bench.runner import stop_cleanly_on_sigterm
from bench.stack import Coordinator, running_coordinator
from bench.webhooks import REPOSITORY, SENDER, LabeledPayloads, load_payload, signed_headers
from simulators.github.app import create_app as create_simulator_app
from simulators.github.config import SimulatorConfig
from simulators.github.testing import TOKENS, sample_seed
from simulators.server import BackgroundServer

TARGET_RATE = 300  # deliveries/s on 2 cores
TARGET_P99 = 0.050  # seconds from POST to task queued
TRIGGER_LABEL = "claude"  # the coordinator's default trigger label
NOTIFY_SQL = """
CREATE FUNCTION bench_notify_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state = 'queued' THEN
    PERFORM pg_notify('bench_queued', NEW.issue_number::text);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER bench_notify_queued AFTER INSERT OR UPDATE OF state ON tasks
  FOR EACH ROW EXECUTE FUNCTION bench_notify_queued();
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhook_ingest",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--seconds", type=float, default=20, help="measured ingest time")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured ingest first")
    parser.add_argument(
        "--redeliver", type=float, default=0.1, help="share of requests that are redeliveries"
    )
    parser.add_argument(
        "--label",
        default="bug",
        help="label of the ingested events (the payload's own; the trigger label would make "
        "every ingested event a task)",
    )
    parser.add_argument(
        "--baseline-seconds", type=float, default=10, help="measured plain-INSERT time"
    )
    parser.add_argument("--events", type=int, default=100, help="trigger events for latency")
    parser.add_argument("--rate", type=float, default=5, help="trigger events per second")
    parser.add_argument(
        "--fixture",
        type=Path,
        help="a recorded issues.labeled payload (JSON) to send; default: the simulator's",
    )
    return parser.parse_args(argv)


# Baseline ------------------------------------------------------------------------------------


def insert_baseline(dsn: str, body: bytes, clients: int, seconds: float) -> tuple[float, int]:
    """Plain single-row INSERTs (autocommit) of ``body`` into a jsonb table: (rows/s, rows)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bench_insert_baseline (id text PRIMARY KEY, payload jsonb NOT NULL)"
        )
    text = body.decode()
    start, stop = threading.Event(), threading.Event()
    counts = [0] * clients

    def worker(index: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            start.wait()
            while not stop.is_set():
                conn.execute(
                    "INSERT INTO bench_insert_baseline (id, payload) VALUES (%s, %s::jsonb)",
                    (str(uuid.uuid4()), text),
                )
                counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)  # connections open
        start.set()
        time.sleep(1)  # warm-up
        before, began = sum(counts), time.perf_counter()
        time.sleep(seconds)
        done, elapsed = sum(counts) - before, time.perf_counter() - began
    finally:
        start.set()
        stop.set()
    for thread in threads:
        thread.join()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_insert_baseline")
    return done / elapsed, done


# Ingest --------------------------------------------------------------------------------------


@dataclass
class Sample:
    finished: float  # perf_counter when the answer was read
    latency: float
    status: int
    redelivery: bool


@dataclass
class IngestResult:
    samples: list[Sample] = field(default_factory=list)
    accepted: int = 0  # over the whole run, warm-up included
    duplicates: int = 0
    errors: int = 0
    window: tuple[float, float] = (0.0, 0.0)

    def measured(self) -> list[Sample]:
        start, end = self.window
        return [s for s in self.samples if start <= s.finished <= end]


class IngestClient:
    """One client thread: new signed deliveries, and now and then a redelivery of one of them."""

    def __init__(self, index: int, coord: Coordinator, payloads: LabeledPayloads, share: float):
        self.rng = random.Random(index)  # noqa: S311 (picks redeliveries, not secrets)
        self.coord, self.payloads, self.share = coord, payloads, share
        self.secret = coord.webhook_secret.encode()
        self.recent: collections.deque[tuple[bytes, dict]] = collections.deque(maxlen=256)
        self.samples: list[Sample] = []
        self.accepted = self.duplicates = self.errors = 0

    def run(self, numbers: Iterator[int], stop: threading.Event) -> None:
        conn = self.coord.connection()
        while not stop.is_set():
            redelivery = bool(self.recent) and self.rng.random() < self.share
            if redelivery:
                body, headers = self.rng.choice(self.recent)
            else:
                body = self.payloads.body(next(numbers))
                headers = signed_headers(self.secret, body)
            began = time.perf_counter()
            try:
                conn.request("POST", "/webhooks/github", body=body, headers=headers)
                answer = conn.getresponse()
                answer.read()
            except OSError:
                self.errors += 1
                conn.close()
                conn = self.coord.connection()
                continue
            finished = time.perf_counter()
            if answer.status == 202:
                self.accepted += 1
                self.recent.append((body, headers))
            elif answer.status == 200:
                self.duplicates += 1
            else:
                self.errors += 1
            self.samples.append(Sample(finished, finished - began, answer.status, redelivery))
        conn.close()


def ingest(
    coord: Coordinator,
    payloads: LabeledPayloads,
    args: argparse.Namespace,
    meters: dict[str, TreeCPU | MachineCPU],
) -> IngestResult:
    """Post signed deliveries from ``args.clients`` threads for warm-up + measured seconds.

    ``meters`` measure the CPU used during the measured window.
    """
    numbers, stop = itertools.count(100_000), threading.Event()
    clients = [IngestClient(i, coord, payloads, args.redeliver) for i in range(args.clients)]
    threads = [threading.Thread(target=c.run, args=(numbers, stop)) for c in clients]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        time.sleep(args.warmup)
        for meter in meters.values():
            meter.start()
        time.sleep(args.seconds)
        for meter in meters.values():
            meter.stop()
    finally:
        stop.set()
    for thread in threads:
        thread.join()
    return IngestResult(
        samples=[s for c in clients for s in c.samples],
        accepted=sum(c.accepted for c in clients),
        duplicates=sum(c.duplicates for c in clients),
        errors=sum(c.errors for c in clients),
        window=(began + args.warmup, began + args.warmup + args.seconds),
    )


def stored_deliveries(dsn: str) -> tuple[int, int]:
    """(rows in webhook_deliveries, rows still waiting for the processor)."""
    with psycopg.connect(dsn) as conn:
        total, waiting = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'received') FROM webhook_deliveries"
        ).fetchone()
    return total, waiting


def drain(dsn: str, timeout: float) -> tuple[int, float, int]:
    """Wait for the processor to work off the backlog: (processed, seconds, still waiting)."""
    _, waiting = stored_deliveries(dsn)
    start_waiting, began = waiting, time.perf_counter()
    while waiting and time.perf_counter() - began < timeout:
        time.sleep(0.5)
        _, waiting = stored_deliveries(dsn)
    return start_waiting - waiting, time.perf_counter() - began, waiting


# Latency -------------------------------------------------------------------------------------


@dataclass
class Event:
    number: int
    posted: float = 0.0  # perf_counter just before the POST
    posted_wall: float = 0.0  # time.time() at the same moment
    acked: float = 0.0
    status: int = 0
    queued: float | None = None


def latency(coord: Coordinator, sim, payloads: LabeledPayloads, args) -> list[Event]:
    """Trigger-label events for distinct issues at ``args.rate``; when was each task queued?"""
    with psycopg.connect(coord.dsn, autocommit=True) as conn:
        conn.execute(NOTIFY_SQL)
    events = {}
    for i in range(args.events):
        issue = sim.create_issue(REPOSITORY, SENDER, f"Bench task {i}: add a widget endpoint")
        events[issue.number] = Event(issue.number)
    secret = coord.webhook_secret.encode()
    listening, stop = threading.Event(), threading.Event()

    def listen() -> None:
        with psycopg.connect(coord.dsn, autocommit=True) as conn:
            conn.execute("LISTEN bench_queued")
            listening.set()
            while not stop.is_set():
                for note in conn.notifies(timeout=0.2):
                    event = events.get(int(note.payload))
                    if event is not None and event.queued is None:
                        event.queued = time.perf_counter()

    local = threading.local()

    def post(event: Event) -> None:
        body = payloads.body(event.number, title=f"Bench task for #{event.number}")
        headers = signed_headers(secret, body)
        if not hasattr(local, "conn"):
            local.conn = coord.connection()
        event.posted, event.posted_wall = time.perf_counter(), time.time()
        local.conn.request("POST", "/webhooks/github", body=body, headers=headers)
        answer = local.conn.getresponse()
        answer.read()
        event.acked, event.status = time.perf_counter(), answer.status

    listener = threading.Thread(target=listen)
    listener.start()
    listening.wait(10)
    try:
        with ThreadPoolExecutor(4) as pool:
            began = time.perf_counter()
            for i, event in enumerate(events.values()):
                # Open loop: events leave on schedule whatever the previous answers took.
                delay = began + i / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(post, event)
        deadline = time.perf_counter() + 30
        while any(e.queued is None for e in events.values()) and time.perf_counter() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        listener.join()
    return list(events.values())


def server_breakdown(dsn: str, events: list[Event]) -> dict[str, list[float]]:
    """Per task, from coordinator timestamps: stored → task created → queued (seconds)."""
    posted = {e.number: e.posted_wall for e in events}
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            SELECT t.issue_number, extract(epoch FROM d.received_at),
                   extract(epoch FROM t.created_at), extract(epoch FROM q.at)
            FROM tasks t
            JOIN webhook_deliveries d ON d.task_id = t.id
            JOIN task_transitions q ON q.task_id = t.id AND q.to_state = 'queued'
            """
        ).fetchall()
    parts: dict[str, list[float]] = {"post→stored": [], "stored→created": [], "created→queued": []}
    for number, received, created, queued in rows:
        if number in posted:
            parts["post→stored"].append(float(received) - posted[number])
            parts["stored→created"].append(float(created) - float(received))
            parts["created→queued"].append(float(queued) - float(created))
    return parts


# GitHub side -------------------------------------------------------------------------------


class RequestCounter:
    """WSGI middleware counting the GitHub API requests the coordinator makes, by route."""

    def __init__(self, app) -> None:
        self.app = app
        self.counts: collections.Counter[str] = collections.Counter()

    def __call__(self, environ, start_response):
        path = re.sub(r"/\d+(?=/|$)", "/{n}", environ.get("PATH_INFO", ""))
        self.counts[f"{environ.get('REQUEST_METHOD')} {path}"] += 1
        return self.app(environ, start_response)


@contextlib.contextmanager
def github_simulator(data_dir: Path) -> Iterator[tuple[object, str, RequestCounter]]:
    """The GitHub simulator (sample seed) on a free port, behind a request counter."""
    app = create_simulator_app(SimulatorConfig(seed=sample_seed(), data_dir=data_dir))
    sim = app.extensions["github_sim"]
    counter = RequestCounter(app)
    try:
        with BackgroundServer(counter) as server:
            sim.remember_url(server.url)
            yield sim, server.url, counter
    finally:
        sim.close()


# Report --------------------------------------------------------------------------------------


def ingest_tables(args, result: IngestResult, base: tuple[float, int], body_size: int) -> str:
    measured = result.measured()
    rate = len(measured) / args.seconds
    new = sum(not s.redelivery for s in measured)
    latencies = [s.latency for s in measured]
    rows = [
        ["request body", f"{body_size:,} bytes (issues.labeled, label {args.label!r})"],
        ["client threads", args.clients],
        ["measured", f"{args.seconds:g} s after {args.warmup:g} s warm-up"],
        ["deliveries answered", f"{len(measured):,}"],
        ["**deliveries/s**", f"**{rate:.0f}**"],
        ["new deliveries/s (202 accepted)", f"{new / args.seconds:.0f}"],
        ["redeliveries/s (200 duplicate)", f"{(len(measured) - new) / args.seconds:.0f}"],
        [
            "answer latency p50 / p99 (ms)",
            f"{ms(percentile(latencies, 50))} / {ms(percentile(latencies, 99))}",
        ],
        ["plain INSERT rows/s, same PostgreSQL", f"{base[0]:.0f} ({base[1]:,} rows)"],
        ["**ratio ingest / plain INSERT**", f"**{rate / base[0]:.2f}**"],
        ["target ≥ 300 deliveries/s", verdict(rate >= TARGET_RATE)],
    ]
    return table("Ingest (measured window)", ["figure", "value"], rows)


def correctness_table(result: IngestResult, stored: tuple[int, int], drained) -> str:
    total_rows, waiting = stored
    processed, seconds, left = drained
    statuses = collections.Counter((s.redelivery, s.status) for s in result.samples)
    wrong = {k: v for k, v in statuses.items() if k not in {(False, 202), (True, 200)}}
    rows = [
        ["new deliveries answered 202", f"{result.accepted:,}"],
        ["redeliveries answered 200 duplicate", f"{result.duplicates:,}"],
        ["rows in webhook_deliveries", f"{total_rows:,}"],
        ["stored once each", "yes" if total_rows == result.accepted else "NO"],
        ["unexpected answers / errors", f"{dict(wrong) or 0} / {result.errors}"],
        ["backlog left for the processor", f"{waiting:,}"],
        [
            "processor worked it off in",
            f"{seconds:.1f} s ({processed / seconds if seconds else 0:.0f} deliveries/s, "
            f"{left} left)",
        ],
    ]
    return table("Ingest correctness (whole run, warm-up included)", ["check", "value"], rows)


def cpu_table(meters: dict[str, TreeCPU | MachineCPU], seconds: float, deliveries: int) -> str:
    rows = [
        [name, f"{m.seconds / seconds * 100:.0f} %", f"{m.seconds / max(deliveries, 1) * 1e3:.2f}"]
        for name, m in meters.items()
    ]
    ours = sum(m.seconds for m in meters.values() if isinstance(m, TreeCPU))
    other = meters["whole machine (all processes)"].seconds - ours
    rows.append(["other work on the machine", f"{other / seconds * 100:.0f} %", "—"])
    return table(
        f"CPU during the measured ingest window (100 % = one core of {os.cpu_count()})",
        ["process tree", "CPU", "CPU ms per delivery"],
        rows,
    )


def latency_table(args, events: list[Event], breakdown: dict[str, list[float]]) -> str:
    done = [e for e in events if e.queued is not None]
    lat = [e.queued - e.posted for e in done]
    acks = [e.acked - e.posted for e in events if e.acked]
    p99 = percentile(lat, 99)
    rows = [
        ["trigger events (distinct issues)", f"{len(events)} at {args.rate:g}/s"],
        ["tasks seen queued", f"{len(done)}"],
        [
            "POST answered (202) p50 / p99",
            f"{ms(percentile(acks, 50))} / {ms(percentile(acks, 99))}",
        ],
        ["**POST → task queued p50 / p99**", f"**{ms(percentile(lat, 50))} / {ms(p99)}**"],
        ["POST → task queued max", ms(max(lat) if lat else float("nan"))],
    ]
    for name, values in breakdown.items():
        rows.append(
            [f"  {name} p50 / p99", f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))}"]
        )
    rows.append(["target p99 < 50 ms", verdict(len(done) == len(events) and p99 < TARGET_P99)])
    return table("Webhook → task queued latency (ms)", ["figure", "value"], rows)


def github_table(counts: collections.Counter[str], events: int) -> str:
    rows = [[route, n, f"{n / events:.2f}"] for route, n in counts.most_common()]
    rows.append(["all", sum(counts.values()), f"{sum(counts.values()) / events:.2f}"])
    return table(
        "GitHub API requests made by the coordinator during the latency phase",
        ["request", "count", "per trigger event"],
        rows,
    )


NOTES = """\
Notes: the POST → queued latency includes every GitHub call the intake makes before the task is
queued (the labeller's permission check and whatever the table above shows), answered by the
GitHub simulator running in this process. 'stored→created' holds the processor wake-up
(the worker that stored the delivery wakes the processor with a PostgreSQL NOTIFY) and the
permission check. The breakdown uses the coordinator's own timestamps (same clock). PostgreSQL
runs with fsync=off and synchronous_commit=off (lab.services) for the ingest and the baseline.
"""


# Main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_cleanly_on_sigterm()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the simulator's request log
    print(f"# Webhook ingest and webhook → queued latency\n\n{machine()}")
    payload = load_payload(args.fixture)
    ingest_payloads = LabeledPayloads(payload, label=args.label)
    trigger_payloads = LabeledPayloads(payload, label=TRIGGER_LABEL)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ccc-bench-gh-")))
        sim, sim_url, github_requests = stack.enter_context(github_simulator(tmp))
        settings = {
            "github_api_url": f"{sim_url}/api/v3",
            "github_token": TOKENS["cluster-bot"],
            "repositories": [REPOSITORY],
            "trigger_label": TRIGGER_LABEL,
            # Every client here is 127.0.0.1: lift the per-address limit out of the way.
            "webhook_rate_per_minute": 10_000_000,
        }
        coord = stack.enter_context(running_coordinator(settings))
        meters = {
            "gunicorn (master + 2 workers)": TreeCPU(coord.gunicorn.pid),
            "processor (ccc process)": TreeCPU(coord.processor.pid),
            "PostgreSQL": TreeCPU(coord.postgres.process.pid),
            "Redis": TreeCPU(coord.redis.process.pid),
            "benchmark clients (this process)": TreeCPU(os.getpid(), tree=False),
            "whole machine (all processes)": MachineCPU(),
        }
        sample_body = ingest_payloads.body(1)

        print(f"Plain INSERT baseline: {args.clients} connections, {args.baseline_seconds:g} s…")
        base = insert_baseline(coord.dsn, sample_body, args.clients, args.baseline_seconds)
        print(f"Webhook ingest: {args.clients} clients, {args.warmup:g} s + {args.seconds:g} s…")
        result = ingest(coord, ingest_payloads, args, meters)
        stored = stored_deliveries(coord.dsn)
        print(f"Processor backlog after ingest: {stored[1]} deliveries; waiting for it…")
        drained = drain(coord.dsn, timeout=600)
        print(f"Latency: {args.events} trigger events at {args.rate:g}/s…\n")
        github_requests.counts.clear()
        events = latency(coord, sim, trigger_payloads, args)
        breakdown = server_breakdown(coord.dsn, events)

    print(ingest_tables(args, result, base, len(sample_body)))
    print(correctness_table(result, stored, drained))
    print(cpu_table(meters, args.seconds, len(result.measured())))
    print(latency_table(args, events, breakdown))
    print(github_table(github_requests.counts, len(events)))
    print(NOTES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
