"""One lab host: an overlay on the base image, configured, booted by systemd-nspawn."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from enum import StrEnum
from pathlib import Path

from lab import network
from lab.cgroups import HostCgroup
from lab.config import LabConfig
from lab.exceptions import LabError
from lab.process import cmdline, is_alive, spawn_detached
from lab.state import HostRecord

logger = logging.getLogger(__name__)

NSPAWN_RUNTIME = Path("/run/systemd/nspawn")
# Exactly the flags measured to boot here; plain `-b` fails with "Failed to open system bus".
NSPAWN_FLAGS = ("--register=no", "--keep-unit", "--boot", "--console=read-only")


class HostState(StrEnum):
    """What `status` reports for a host."""

    RUNNING = "running"
    STOPPED = "stopped"
    FROZEN = "frozen"
    CUT = "cut"


def is_mountpoint(path: Path) -> bool:
    """Whether ``path`` is a mount point (read from the mount table, no stat on a dead mount)."""
    target = str(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def ensure_nspawn_runtime() -> None:
    """Mount a tmpfs on /run/systemd/nspawn: nspawn refuses a disk-backed /run."""
    if not is_mountpoint(NSPAWN_RUNTIME):
        NSPAWN_RUNTIME.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(NSPAWN_RUNTIME))


def release_nspawn_runtime() -> None:
    """Unmount that tmpfs again, unless some nspawn (of any lab) still runs."""
    if is_mountpoint(NSPAWN_RUNTIME) and not nspawn_pids():
        _run("umount", str(NSPAWN_RUNTIME))


def nspawn_pids() -> list[int]:
    """PIDs of every live systemd-nspawn on the machine."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if proc.joinpath("comm").read_text().strip() == "systemd-nspawn" and is_alive(
                    int(proc.name)
                ):
                    found.append(int(proc.name))
    return found


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")


