"""Heartbeat load: many agents heartbeating against the coordinator under real gunicorn.

Registers ``--agents`` agents through the API (with an admin token), trades each agent's key for
a bearer token, then sends one heartbeat per agent every ``--interval`` seconds, spread evenly
(1,000 agents every 5 s, the shipped interval, is 200 requests/s), for ``--seconds``. Prints
heartbeat latency and the CPU share of the coordinator (gunicorn master + workers, from
/proc/<pid>/stat), PostgreSQL and Redis over the measured period.
"""

from __future__ import annotations

import argparse
import collections
import os
import queue
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as bench/heartbeats.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procstat import MachineCPU, TreeCPU
from bench.report import machine, ms, percentile, table
from bench.runner import stop_cleanly_on_sigterm
from bench.stack import Coordinator, request_json, running_coordinator
from cluster_core.specialties import SPECIALTIES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.heartbeats",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--agents", type=int, default=1000, help="simulated agents")
    parser.add_argument("--interval", type=float, default=5, help="seconds between heartbeats")
    parser.add_argument("--seconds", type=float, default=60, help="measured period")
    parser.add_argument("--clients", type=int, default=16, help="sender threads")
    return parser.parse_args(argv)


@dataclass
class SimAgent:
    """One simulated agent: its id, bearer headers and process instance."""

    id: int
    headers: dict[str, str]
    instance: str


def register(coord: Coordinator, count: int) -> list[SimAgent]:
    """Register ``count`` agents as an admin would and get each one a bearer token."""
    admin = {"Authorization": f"Bearer {coord.admin_token()}"}
    local = threading.local()

    def one(index: int) -> SimAgent:
        if not hasattr(local, "conn"):
            local.conn = coord.connection()
        name = f"bench-agent-{index:04d}"
        spec = {"name": name, "specialties": [SPECIALTIES[index % len(SPECIALTIES)]]}
        status, agent = request_json(local.conn, "POST", "/api/v1/agents", spec, admin)
        if status != 201:
            raise RuntimeError(f"registering {name}: {status} {agent}")
        login = {"name": name, "key": agent["key"]}
        status, token = request_json(local.conn, "POST", "/api/v1/agents/token", login)
        if status != 200:
            raise RuntimeError(f"token for {name}: {status} {token}")
        bearer = {"Authorization": f"Bearer {token['token']}"}
        return SimAgent(agent["id"], bearer, uuid.uuid4().hex)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


@dataclass
class Beat:
    scheduled: float
    started: float
    finished: float
    status: int


def run_load(coord: Coordinator, agents: list[SimAgent], args, meters) -> tuple[list[Beat], float]:
    """Send heartbeats on schedule (open loop) from ``args.clients`` threads.

    Returns the heartbeats and the wall time the ``meters`` measured over.
    """
    work: queue.Queue[tuple[float, SimAgent] | None] = queue.Queue()
    beats: list[Beat] = []
    lock = threading.Lock()

    def sender() -> None:
        conn, mine = coord.connection(), []
        while (item := work.get()) is not None:
            scheduled, agent = item
            body = {"state": "idle", "load": 0.0, "tasks": [], "version": "bench"}
            body["instance"] = agent.instance
            started = time.perf_counter()
            try:
                status, _ = request_json(
                    conn, "POST", f"/api/v1/agents/{agent.id}/heartbeat", body, agent.headers
                )
            except OSError:
                status = 0
                conn.close()
                conn = coord.connection()
            mine.append(Beat(scheduled, started, time.perf_counter(), status))
        conn.close()
        with lock:
            beats.extend(mine)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    spacing = args.interval / len(agents)
    start = time.perf_counter() + 0.5
    for meter in meters.values():
        meter.start()
    metered = time.perf_counter()
    try:
        for n in range(int(args.seconds / spacing)):
            due = start + n * spacing
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            work.put((due, agents[n % len(agents)]))
        for meter in meters.values():
            meter.stop()
        metered = time.perf_counter() - metered
    finally:
        for _ in threads:
            work.put(None)
    for thread in threads:
        thread.join()
    return beats, metered


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_cleanly_on_sigterm()
    print(f"# Heartbeats\n\n{machine()}\n")
    # The default api_rate_per_minute (6000 per client address) is shared by all agents here,
    # since they all call from 127.0.0.1; real agents each have their own address.
    with running_coordinator({"api_rate_per_minute": 10_000_000}) as coord:
        began = time.perf_counter()
        agents = register(coord, args.agents)
        setup = time.perf_counter() - began
        rate = args.agents / args.interval
        print(f"Registered {len(agents)} agents in {setup:.1f} s; heartbeats at {rate:.0f}/s…\n")
        meters = {
            "coordinator: gunicorn (master + 2 workers)": TreeCPU(coord.gunicorn.pid),
            "PostgreSQL": TreeCPU(coord.postgres.process.pid),
            "Redis": TreeCPU(coord.redis.process.pid),
            "benchmark clients (this process)": TreeCPU(os.getpid(), tree=False),
            "whole machine (all processes)": MachineCPU(),
        }
        beats, metered = run_load(coord, agents, args, meters)
    print(report(args, beats, meters, metered))
    return 0


def report(args, beats: list[Beat], meters, metered: float) -> str:
    latency = [b.finished - b.started for b in beats]
    lag = [b.started - b.scheduled for b in beats]
    statuses = collections.Counter(b.status for b in beats)
    rows = [
        ["agents", f"{args.agents:,}"],
        ["heartbeat interval per agent", f"{args.interval:g} s (spread evenly)"],
        ["measured period", f"{args.seconds:g} s"],
        ["heartbeats sent", f"{len(beats):,} ({len(beats) / args.seconds:.1f}/s)"],
        ["answers", ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))],
        ["**latency p50 / p99 (ms)**", f"**{ms(percentile(latency, 50))} / "
         f"{ms(percentile(latency, 99))}**"],
        ["latency max (ms)", ms(max(latency))],
        ["sender lag behind schedule p99 (ms)", ms(percentile(lag, 99))],
    ]  # fmt: skip
    cores = os.cpu_count() or 1
    cpu_rows = []
    for name, meter in meters.items():
        share = meter.seconds / metered
        cpu_rows.append([name, f"{share * 100:.1f} %", f"{share / cores * 100:.1f} %"])
    ours = sum(m.seconds for m in meters.values() if isinstance(m, TreeCPU))
    other = (meters["whole machine (all processes)"].seconds - ours) / metered
    cpu_rows.append(["other work on the machine", f"{other * 100:.1f} %", "—"])
    gunicorn = meters["coordinator: gunicorn (master + 2 workers)"].seconds
    cpu_rows.append(
        ["coordinator CPU per heartbeat", f"{gunicorn / max(len(beats), 1) * 1e3:.2f} ms", ""]
    )
    return "\n".join(
        [
            table("Heartbeat latency", ["figure", "value"], rows),
            table(
                "CPU over the measured period",
                ["process tree", "share of one core", f"share of the machine ({cores} cores)"],
                cpu_rows,
            ),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
