"""One typed configuration object for the lab: paths, bridge, addresses, proxy port."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: The bridge address of the default lab: what lab hosts use to reach the control machine
#: (the apt proxy, and simulators that bind to it).
BRIDGE_ADDRESS = "10.213.0.1"
DEFAULT_NETWORK = "10.213.0.0/24"


@dataclass(frozen=True)
class LabConfig:
    """Where the lab keeps its state and how its network looks; defaults suit one lab."""

    # Everything a lab creates lives under here (hosts, proxy, keys); `destroy` removes it.
    state_dir: Path = Path("/var/lib/ccc-lab/default")
    # The cached base image, shared by every lab on the machine and kept by `destroy`.
    image_dir: Path = Path("/var/lib/ccc-lab/base")
    # Linux bridge the hosts' veths join; at most 15 characters (IFNAMSIZ).
    bridge: str = "ccc-lab0"
    # A private /24: .1 is the bridge (control machine), hosts get .11 upwards.
    network: str = DEFAULT_NETWORK
    # apt-cacher-ng port on the bridge address.
    proxy_port: int = 3142
    # Name of the cgroup directory created under every mounted hierarchy.
    cgroup_name: str = "ccc-lab"
    # Generated Ansible inventory.
    inventory_path: Path = field(default=PROJECT_ROOT / "inventory" / "lab" / "hosts.yml")
    # Names of the default spec's hosts: PREFIX1, PREFIX2, ... Host names are global on the
    # machine (nspawn names each veth "vb-NAME"), so two labs need different prefixes.
    host_prefix: str = "lab"
    # Login user Ansible and paramiko use on hosts.
    ssh_user: str = "root"

    @classmethod
    def from_env(cls, **overrides: object) -> LabConfig:
        """Defaults, then CCC_LAB_* environment variables, then explicit overrides."""
        env_map = {
            "state_dir": ("CCC_LAB_STATE_DIR", Path),
            "image_dir": ("CCC_LAB_IMAGE_DIR", Path),
            "bridge": ("CCC_LAB_BRIDGE", str),
            "network": ("CCC_LAB_NETWORK", str),
            "proxy_port": ("CCC_LAB_PROXY_PORT", int),
            "cgroup_name": ("CCC_LAB_CGROUP", str),
            "inventory_path": ("CCC_LAB_INVENTORY", Path),
            "host_prefix": ("CCC_LAB_HOST_PREFIX", str),
        }
        values: dict[str, object] = {}
        for key, (var, kind) in env_map.items():
            if os.environ.get(var):
                values[key] = kind(os.environ[var])
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = replace(cls(), **values)
        config.validate()
        return config

    def validate(self) -> None:
        """Reject a network that is not a /24 or a bridge name the kernel would refuse."""
        net = ipaddress.ip_network(self.network, strict=True)
        if net.prefixlen != 24 or not net.is_private:
            raise ValueError(f"lab network must be a private /24, got {self.network}")
        if not 0 < len(self.bridge) <= 15:
            raise ValueError(f"bridge name {self.bridge!r} must be 1-15 characters")

    @property
    def bridge_address(self) -> str:
        """The control machine's address on the bridge (first address of the network)."""
        return str(ipaddress.ip_network(self.network)[1])

    @property
    def prefixlen(self) -> int:
        """Prefix length of the lab network."""
        return ipaddress.ip_network(self.network).prefixlen

    def host_address(self, index: int) -> str:
        """Default address of the index-th host (1-based): .11, .12, ..."""
        if not 1 <= index <= 200:
            raise ValueError(f"host index {index} out of range 1-200")
        return str(ipaddress.ip_network(self.network)[10 + index])

    @property
    def proxy_url(self) -> str:
        """apt/pip proxy URL as seen from inside hosts."""
        return f"http://{self.bridge_address}:{self.proxy_port}"

    @property
    def hosts_dir(self) -> Path:
        """Per-host state, overlays and JSON records."""
        return self.state_dir / "hosts"

    @property
    def ssh_dir(self) -> Path:
        """Generated lab key and known_hosts."""
        return self.state_dir / "ssh"

    @property
    def ssh_key(self) -> Path:
        """Private key Ansible and paramiko log in with."""
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """known_hosts with every lab host's key (generated on the control machine)."""
        return self.ssh_dir / "known_hosts"

    @property
    def proxy_dir(self) -> Path:
        """apt-cacher-ng configuration, cache, logs and pid file."""
        return self.state_dir / "proxy"
