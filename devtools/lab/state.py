"""The JSON record kept per host: what `status`, faults and `down` need after `up` has exited."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "host.json"


@dataclass
class HostRecord:
    """One lab host as recorded on disk."""

    name: str
    address: str
    roles: list[str] = field(default_factory=list)
    # Extra inventory variables (agent_specialties, agent_max_tasks, ...).
    vars: dict[str, Any] = field(default_factory=dict)
    # PID of systemd-nspawn (the supervisor), or None when stopped.
    pid: int | None = None
    # Directory holding the overlay (upper, work, root) of this host.
    directory: str = ""
    # The host's SSH public host key ("ssh-ed25519 AAAA..."), for an exact known_hosts.
    host_key: str = ""

    @property
    def root(self) -> Path:
        """Mount point of the host's overlay root filesystem."""
        return Path(self.directory) / "root"

    def save(self) -> None:
        """Write the record atomically (a crash mid-write never leaves half a file)."""
        path = Path(self.directory) / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: Path) -> HostRecord:
        """Read the record of the host whose directory is ``directory``."""
        data = json.loads((directory / STATE_FILE).read_text())
        return cls(**data)


def load_all(hosts_dir: Path) -> list[HostRecord]:
    """Every recorded host under ``hosts_dir``, in name order."""
    if not hosts_dir.is_dir():
        return []
    records = [
        HostRecord.load(child)
        for child in sorted(hosts_dir.iterdir())
        if (child / STATE_FILE).is_file()
    ]
    return sorted(records, key=lambda r: r.name)
