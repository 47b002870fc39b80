"""Per-command cost of the agent's sandbox: the same trivial command run plain (`bash -c`), in
the agent's bubblewrap view (own network namespace), with its resource limits, and with the
relay to the egress proxy and the disk guard too, and in the model's persistent shell (the same
sandbox, started once per task: agent_app.shell), interleaved in one run.

    .venv/bin/python -m bench.sandbox_overhead [--runs 200]

The sandboxed runs use the command line tasks use (agent_app.sandbox.CommandRunner: hidden
configuration and task folders, a read-only git directory, a writable checkout, no network
but loopback, rlimits, and socat relaying 127.0.0.1:3128 to the proxy's unix socket).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from agent_app.config import Limits
from agent_app.sandbox import CommandRunner, Policy
from agent_app.shell import ShellSession
from agent_app.task_runner import command_rlimits
from bench.report import machine, ms, percentile, table, verdict

TARGET_SECONDS = 0.050  # the sandbox may add at most this much to a command
TASKS = "bwrap view + rlimits + egress relay + disk guard (what tasks use)"
SHELL = "the same, in the model's persistent shell (one per task)"


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
    for tool in ("bwrap", "socat"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: `make setup` installs it")
    root = Path(tempfile.mkdtemp(prefix="ccc-bench-sandbox-"))
    shell = None
    try:
        config_dir, tasks = root / "etc", root / "var" / "tasks"
        repo, git_dir = tasks / "task-1" / "repo", tasks / "task-1" / "git"
        for folder in (config_dir, repo):
            folder.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
        hidden = [config_dir, root / "var"]
        # The relay's start is what the egress path adds to a command; a listening socket
        # stands in for the proxy, which a trivial command never calls.
        proxy = socket.socket(socket.AF_UNIX)
        proxy.bind(str(root / "egress.sock"))
        proxy.listen()
        view = Policy(hidden=tuple(hidden), readable=(git_dir,))
        limited = replace(view, rlimits=command_rlimits(Limits()))
        tasks_policy = replace(
            limited,
            egress_socket=str(root / "egress.sock"),
            disk_bytes=Limits().workspace_mb * 2**20,  # du of the checkout first
        )
        runners = {
            "plain bash -c (baseline)": CommandRunner(Policy(mode="none"), []),
            "bwrap view, no network": CommandRunner(view, []),
            "bwrap view + rlimits": CommandRunner(limited, []),
            TASKS: CommandRunner(tasks_policy, []),
        }
        variants = {
            name: partial(runner.run, cwd=repo, timeout=30) for name, runner in runners.items()
        }
        shell = ShellSession(CommandRunner(tasks_policy, []), repo)
        variants[SHELL] = partial(shell.run, timeout=30, cancel=None)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):  # interleaved: the machine's noise hits every variant alike
            for name, run in variants.items():
                started = time.perf_counter()
                result = run(args.command)
                times[name].append(time.perf_counter() - started)
                if result.exit_code != 0:
                    raise SystemExit(f"{name}: {args.command!r} failed: {result.output}")
    finally:
        if shell is not None:
            shell.close()
        shutil.rmtree(root, ignore_errors=True)
    baseline = percentile(times["plain bash -c (baseline)"], 50)
    rows = [
        (name, ms(percentile(t, 50)), ms(percentile(t, 95)), ms(percentile(t, 50) - baseline))
        for name, t in times.items()
    ]
    added = percentile(times[TASKS], 50) - baseline
    print(f"# Sandbox cost per command\n\n{machine()}\n")
    print(table(f"`{args.command}`, {args.runs} runs each (ms)",
                ("variant", "p50", "p95", "added p50"), rows))  # fmt: skip
    met = verdict(added < TARGET_SECONDS)
    print(f"target: under {TARGET_SECONDS * 1000:.0f} ms added per command: {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