class Host:
    """A lab host, driven from its on-disk record."""

    def __init__(self, record: HostRecord, config: LabConfig) -> None:
        self.record = record
        self.config = config
        self.cgroup = HostCgroup(config.cgroup_name, record.name)

    @property
    def name(self) -> str:
        """Host (and machine) name."""
        return self.record.name

    @property
    def directory(self) -> Path:
        """The host's state directory."""
        return Path(self.record.directory)

    @property
    def veth(self) -> str:
        """Host-side end of the host's veth pair, as nspawn names it."""
        return f"vb-{self.name}"

    # -- disk ------------------------------------------------------------------------------

    def mount(self) -> None:
        """Mount the overlay (base image below, this host's changes above)."""
        root = self.record.root
        if is_mountpoint(root):
            return
        for sub in ("upper", "work", "root"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        options = (
            f"lowerdir={self.config.image_dir},upperdir={self.directory / 'upper'},"
            f"workdir={self.directory / 'work'}"
        )
        _run("mount", "-t", "overlay", "overlay", "-o", options, str(root))

    def unmount(self) -> None:
        """Unmount the overlay if mounted."""
        if is_mountpoint(self.record.root):
            _run("umount", str(self.record.root))

    def configure(self, peers: list[HostRecord], public_key: str) -> str:
        """Write identity, network, SSH and proxy settings; return the host's SSH public key."""
        root = self.record.root
        etc = root / "etc"
        (etc / "machine-id").write_text(uuid.uuid4().hex + "\n")
        dbus_id = root / "var/lib/dbus/machine-id"
        dbus_id.unlink(missing_ok=True)
        dbus_id.symlink_to("/etc/machine-id")
        (etc / "hostname").write_text(self.name + "\n")
        (etc / "hosts").write_text(render_hosts(self.name, peers, self.config.bridge_address))
        # This exact name: otherwise the vendor file wins and the host gets only 169.254.x.
        (etc / "systemd/network/80-container-host0.network").write_text(
            "[Match]\nName=host0\n\n[Network]\n"
            f"Address={self.record.address}/{self.config.prefixlen}\n"
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
        )
        ssh = root / "root/.ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "authorized_keys").write_text(public_key.strip() + "\n")
        (ssh / "authorized_keys").chmod(0o600)
        proxy = self.config.proxy_url
        # No pipelining through the proxy, and a timeout with retries: an apt download once
        # hung for good on a connection apt-cacher-ng had closed.
        (etc / "apt/apt.conf.d/01ccc-lab-proxy").write_text(
            f'Acquire::http::Proxy "{proxy}/";\n'
            'Acquire::http::Pipeline-Depth "0";\n'
            'Acquire::http::Timeout "30";\n'
            'Acquire::Retries "3";\n'
        )
        (etc / "pip.conf").write_text(
            f"[global]\nproxy = {proxy}\ncert = /etc/ssl/certs/ca-certificates.crt\n"
        )
        return self._host_key()

    def _host_key(self) -> str:
        # Made per host here (not in the image, not at boot) so known_hosts can be exact.
        key = self.record.root / "etc/ssh/ssh_host_ed25519_key"
        if not key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{self.name}",
                 "-f", str(key))  # fmt: skip
        return key.with_suffix(".pub").read_text().split(" #")[0].strip()

    # -- process ---------------------------------------------------------------------------

    def pid(self) -> int | None:
        """PID of this host's live systemd-nspawn, or None."""
        pid = self.record.pid
        argv = cmdline(pid) if pid is not None else []
        # A recycled PID belongs to someone else: check it is nspawn on our root.
        if argv and b"systemd-nspawn" in argv[0] and str(self.record.root).encode() in argv:
            return pid
        return None

    @property
    def running(self) -> bool:
        """Whether nspawn runs for this host."""
        return self.pid() is not None

    def leader(self) -> int | None:
        """PID (on the control machine) of the host's PID 1: nspawn's child in the new PID ns."""
        pid = self.pid()
        if pid is None:
            return None
        children = Path(f"/proc/{pid}/task/{pid}/children")
        with contextlib.suppress(OSError):
            for child in children.read_text().split():
                status = Path(f"/proc/{child}/status").read_text()
                for line in status.splitlines():
                    if line.startswith("NSpid:") and line.split()[-1] == "1":
                        return int(child)
        return None

    def boot(self, timeout: float = 30) -> int:
        """Start nspawn in the host's own cgroups; return once its PID 1 exists."""
        if (pid := self.pid()) is not None:
            return pid
        if network.link_exists(self.veth):
            raise LabError(f"{self.veth} exists without a running {self.name}; run ccc-lab down")
        ensure_nspawn_runtime()
        self.mount()
        self.cgroup.kill_all()
        self.cgroup.clear_children()
        procs = self.cgroup.create()
        argv = [
            "systemd-nspawn", *NSPAWN_FLAGS, "-D", str(self.record.root), "-M", self.name,
            f"--network-bridge={self.config.bridge}",
        ]  # fmt: skip
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        log = self.directory / "console.log"
        self.record.pid = spawn_detached(argv, log, env=env, cgroup_procs=procs)
        self.record.save()
        deadline = time.monotonic() + timeout
        while self.leader() is None:
            if self.pid() is None:
                raise LabError(f"{self.name}: nspawn exited; see {self.directory}/console.log")
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: no PID 1 after {timeout:.0f}s")
            time.sleep(0.05)
        logger.info("Host %s: booting (nspawn pid %s)", self.name, self.record.pid)
        return self.record.pid

    def wait_exit(self, timeout: float) -> bool:
        """Wait until nspawn has exited; return whether it did."""
        deadline = time.monotonic() + timeout
        while self.pid() is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def stop(self, timeout: float = 30) -> None:
        """Shut the host down cleanly (SIGTERM to nspawn halts it), forcibly after ``timeout``."""
        pid = self.pid()
        if pid is not None:
            self.set_frozen(False)  # a frozen systemd never answers the halt request
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self.wait_exit(timeout):
                logger.warning("Host %s: no clean halt in %ss, killing", self.name, timeout)
                if (leader := self.leader()) is not None:
                    os.kill(leader, signal.SIGKILL)
                if not self.wait_exit(5):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    self.wait_exit(5)
        self.cgroup.kill_all()
        if self.record.pid is not None:
            self.record.pid = None
            self.record.save()

    def shutdown(self) -> None:
        """Stop the host and release its mount and cgroups, keeping its disk for a later boot."""
        self.stop()
        self.unmount()
        self.cgroup.remove()

    def remove(self) -> None:
        """Shut down and delete the host's disk and record."""
        self.shutdown()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- observation -----------------------------------------------------------------------

    def frozen(self) -> bool:
        """Whether the host's payload cgroup is frozen."""
        payload = self.cgroup.payload()
        try:
            return payload is not None and (payload / "cgroup.freeze").read_text().strip() == "1"
        except OSError:
            return False

    def set_frozen(self, frozen: bool, timeout: float = 10) -> None:
        """Freeze or thaw every process of the host (cgroup2 freezer) and wait until it took."""
        payload = self.cgroup.payload()
        if payload is None or not (payload / "cgroup.freeze").exists():
            if frozen:
                raise LabError(f"{self.name}: no cgroup2 payload/cgroup.freeze (is it running?)")
            return
        (payload / "cgroup.freeze").write_text("1" if frozen else "0")
        want = f"frozen {int(frozen)}"
        deadline = time.monotonic() + timeout
        while want not in (payload / "cgroup.events").read_text():
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: cgroup did not reach '{want}' in {timeout}s")
            time.sleep(0.05)

    def state(self) -> HostState:
        """running, stopped, frozen or cut (frozen wins over cut)."""
        if not self.running:
            return HostState.STOPPED
        if self.frozen():
            return HostState.FROZEN
        if not network.link_is_up(self.veth):
            return HostState.CUT
        return HostState.RUNNING

    def memory_pss(self) -> int:
        """Proportional set size in bytes of every process inside the host (its payload)."""
        payload = self.cgroup.payload()
        if payload is None or not payload.is_dir():
            return 0
        total = 0
        # Scopes come and go while we walk (SSH sessions): vanished ones are simply skipped.
        for directory, _, _ in os.walk(payload):
            with contextlib.suppress(OSError):
                for pid in Path(directory, "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                        total += sum(
                            int(line.split()[1]) * 1024
                            for line in rollup.splitlines()
                            if line.startswith("Pss:")
                        )
        return total


def render_hosts(name: str, peers: list[HostRecord], control: str) -> str:
    """/etc/hosts for a host: itself, its peers, and the control machine as `control`."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{control}\tcontrol"]  # fmt: skip
    lines += [f"{peer.address}\t{peer.name}" for peer in peers]
    if name not in {peer.name for peer in peers}:
        lines.append(f"127.0.1.1\t{name}")
    return "\n".join(lines) + "\n"
