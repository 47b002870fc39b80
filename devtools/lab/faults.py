"""Fault injection on lab hosts: crash, network cut and heal, freeze and thaw, restart."""

from __future__ import annotations

import logging
import os
import signal

from lab import network
from lab.exceptions import LabError
from lab.host import Host

logger = logging.getLogger(__name__)


def crash(host: Host) -> None:
    """SIGKILL the host's PID 1 (nspawn's child); nspawn itself exits on its own."""
    # Killing nspawn instead would orphan the host's processes with no one to stop them.
    leader = host.leader()
    if leader is None:
        raise LabError(f"{host.name} is not running")
    host.set_frozen(False)  # leave no frozen payload cgroup behind for the next boot
    os.kill(leader, signal.SIGKILL)
    host.wait_exit(15)
    logger.info("Host %s: crashed (PID 1 %s killed)", host.name, leader)


def cut(host: Host) -> None:
    """Partition the host: its bridge-side veth goes down (the host keeps running)."""
    _require_link(host)
    network.set_link(host.veth, up=False)
    logger.info("Host %s: network cut", host.name)


def heal(host: Host) -> None:
    """Undo a cut: the bridge-side veth goes up again."""
    _require_link(host)
    network.set_link(host.veth, up=True)
    logger.info("Host %s: network healed", host.name)


def freeze(host: Host) -> None:
    """Freeze every process of the host (cgroup2 freezer on its payload)."""
    _require_running(host)
    host.set_frozen(True)
    logger.info("Host %s: frozen", host.name)


def thaw(host: Host) -> None:
    """Resume a frozen host."""
    _require_running(host)
    host.set_frozen(False)
    logger.info("Host %s: thawed", host.name)


def restart(host: Host) -> int:
    """Boot the host again after a crash (a running host is halted first); return nspawn's PID."""
    if host.running:
        host.stop()
    return host.boot()


def _require_running(host: Host) -> None:
    if not host.running:
        raise LabError(f"{host.name} is not running (ccc-lab restart {host.name})")


def _require_link(host: Host) -> None:
    _require_running(host)
    if not network.link_exists(host.veth):
        raise LabError(f"{host.name}: no interface {host.veth}")
