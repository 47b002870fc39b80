"""Workspace preparation: the agent's mirror cache against a plain ``git clone`` over HTTP.

Generates a repository with ``--commits`` commits over ``--files`` files (``git fast-import``),
pushes it to the GitHub simulator over smart HTTP, then times, side by side:

- a plain ``git clone`` of it over HTTP (what an agent without a cache would do);
- ``Workspaces.prepare`` for the first task on the repository (``clone --mirror`` + local clone);
- ``Workspaces.prepare`` for a second task on the same repository (``fetch`` + local clone);
- the same after one new upstream commit (the fetch has something to bring).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as bench/workspace_prep.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent_app.gitcmd import Git
from agent_app.workspace import Workspaces
from bench.report import machine, table, verdict
from bench.runner import stop_cleanly_on_sigterm
from simulators.github.config import SimulatorConfig
from simulators.github.testing import TOKENS, running_simulator, sample_seed

REPOSITORY = "acme/monorepo"
TARGET_RATIO = 10
EPOCH = 1_700_000_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.workspace_prep",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--commits", type=int, default=5000, help="commits in the repository")
    parser.add_argument("--files", type=int, default=2000, help="files in the repository")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    return parser.parse_args(argv)


# The repository -------------------------------------------------------------------------------


def _file_text(path: str, version: int) -> bytes:
    lines = [f"# {path}", '"""Generated for the workspace benchmark."""', ""]
    lines += [f"CONSTANT_{i} = {i * 7919 % 1000}  # a line of ordinary source" for i in range(30)]
    lines.append(f"VERSION = {version}")
    return ("\n".join(lines) + "\n").encode()


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


def fast_import_stream(commits: int, files: int, first: int = 1, base: str | None = None):
    """A ``git fast-import`` stream: ``files`` files in the first commit, then small edits."""
    rng = random.Random(commits * 31 + files)  # noqa: S311 (reproducible content, not secrets)
    paths = [f"src/pkg{i % 50:02d}/module_{i:04d}.py" for i in range(files)]
    for number in range(first, first + commits):
        who = f"Dev {number % 17} <dev{number % 17}@example.com> {EPOCH + number * 60} +0000"
        yield f"commit refs/heads/main\nauthor {who}\ncommitter {who}\n".encode()
        yield _data(f"Change {number}\n\nA generated commit.".encode())
        if number == first and base:
            yield f"from {base}\n".encode()
        changed = paths if number == 1 else rng.sample(paths, rng.randint(1, 3))
        for path in changed:
            yield f"M 100644 inline {path}\n".encode() + _data(_file_text(path, number))
        yield b"\n"


def generate(bare: Path, commits: int, files: int) -> None:
    """Create a bare repository with the generated history, packed like a hosted one."""
    subprocess.run(["git", "init", "--bare", "-q", "--initial-branch=main", bare], check=True)
    _fast_import(bare, fast_import_stream(commits, files))
    subprocess.run(["git", "-C", bare, "repack", "-a", "-d", "-q"], check=True)


def add_commit(bare: Path, number: int, files: int) -> None:
    """One more commit on main of ``bare``."""
    _fast_import(bare, fast_import_stream(1, files, first=number, base="refs/heads/main^0"))


def _fast_import(bare: Path, stream: Iterator[bytes]) -> None:
    proc = subprocess.Popen(["git", "-C", bare, "fast-import", "--quiet"], stdin=subprocess.PIPE)
    assert proc.stdin is not None  # noqa: S101 (piped above)
    for chunk in stream:
        proc.stdin.write(chunk)
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")


def du(path: Path) -> int:
    """Bytes in the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# Measurements --------------------------------------------------------------------------------


