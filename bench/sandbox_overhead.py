"""Per-command cost of the agent's sandbox: the same trivial command run plain (`bash -c`), in
the agent's bubblewrap view, and with its resource limits too, interleaved in one run.

    .venv/bin/python -m bench.sandbox_overhead [--runs 200]

The sandboxed runs use the command line tasks use (agent_app.sandbox.CommandRunner: hidden
configuration and task folders, a read-only git directory, a writable checkout, rlimits).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from agent_app.config import Limits
from agent_app.sandbox import CommandRunner
from agent_app.task_runner import command_rlimits
from bench.report import machine, ms, percentile, table, verdict

TARGET_SECONDS = 0.050  # the sandbox may add at most this much to a command


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sandbox_overhead",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=200, help="commands per variant")
    parser.add_argument("--command", default="true", help="the command each run executes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("bwrap") is None:
        raise SystemExit("bubblewrap (bwrap) is not installed: `make setup` installs it")
    root = Path(tempfile.mkdtemp(prefix="ccc-bench-sandbox-"))
    try:
        config_dir, tasks = root / "etc", root / "var" / "tasks"
        repo, git_dir = tasks / "task-1" / "repo", tasks / "task-1" / "git"
        for folder in (config_dir, repo):
            folder.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
        hidden = [config_dir, root / "var"]
        variants = {
            "plain bash -c (baseline)": CommandRunner("none", [], []),
            "bwrap view": CommandRunner("bwrap", hidden, [], readable=[git_dir]),
            "bwrap view + rlimits (what tasks use)": CommandRunner(
                "bwrap", hidden, [], readable=[git_dir], rlimits=command_rlimits(Limits())
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):  # interleaved: the machine's noise hits every variant alike
            for name, runner in variants.items():
                started = time.perf_counter()
                result = runner.run(args.command, repo, timeout=30)
                times[name].append(time.perf_counter() - started)
                if result.exit_code != 0:
                    raise SystemExit(f"{name}: {args.command!r} failed: {result.output}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    baseline = percentile(times["plain bash -c (baseline)"], 50)
    rows = [
        (name, ms(percentile(t, 50)), ms(percentile(t, 95)), ms(percentile(t, 50) - baseline))
        for name, t in times.items()
    ]
    added = percentile(times["bwrap view + rlimits (what tasks use)"], 50) - baseline
    print(f"# Sandbox cost per command\n\n{machine()}\n")
    print(table(f"`{args.command}`, {args.runs} runs each (ms)",
                ("variant", "p50", "p95", "added p50"), rows))  # fmt: skip
    met = verdict(added < TARGET_SECONDS)
    print(f"target: under {TARGET_SECONDS * 1000:.0f} ms added per command: {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
