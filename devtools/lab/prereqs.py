"""Checks that the control machine can run the lab, each failing with the fix to apply."""

from __future__ import annotations

import os
import shutil

from lab.cgroups import unified
from lab.exceptions import PrerequisiteError

# Binary -> Debian package that ships it.
BINARIES = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "apt-cacher-ng": "apt-cacher-ng",
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
    "ip": "iproute2",
    "mount": "mount",
}
DEBIAN_PACKAGES = ("systemd-container", "debootstrap", "apt-cacher-ng", "openssh-client")


def install_hint(packages: list[str] | tuple[str, ...] = DEBIAN_PACKAGES) -> str:
    """The command that installs the given packages."""
    return f"scripts/ensure-debian-packages.sh {' '.join(packages)} (or: make lab-deps)"


def require_root() -> None:
    """The lab mounts, makes bridges and cgroups: only root can."""
    if os.geteuid() != 0:
        raise PrerequisiteError("the lab needs root (mounts, bridge, cgroups): run it with sudo")


def missing_binaries() -> list[str]:
    """Binaries the lab needs that are not on PATH."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [binary for binary in BINARIES if shutil.which(binary, path=path) is None]


def require_binaries() -> None:
    """Fail naming the packages to install when a binary is missing."""
    missing = missing_binaries()
    if missing:
        packages = sorted({BINARIES[b] for b in missing})
        raise PrerequisiteError(
            f"missing {', '.join(missing)}; install with: {install_hint(packages)}"
        )


def require_cgroup2() -> None:
    """Freezing needs a cgroup2 hierarchy (hybrid or unified)."""
    if unified() is None:
        raise PrerequisiteError("no cgroup2 hierarchy mounted (needed to run and freeze hosts)")


def require_all() -> None:
    """Every check `up` needs."""
    require_root()
    require_binaries()
    require_cgroup2()


def unavailable_reason() -> str | None:
    """Why lab hosts cannot run here (for pytest skips), or None when they can."""
    try:
        require_all()
    except PrerequisiteError as error:
        return str(error)
    return None