class TimedGit(Git):
    """The agent's Git, recording how long each command of the current measurement takes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, float]] = []

    def __call__(self, *args: str, **options) -> str:
        began = time.perf_counter()
        try:
            return super().__call__(*args, **options)
        finally:
            self.calls.append(
                (
                    " ".join(a for a in args[:2] if not a.startswith("http")),
                    time.perf_counter() - began,
                )
            )


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def measure(
    args, tmp: Path, url: str, source: Path
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Every timing, ``args.repeat`` times each (the second-task runs share one mirror).

    Also returns the time of each git command of the second-task runs.
    """
    git = TimedGit()
    token = TOKENS["cluster-bot"]
    clone_url = f"{url}/{REPOSITORY}.git"
    results: dict[str, list[float]] = {"clone": [], "first": [], "second": [], "updated": []}
    for run in range(args.repeat):
        dest = tmp / f"plain-{run}"
        results["clone"].append(
            timed(lambda d=dest: git("clone", "--quiet", clone_url, str(d), token=token))
        )
        root = Workspaces(tmp / f"agent-{run}", git)
        results["first"].append(
            timed(
                lambda w=root: w.prepare(
                    1, REPOSITORY, clone_url, "claude/issue-1-a", "main", token
                )
            )
        )
    workspaces = Workspaces(tmp / f"agent-{args.repeat - 1}", git)
    git.calls.clear()
    for run in range(args.repeat):
        task = 10 + run
        results["second"].append(
            timed(
                lambda t=task: workspaces.prepare(
                    t, REPOSITORY, clone_url, f"claude/issue-{t}-b", "main", token
                )
            )
        )
    steps: dict[str, list[float]] = {}
    for name, seconds in git.calls:
        steps.setdefault(name, []).append(seconds)
    pusher = Git()
    for run in range(args.repeat):
        add_commit(source, args.commits + 1 + run, args.files)
        pusher("push", "--quiet", clone_url, "main:main", cwd=source, token=TOKENS["bob"])
        task = 20 + run
        results["updated"].append(
            timed(
                lambda t=task: workspaces.prepare(
                    t, REPOSITORY, clone_url, f"claude/issue-{t}-c", "main", token
                )
            )
        )
    return results, steps


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_cleanly_on_sigterm()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the simulator's request log
    print(f"# Workspace preparation\n\n{machine()}\n")
    seed = sample_seed()
    seed["repos"].append(
        {
            "name": REPOSITORY,
            "private": True,
            "collaborators": {"bob": "write", "cluster-bot": "write"},
        }
    )
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ccc-bench-ws-")))
        source = tmp / "source.git"
        began = time.perf_counter()
        generate(source, args.commits, args.files)
        made = time.perf_counter() - began
        sim, url = stack.enter_context(
            running_simulator(SimulatorConfig(seed=seed, data_dir=tmp / "github"))
        )
        began = time.perf_counter()
        Git()("push", "--quiet", f"{url}/{REPOSITORY}.git", "main:main", cwd=source,
              token=TOKENS["bob"])  # fmt: skip
        pushed = time.perf_counter() - began
        hosted = du(sim.git.path(sim.repo(REPOSITORY)))
        print(
            f"Repository: {args.commits:,} commits, {args.files:,} files, generated in "
            f"{made:.1f} s, pushed over HTTP in {pushed:.1f} s ({hosted / 1e6:.1f} MB hosted)"
        )
        print(f"Timing {args.repeat} runs of each…\n")
        results, steps = measure(args, tmp, url, source)
        checkout = sum(1 for _ in (tmp / "plain-0").rglob("*.py"))
        mirror = du(tmp / f"agent-{args.repeat - 1}" / "mirrors")
    print(report(args, results, checkout, mirror, steps))
    return 0


def report(args, results, checkout: int, mirror: int, steps: dict[str, list[float]]) -> str:
    names = {
        "clone": "plain `git clone` over HTTP",
        "first": "first task: `Workspaces.prepare` (clone --mirror, local clone)",
        "second": "second task, same repository (fetch, local clone)",
        "updated": "second task after 1 new upstream commit",
    }
    clone = statistics.median(results["clone"])
    rows = []
    for key, label in names.items():
        median = statistics.median(results[key])
        rows.append(
            [
                label,
                f"{median:.2f}",
                f"{min(results[key]):.2f}",
                f"{clone / median:.1f}x",
            ]
        )
    ratio = clone / statistics.median(results["second"])
    summary = [
        [
            "repository",
            f"{args.commits:,} commits, {args.files:,} files ({checkout:,} checked out)",
        ],
        ["agent mirror size", f"{mirror / 1e6:.1f} MB"],
        ["runs of each", args.repeat],
        ["**plain clone / second task**", f"**{ratio:.1f}x**"],
        [f"target second task ≥ {TARGET_RATIO}x faster than a fresh clone", verdict(ratio >= 10)],
    ]
    return "\n".join(
        [
            table(
                "Workspace preparation (seconds)",
                ["what", "median", "best", "speed-up vs plain clone"],
                rows,
            ),
            table(
                "Where a second task's preparation goes (git commands, median seconds)",
                ["git command", "median", "runs"],
                [[f"`git {n}`", f"{statistics.median(t):.3f}", len(t)] for n, t in steps.items()],
            ),
            table("Summary", ["figure", "value"], summary),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
