"""A repository's setup on its first task and on the next ones: what the dependency cache saves.

A Python repository with a requirements.txt (the setup detected for it: a virtualenv and
``pip install -r requirements.txt``) is set up in three fresh checkouts of one agent host, in
one run, with the agent's own pieces (agent_app.repo_setup, agent_app.dependency_cache,
CommandRunner):

1. the first task: nothing cached, everything downloaded and installed (the baseline);
2. the next task, same requirements: the snapshot of the first is unpacked and moved to the new
   checkout, no step runs;
3. a task whose snapshot is gone (pruned, or another key) but whose tool caches are warm: the
   steps run again, pip downloads nothing.

    .venv/bin/python -m bench.setup_cache [--requirements "flask requests"]

It needs the package index pip is configured with (as an agent's setup does).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from agent_app import repo_setup
from agent_app.dependency_cache import DependencyCache
from agent_app.sandbox import CommandRunner, Policy
from bench.report import machine, table

REPOSITORY = "acme/bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.setup_cache", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--requirements", default="flask requests", help="what setup installs")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="ccc-bench-setup-"))
    try:
        cache = DependencyCache(root / "caches", max_bytes=4 * 2**30)
        tools, env = cache.tools(REPOSITORY)
        runner = CommandRunner(
            replace(Policy(mode="none"), writable=(tools,), env=tuple(env.items())), []
        )
        rows, baseline = [], None
        for number, label in enumerate(
            [
                "first task (nothing cached)",
                "next task (snapshot)",
                "snapshot gone, tool caches warm",
            ],
            start=1,
        ):
            repo = root / f"task-{number}" / "repo"
            repo.mkdir(parents=True)
            (repo / "requirements.txt").write_text("\n".join(args.requirements.split()) + "\n")
            plan = repo_setup.plan(repo)
            key = plan.key(repo)
            if number == 3:
                for kept in cache.folder(REPOSITORY).glob("setup-*"):
                    kept.unlink()
            started = time.perf_counter()
            restored = cache.restore(REPOSITORY, key, repo)
            steps = 0
            if restored is None:
                steps = len(
                    repo_setup.run_steps(runner, repo, plan.commands, 900, threading.Event())
                )
                cache.save(REPOSITORY, key, repo, [".venv"])
            seconds = time.perf_counter() - started
            check = runner.run(
                ".venv/bin/python -c 'import " + _module(args.requirements) + "'", repo, 60
            )
            if check.exit_code != 0:
                raise SystemExit(f"{label}: the installed packages do not import: {check.output}")
            baseline = baseline or seconds
            rows.append((label, steps, f"{seconds:.2f}", f"{seconds / baseline:.2f}"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"# Setup time, first task and next\n\n{machine()}\n")
    print(table(f"`pip install` of {args.requirements} into a virtualenv",
                ("task", "steps run", "seconds", "vs first"), rows))  # fmt: skip
    return 0


def _module(requirements: str) -> str:
    """The import name of the first requirement (flask -> flask)."""
    return (
        requirements.split(maxsplit=1)[0]
        .split("=", maxsplit=1)[0]
        .split("[", maxsplit=1)[0]
        .replace("-", "_")
        .lower()
    )


if __name__ == "__main__":
    raise SystemExit(main())
