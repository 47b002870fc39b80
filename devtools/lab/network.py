"""The lab network: a Linux bridge with a private /24, and the apt/pip proxy bound to it."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from lab.config import BRIDGE_ADDRESS, LabConfig
from lab.exceptions import LabError
from lab.image import machine_sources, mirror_uris
from lab.process import cmdline, is_alive, spawn_detached

logger = logging.getLogger(__name__)

__all__ = ["BRIDGE_ADDRESS", "Bridge", "Proxy", "bridge_address"]


def package_index_passthrough() -> str:
    """apt-cacher-ng's pattern for what pip inside hosts may tunnel to (CONNECT), nothing else:
    the package index pip uses by default and the domain that stores its files."""
    from pip._internal.models.index import PyPI  # pip's own names for its default index

    hosts = "|".join(re.escape(host) for host in (PyPI.netloc, PyPI.file_storage_domain))
    return f"^({hosts}):443$"


def bridge_address(config: LabConfig | None = None) -> str:
    """Address of the control machine on the lab bridge, e.g. for simulators hosts must reach."""
    return (config or LabConfig.from_env()).bridge_address


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def link_exists(name: str) -> bool:
    """Whether a network interface called ``name`` exists."""
    return Path("/sys/class/net", name).exists()


def link_is_up(name: str) -> bool:
    """Whether interface ``name`` is administratively up."""
    try:
        flags = int(Path("/sys/class/net", name, "flags").read_text(), 16)
    except OSError:
        return False
    return bool(flags & 0x1)  # IFF_UP


def set_link(name: str, up: bool) -> None:
    """Set interface ``name`` up or down."""
    _ip("link", "set", "dev", name, "up" if up else "down")


class Bridge:
    """The bridge the hosts' veths join; the control machine holds its first address."""

    def __init__(self, config: LabConfig) -> None:
        self.config = config

    @property
    def exists(self) -> bool:
        """Whether the bridge interface exists."""
        return link_exists(self.config.bridge)

    def create(self) -> None:
        """Create the bridge with its address, or leave an existing one as it is."""
        name, cidr = self.config.bridge, f"{self.config.bridge_address}/{self.config.prefixlen}"
        if not self.exists:
            logger.info("Bridge %s: creating with %s", name, cidr)
            _ip("link", "add", name, "type", "bridge")
        addresses = _ip("-o", "addr", "show", "dev", name).stdout
        if f" {cidr} " not in addresses:
            _ip("addr", "add", cidr, "dev", name)
        set_link(name, up=True)

    def remove(self) -> None:
        """Delete the bridge (veths of stopped hosts are already gone)."""
        if self.exists:
            logger.info("Bridge %s: deleting", self.config.bridge)
            _ip("link", "del", self.config.bridge)


class Proxy:
    """apt-cacher-ng on the bridge address: apt mirrors and PyPI for hosts without a route."""

    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.directory = config.proxy_dir

    @property
    def pid_file(self) -> Path:
        """Where the proxy's PID is recorded."""
        return self.directory / "ccc-lab.pid"

    def pid(self) -> int | None:
        """PID of the running proxy of this lab, or None."""
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        argv = cmdline(pid)
        # A recycled PID belongs to someone else: only our apt-cacher-ng with our config counts.
        conf = str(self.directory / "conf").encode()
        if argv and b"apt-cacher-ng" in argv[0] and conf in argv:
            return pid
        return None

    def render_config(self, mirrors: list[str]) -> str:
        """apt-cacher-ng configuration: managed remaps for ``mirrors``, PyPI passed through."""
        lines = [
            "# Written by ccc-lab; the proxy serves lab hosts only.",
            f"CacheDir: {self.directory / 'cache'}",
            f"LogDir: {self.directory / 'log'}",
            "SupportDir: /usr/lib/apt-cacher-ng",
            f"Port: {self.config.proxy_port}",
            # Bound to the bridge only: never reachable from outside the lab.
            f"BindAddress: {self.config.bridge_address}",
            f"PidFile: {self.directory / 'apt-cacher-ng.pid'}",
            f"SocketPath: {self.directory / 'admin.socket'}",
            "ForeGround: 1",
            # Only the mirrors below are proxied: hosts cannot use it to reach arbitrary sites.
            "ForceManaged: 1",
            f"PassThroughPattern: {package_index_passthrough()}",
            "ExThreshold: 4",
        ]
        lines += [f"Remap-lab{i}: {uri} ; {uri}" for i, uri in enumerate(mirrors)]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start the proxy unless it runs already; wait until it accepts connections."""
        if self.pid() is not None:
            return
        for sub in ("conf", "cache", "log"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        (self.directory / "conf" / "acng.conf").write_text(
            self.render_config(mirror_uris(machine_sources()))
        )
        log = self.directory / "proxy.log"
        pid = spawn_detached(["apt-cacher-ng", "-c", str(self.directory / "conf")], log)
        self.pid_file.write_text(f"{pid}\n")
        address = (self.config.bridge_address, self.config.proxy_port)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not is_alive(pid):
                raise LabError(f"apt-cacher-ng exited at start; see {log}")
            with contextlib.suppress(OSError), socket.create_connection(address, 1):
                logger.info("Proxy: listening on %s", self.config.proxy_url)
                return
            time.sleep(0.1)
        raise LabError(f"apt-cacher-ng not listening after 15s; see {log}")

    def stop(self) -> None:
        """Stop the proxy and wait until it is gone."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if self.pid() is None:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
