"""Detached background processes (nspawn, the proxy) that outlive the command that started them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab.exceptions import LabError

# Joins the given cgroup.procs files (up to "--"), then starts the command in the background so
# it is orphaned to init (never a zombie or a lingering Popen of ours) and prints its PID.
_LAUNCHER = (
    'log=$1; shift; for f in "$@"; do shift; [ "$f" = -- ] && break; '
    'echo $$ > "$f" || exit 1; done; "$@" </dev/null >>"$log" 2>&1 & echo $!'
)


def spawn_detached(
    argv: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    cgroup_procs: list[Path] | None = None,
) -> int:
    """Start ``argv`` in its own session, detached, output appended to ``log``; return its PID."""
    launched = subprocess.run(
        ["sh", "-c", _LAUNCHER, "sh", str(log), *map(str, cgroup_procs or []), "--", *argv],
        env=env, capture_output=True, text=True, check=False, start_new_session=True,
    )  # fmt: skip
    if launched.returncode != 0 or not launched.stdout.strip().isdigit():
        raise LabError(f"could not start {argv[0]}: {launched.stderr.strip()}")
    return int(launched.stdout.strip())


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> list[bytes]:
    """The argv of a live ``pid`` (empty when it is gone)."""
    if not is_alive(pid):
        return []
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
