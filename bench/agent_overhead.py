"""Agent overhead per task outside model and test time, on the local demo cluster.

Runs the demo issues on `ccc-demo --local`'s cluster (real `claude-agent` processes, the
coordinator under gunicorn, both simulators) and reads, per task, from the coordinator's history
and events and the Claude simulator's request log:
- claim → first model request: the `assigned` transition to the first request of its scenario;
- last step → PR opened: the last model request to the `review` transition (reported once the PR
  exists), minus the test run (`testing` transition to the `tests` event).
Target: under one second each.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import requests

from bench.report import ms, percentile, table
from lab.demo import LocalDemo
from lab.demo_cluster import issue_name

# The demo issues' titles and the Claude scenarios that answer them.
SCENARIO_OF = {
    "Add a character count function": "demo-char-count",
    "Document top_words in the README": "demo-readme-docs",
    "Add tests for punctuation-only input": "demo-edge-case-tests",
    "Group the thousands in displayed prices": "demo-price-format",
}


def _at(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def measure(cluster: LocalDemo, tasks: list[dict]) -> list[tuple[str, float, float]]:
    """(issue, claim → first request, last request → PR outside tests) per task, in seconds."""
    requests_log = requests.get(f"{cluster.urls['claude']}/_sim/requests", timeout=10).json()
    entries = requests_log["requests"] if isinstance(requests_log, dict) else requests_log
    rows = []
    for task in tasks:
        scenario = SCENARIO_OF[task["title"]]
        times = sorted(e["time"] for e in entries if e.get("scenario") == scenario)
        history = {h["to"]: _at(h["at"]) for h in task["history"]}
        events = cluster.api("GET", f"/api/v1/tasks/{task['id']}/events?per_page=100")["items"]
        tests_at = [_at(e["at"]) for e in events if e["kind"] == "tests"]
        test_seconds = tests_at[-1] - history["testing"] if tests_at else 0.0
        rows.append(
            (
                issue_name(task["repository"], task["issue_number"]),
                times[0] - history["assigned"],
                history["review"] - times[-1] - test_seconds,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="demo runs (3 tasks each)")
    args = parser.parse_args()
    rows = []
    for _ in range(args.rounds):
        root = Path(tempfile.mkdtemp(prefix="ccc-bench-overhead-"))
        cluster = LocalDemo(root=root, echo=lambda _m: None)
        try:
            cluster.start()
            rows += measure(cluster, cluster.wait(cluster.file_issues(), 240))
        finally:
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)
    print(
        table(
            "Agent overhead per task (ms)",
            ["issue", "claim → first model request", "last step → PR opened (tests excluded)"],
            [(issue, ms(a), ms(b)) for issue, a, b in rows],
        )
    )
    first, last = [r[1] for r in rows], [r[2] for r in rows]
    print(
        table(
            "Summary (target < 1000 ms each)",
            ["figure", "p50 ms", "max ms"],
            [
                ("claim → first model request", ms(percentile(first, 50)), ms(max(first))),
                ("last step → PR opened", ms(percentile(last, 50)), ms(max(last))),
            ],
        )
    )


if __name__ == "__main__":
    main()
