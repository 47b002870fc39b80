"""The cached Debian 12 base image every lab host overlays: built once with debootstrap."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.exceptions import LabError

logger = logging.getLogger(__name__)

SUITE = "bookworm"
# LAB_NOTES' measured package list, plus python3-packaging for Ansible's pip module.
PACKAGES = (
    "systemd,systemd-sysv,dbus,libpam-systemd,openssh-server,python3,python3-apt,iproute2,sudo,"
    "ca-certificates,netbase,procps,python3-packaging"
)
APT_DIR = Path("/etc/apt")
CA_DIR = Path("/usr/local/share/ca-certificates")
# Written last: its presence means the image is complete (a killed build leaves none).
STAMP = "etc/ccc-lab-image"


@dataclass(frozen=True)
class AptSource:
    """One apt source entry (either format) reduced to what the lab needs."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None


def parse_deb822(text: str) -> list[AptSource]:
    """Parse a deb822 ``.sources`` file; stanzas with ``Enabled: no`` are left out."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and key:  # continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if not fields.get("uris") or fields.get("enabled", "yes").lower() == "no":
            continue
        sources.append(
            AptSource(
                types=tuple(fields.get("types", "deb").split()),
                uris=tuple(fields["uris"].split()),
                suites=tuple(fields.get("suites", "").split()),
                components=tuple(fields.get("components", "").split()),
                signed_by=fields.get("signed-by"),
            )
        )
    return sources


def parse_one_line(text: str) -> list[AptSource]:
    """Parse the one-line ``sources.list`` format (``deb [opts] URI suite comp...``)."""
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options = re.search(r"\[([^\]]*)\]", line)
        signed_by = None
        if options:
            found = re.search(r"signed-by=(\S+)", options.group(1))
            signed_by = found.group(1) if found else None
            line = line[: options.start()] + line[options.end() :]
        parts = line.split()
        if len(parts) < 3 or parts[0] not in ("deb", "deb-src"):
            continue
        sources.append(
            AptSource(
                types=(parts[0],),
                uris=(parts[1],),
                suites=(parts[2],),
                components=tuple(parts[3:]),
                signed_by=signed_by,
            )
        )
    return sources


def source_files(apt_dir: Path = APT_DIR) -> list[Path]:
    """The apt source files apt itself reads (other names in sources.list.d are ignored by apt)."""
    files = [apt_dir / "sources.list"] if (apt_dir / "sources.list").is_file() else []
    listing = apt_dir / "sources.list.d"
    if listing.is_dir():
        files += sorted(p for p in listing.iterdir() if p.suffix in (".sources", ".list"))
    return files


def machine_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    """Every enabled apt source of this machine."""
    sources: list[AptSource] = []
    for path in source_files(apt_dir):
        text = path.read_text(errors="replace")
        sources += parse_deb822(text) if path.suffix == ".sources" else parse_one_line(text)
    return sources


def mirror_uri(sources: list[AptSource], suite: str = SUITE) -> str:
    """The URI of the mirror carrying ``suite`` main binaries (what debootstrap needs)."""
    for source in sources:
        if "deb" in source.types and suite in source.suites and "main" in source.components:
            return source.uris[0]
    raise LabError(
        f"no apt source for '{suite} main' in {APT_DIR}/sources.list(.d); "
        "the lab reads the mirror from the machine's own apt sources"
    )


def mirror_uris(sources: list[AptSource]) -> list[str]:
    """Every distinct deb URI (the apt proxy remaps exactly these)."""
    seen: list[str] = []
    for source in sources:
        for uri in source.uris:
            if "deb" in source.types and uri not in seen:
                seen.append(uri)
    return seen


def is_built(image_dir: Path) -> bool:
    """Whether a complete base image is in ``image_dir``."""
    return (image_dir / STAMP).is_file()


@contextlib.contextmanager
def _build_lock(image_dir: Path) -> Iterator[None]:
    # Two labs (a test run and a developer's lab) may ask for the image at once.
    image_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(image_dir.parent / f".{image_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_image(
    image_dir: Path,
    progress: Callable[[str], None] = logger.info,
    apt_dir: Path = APT_DIR,
    ca_dir: Path = CA_DIR,
) -> bool:
    """Build the base image unless a complete one exists; return True when it was built now."""
    with _build_lock(image_dir):
        if is_built(image_dir):
            return False
        sources = machine_sources(apt_dir)
        mirror = mirror_uri(sources)
        staging = image_dir.with_name(image_dir.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        progress(f"building base image from {mirror} (about a minute, once)")
        started = time.monotonic()
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE,
             str(staging), mirror],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise LabError(f"debootstrap failed:\n{tail}")
        _customise(staging, apt_dir, ca_dir)
        shutil.rmtree(image_dir, ignore_errors=True)
        staging.rename(image_dir)
        progress(f"base image ready in {time.monotonic() - started:.0f}s at {image_dir}")
        return True


def _chroot(root: Path, *argv: str) -> None:
    done = subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"in image: {' '.join(argv)} failed: {done.stdout}{done.stderr}")


def _customise(root: Path, apt_dir: Path, ca_dir: Path) -> None:
    """Make the debootstrapped tree a bootable, host-neutral lab image."""
    # minbase lists only `bookworm main`: the hosts get this machine's sources instead.
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    for path in source_files(apt_dir):
        target = root / "etc/apt" / path.relative_to(apt_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for source in machine_sources(apt_dir):
        keyring = source.signed_by
        if keyring and keyring.startswith("/") and not (root / keyring.lstrip("/")).exists():
            shutil.copy2(keyring, root / keyring.lstrip("/"))
    # Snapshot-style mirrors serve old Release files; keep the machine's validity settings.
    valid = subprocess.run(
        ["apt-config", "dump", "Acquire::Check-Valid-Until"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    if '"false"' in valid:
        (root / "etc/apt/apt.conf.d/90ccc-lab-validity").write_text(
            'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n'
        )
    # HTTPS to the registries is intercepted by a proxy whose CA only this machine trusts.
    if ca_dir.is_dir():
        for cert in ca_dir.glob("*.crt"):
            shutil.copy2(cert, root / "usr/local/share/ca-certificates" / cert.name)
    _chroot(root, "update-ca-certificates")
    # Host keys are per host (made by the lab at host creation), never shared via the image.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/ssh/sshd_config.d/ccc-lab.conf").write_text(
        "# ccc-lab: only the key the lab installs per host; no passwords.\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
    )
    _chroot(root, "systemctl", "enable", "systemd-networkd.service")
    # No network to wait for beyond a static address; it only delays boot when the veth is down.
    _chroot(root, "systemctl", "disable", "systemd-networkd-wait-online.service")
    # A background `apt-get update` would hold the dpkg lock in the middle of a playbook.
    _chroot(root, "systemctl", "disable", "apt-daily.timer", "apt-daily-upgrade.timer")
    # Each host writes its own; an empty file in the image would be shared otherwise.
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    (root / STAMP).write_text(f"ccc-lab base image, built {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
