"""Per-host cgroups in every mounted hierarchy, made before nspawn starts and removed after.

Without its own cgroup every host shares one payload tree, and stopping one fails with
``Failed to kill control group ... Input/output error`` (LAB_NOTES).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

logger = logging.getLogger(__name__)

MOUNTS = Path("/proc/self/mounts")


def hierarchies(mounts_file: Path = MOUNTS) -> list[Path]:
    """Mount points of every cgroup (v1) and cgroup2 hierarchy on this machine."""
    found = []
    for line in mounts_file.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("cgroup", "cgroup2"):
            found.append(Path(parts[1]))
    return found


def unified(mounts_file: Path = MOUNTS) -> Path | None:
    """Mount point of the cgroup2 hierarchy (freeze lives there), or None."""
    for line in mounts_file.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1])
    return None


class HostCgroup:
    """The cgroup ``<hierarchy>/<lab cgroup>/<host>`` in every hierarchy."""

    def __init__(self, lab_cgroup: str, host: str) -> None:
        self.lab_cgroup = lab_cgroup
        self.host = host

    def paths(self) -> list[Path]:
        """This host's cgroup directory in each mounted hierarchy."""
        return [mount / self.lab_cgroup / self.host for mount in hierarchies()]

    def unified_path(self) -> Path | None:
        """This host's cgroup in the cgroup2 hierarchy."""
        mount = unified()
        return mount / self.lab_cgroup / self.host if mount else None

    def payload(self) -> Path | None:
        """The container's own subtree that nspawn creates (where freezing applies)."""
        path = self.unified_path()
        return path / "payload" if path else None

    def create(self) -> list[Path]:
        """Make the cgroup everywhere; return the ``cgroup.procs`` files to join before exec."""
        procs = []
        for path in self.paths():
            for level in (path.parent, path):
                if not level.is_dir():
                    level.mkdir()
                    _inherit_cpuset(level)
            procs.append(path / "cgroup.procs")
        return procs

    def pids(self) -> list[int]:
        """Every process in this host's cgroups (any hierarchy, any depth)."""
        found: set[int] = set()
        for path in self.paths():
            # os.walk skips cgroups that vanish mid-walk (rglob raises on them).
            for directory, _, _ in os.walk(path):
                with contextlib.suppress(OSError, ValueError):
                    procs = Path(directory, "cgroup.procs").read_text()
                    found.update(int(p) for p in procs.split())
        return sorted(found)

    def kill_all(self, timeout: float = 10) -> None:
        """SIGKILL whatever is left in the host's cgroups and wait until they are empty."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        if pids:
            logger.warning("Host %s: processes %s survived SIGKILL", self.host, pids)

    def clear_children(self) -> None:
        """Remove empty sub-cgroups left by a previous boot, keeping the host's own directory."""
        for path in self.paths():
            if path.is_dir():
                for child in sorted(path.iterdir(), key=lambda p: -len(p.parts)):
                    if child.is_dir():
                        _rmtree_cgroup(child)

    def remove(self) -> None:
        """Remove the host's cgroups everywhere, and the lab cgroup once it has no hosts."""
        self.kill_all()
        for path in self.paths():
            _rmtree_cgroup(path)
            with contextlib.suppress(OSError):  # still holds other hosts: keep it
                path.parent.rmdir()


def _inherit_cpuset(path: Path) -> None:
    # A v1 cpuset cgroup starts with no CPUs or memory nodes and refuses tasks until given some.
    for name in ("cpuset.cpus", "cpuset.mems"):
        target = path / name
        if target.exists() and not target.read_text().strip():
            target.write_text((path.parent / name).read_text())


def _rmtree_cgroup(path: Path) -> None:
    """rmdir a cgroup tree bottom-up (cgroup directories cannot be removed recursively)."""
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir():
            _rmtree_cgroup(child)
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while the last processes are exiting
            time.sleep(0.1)
    logger.warning("cgroup %s could not be removed", path)
