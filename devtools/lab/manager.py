"""The lab as a whole: bring hosts up from a spec, report, inject faults, tear everything down."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lab import faults, image, prereqs
from lab.cgroups import HostCgroup, hierarchies
from lab.config import LabConfig
from lab.exceptions import LabError, UnknownHostError
from lab.host import Host, HostState, release_nspawn_runtime
from lab.inventory import write_inventory, write_known_hosts
from lab.network import Bridge, Proxy
from lab.spec import LabSpec
from lab.ssh import SSH
from lab.state import HostRecord, load_all

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class UpReport:
    """What `up` did and how long it took."""

    image_built: bool = False
    image_seconds: float = 0.0
    total_seconds: float = 0.0
    # Host name -> `systemctl is-system-running` once boot finished.
    system_state: dict[str, str] = field(default_factory=dict)
    # Host name -> seconds from nspawn start to sshd answering.
    ssh_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class HostStatus:
    """One row of `ccc-lab status`."""

    name: str
    address: str
    roles: tuple[str, ...]
    state: HostState
    system: str
    memory_bytes: int


class Lab:
    """All hosts, the bridge and the proxy of one lab configuration."""

    def __init__(self, config: LabConfig | None = None, progress: Progress | None = None) -> None:
        self.config = config or LabConfig.from_env()
        self.progress = progress or (lambda message: logger.info("%s", message))
        self.ssh = SSH(self.config.ssh_key, self.config.known_hosts, self.config.ssh_user)
        # debootstrap, ip and friends live in sbin, which a user's PATH may lack.
        path = os.environ.get("PATH", "")
        if "/usr/sbin" not in path.split(":"):
            os.environ["PATH"] = f"{path}:/usr/sbin:/sbin"

    # -- lookup ----------------------------------------------------------------------------

    def hosts(self) -> list[Host]:
        """Every recorded host of this lab."""
        return [Host(record, self.config) for record in load_all(self.config.hosts_dir)]

    def host(self, name: str) -> Host:
        """The host called ``name``; UnknownHostError lists the known ones otherwise."""
        hosts = self.hosts()
        for host in hosts:
            if host.name == name:
                return host
        raise UnknownHostError(name, [h.name for h in hosts])

    # -- lifecycle -------------------------------------------------------------------------

    def up(self, spec: LabSpec, boot_timeout: float = 90) -> UpReport:
        """Create missing hosts from ``spec``, boot every stopped one, wait until all answer."""
        prereqs.require_all()
        report = UpReport()
        started = time.monotonic()
        report.image_built = image.ensure_image(self.config.image_dir, self.progress)
        report.image_seconds = time.monotonic() - started
        if not report.image_built:
            self.progress(f"base image: cached at {self.config.image_dir}")
        public_key = self._ensure_key()
        Bridge(self.config).create()
        Proxy(self.config).start()
        self.progress(
            f"network: bridge {self.config.bridge} {self.config.bridge_address}"
            f"/{self.config.prefixlen}, apt/pip proxy {self.config.proxy_url}"
        )
        existing = {host.name: host for host in self.hosts()}
        records = [
            existing[h.name].record if h.name in existing else self._new_record(spec, h.name)
            for h in spec.hosts
        ]
        extra = sorted(set(existing) - {r.name for r in records})
        if extra:
            self.progress(f"note: hosts not in this spec stay as they are: {', '.join(extra)}")
        all_records = records + [existing[name].record for name in extra]
        for record in records:
            host = Host(record, self.config)
            if record.name not in existing:
                self.progress(
                    f"{record.name}: creating ({record.address}, {', '.join(record.roles)})"
                )
                host.mount()
                record.host_key = host.configure(all_records, public_key.read_text())
                record.save()
        write_known_hosts(all_records, self.config)
        boot_started: dict[str, float] = {}
        for record in records:
            host = Host(record, self.config)
            if not host.running:
                boot_started[record.name] = time.monotonic()
                host.boot()
                self.progress(f"{record.name}: booting")
        for record in records:
            self.ssh.wait(record.address, boot_timeout)
            if record.name in boot_started:
                report.ssh_seconds[record.name] = time.monotonic() - boot_started[record.name]
            report.system_state[record.name] = self.ssh.wait_booted(record.address, boot_timeout)
            self.progress(f"{record.name}: up, systemd {report.system_state[record.name]}")
        path = write_inventory(all_records, self.config)
        self.progress(f"inventory: {path}")
        report.total_seconds = time.monotonic() - started
        return report

    def down(self) -> None:
        """Stop every host, the proxy and the bridge; keep host disks, keys and the image."""
        prereqs.require_root()
        hosts = self.hosts()
        for host in hosts:
            if host.running:
                self.progress(f"{host.name}: stopping")
        # Hosts halt in parallel: each clean halt takes a second or two.
        with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
            list(pool.map(lambda h: h.shutdown(), hosts))
        Proxy(self.config).stop()
        Bridge(self.config).remove()
        release_nspawn_runtime()
        self.progress("lab stopped (disks kept; `ccc-lab up` boots the same hosts again)")

    def destroy(self, remove_image: bool = False) -> None:
        """Remove everything of this lab: hosts, overlays, bridge, proxy, mounts, cgroups, state."""
        prereqs.require_root()
        with contextlib.suppress(LabError):
            self.down()
        # Also sweep what a broken or half-written state might have lost track of.
        self._kill_stray_nspawns()
        for mount in self._stray_mounts():
            subprocess.run(["umount", "-l", str(mount)], check=False)
        for mount in hierarchies():
            lab_cgroup = mount / self.config.cgroup_name
            if lab_cgroup.is_dir():
                for child in lab_cgroup.iterdir():
                    if child.is_dir():
                        HostCgroup(self.config.cgroup_name, child.name).remove()
                with contextlib.suppress(OSError):
                    lab_cgroup.rmdir()
        Proxy(self.config).stop()
        Bridge(self.config).remove()
        release_nspawn_runtime()
        shutil.rmtree(self.config.state_dir, ignore_errors=True)
        self.config.inventory_path.unlink(missing_ok=True)
        if remove_image:
            shutil.rmtree(self.config.image_dir, ignore_errors=True)
        self.progress("lab destroyed" + (" (base image too)" if remove_image else ""))

    def _stray_mounts(self) -> list[Path]:
        prefix = str(self.config.state_dir) + "/"
        with open("/proc/self/mounts") as mounts:
            points = [Path(line.split()[1]) for line in mounts]
        return sorted((p for p in points if str(p).startswith(prefix)), reverse=True)

    def _kill_stray_nspawns(self) -> None:
        marker = str(self.config.state_dir).encode() + b"/"
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                argv = proc.joinpath("cmdline").read_bytes()
                if argv.startswith(b"systemd-nspawn\0") and marker in argv:
                    os.kill(int(proc.name), signal.SIGKILL)
                    logger.warning("Lab: killed stray nspawn %s", proc.name)

    def _ensure_key(self) -> Path:
        public = self.config.ssh_key.with_suffix(".pub")
        if not public.exists():
            self.config.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            done = subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ccc-lab",
                 "-f", str(self.config.ssh_key)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise LabError(f"ssh-keygen failed: {done.stderr.strip()}")
        return public

    def _new_record(self, spec: LabSpec, name: str) -> HostRecord:
        host = next(h for h in spec.hosts if h.name == name)
        return HostRecord(
            name=name,
            address=spec.address_of(name, self.config),
            roles=list(host.roles),
            vars=dict(host.vars),
            directory=str(self.config.hosts_dir / name),
        )

    # -- observation and faults ------------------------------------------------------------

    def status(self) -> list[HostStatus]:
        """State of every host; the systemd state only when the host can answer."""
        rows = []
        for host in self.hosts():
            state = host.state()
            system = (
                self.ssh.system_state(host.record.address, timeout=3)
                if state is HostState.RUNNING
                else "-"
            )
            rows.append(
                HostStatus(host.name, host.record.address, tuple(host.record.roles), state,
                           system, host.memory_pss())
            )  # fmt: skip
        return rows

    def crash(self, name: str) -> None:
        """SIGKILL the PID 1 of host ``name``."""
        faults.crash(self.host(name))

    def cut(self, name: str) -> None:
        """Cut host ``name`` off the network."""
        faults.cut(self.host(name))

    def heal(self, name: str) -> None:
        """Reconnect host ``name``."""
        faults.heal(self.host(name))

    def freeze(self, name: str) -> None:
        """Freeze host ``name``."""
        faults.freeze(self.host(name))

    def thaw(self, name: str) -> None:
        """Thaw host ``name``."""
        faults.thaw(self.host(name))

    def restart(self, name: str, timeout: float = 90) -> str:
        """Boot host ``name`` again (after a crash) and wait for SSH; return its systemd state."""
        host = self.host(name)
        prereqs.require_root()
        # After `down` the network is gone too: a restarted host needs its bridge and proxy.
        Bridge(self.config).create()
        Proxy(self.config).start()
        faults.restart(host)
        self.ssh.wait(host.record.address, timeout)
        return self.ssh.wait_booted(host.record.address, timeout)
