"""CPU time of process trees, read from /proc/<pid>/stat (utime + stime, children included)."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of ``pid``, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def descendants(root: int) -> set[int]:
    """``root`` and every live process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _stat(int(entry.name))):
            parents[int(entry.name)] = info[0]
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= below
        grew = bool(below)
    return {pid for pid in tree if pid in parents or pid == root}


def cpu_seconds(pids: set[int]) -> dict[int, float]:
    """CPU seconds used so far by each of ``pids`` that still runs."""
    return {pid: info[1] for pid in pids if (info := _stat(pid))}


class TreeCPU:
    """CPU used between ``start()`` and ``stop()`` by a process and (``tree``) its descendants.

    Processes that end before ``stop()`` are not counted.
    """

    def __init__(self, root: int, tree: bool = True) -> None:
        self.root = root
        self.tree = tree
        self._before: dict[int, float] = {}
        self.seconds = 0.0

    def _pids(self) -> set[int]:
        return descendants(self.root) if self.tree else {self.root}

    def start(self) -> None:
        self._before = cpu_seconds(self._pids())

    def stop(self) -> float:
        after = cpu_seconds(self._pids())
        self.seconds = sum(after[p] - self._before.get(p, 0.0) for p in after)
        return self.seconds


def _machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (from /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


class MachineCPU:
    """CPU the whole machine used between ``start()`` and ``stop()`` (all processes, any user).

    Compared with the trees a benchmark meters, it shows how busy other work kept the cores.
    """

    def __init__(self) -> None:
        self._before = 0.0
        self.seconds = 0.0

    def start(self) -> None:
        self._before = _machine_busy()

    def stop(self) -> float:
        self.seconds = _machine_busy() - self._before
        return self.seconds
