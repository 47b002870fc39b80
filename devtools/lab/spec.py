"""Lab specs: which hosts a lab has and the roles each plays (YAML file or the default)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cluster_core.specialties import SPECIALTIES
from lab.config import LabConfig
from lab.exceptions import SpecError

SERVICE_ROLES = ("database", "redis", "coordinator", "agents")
# `spare`: a host autoscale.yml may turn into an agent (its agent_* variables say how).
ROLES = (*SERVICE_ROLES, "spare")
# nspawn names the host-side veth "vb-NAME" and interface names are at most 15 characters.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,11}$")
# Specialties the default spec hands out to agents in turn (each also takes `general`).
_DEFAULT_ROTATION = ("backend", "frontend", "testing", "devops")


@dataclass(frozen=True)
class HostSpec:
    """One host of a lab spec (no roles: a spare host, in the inventory but in no group)."""

    name: str
    roles: tuple[str, ...]
    address: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LabSpec:
    """The hosts of a lab, in order (host N gets address .10+N unless it names one)."""

    hosts: tuple[HostSpec, ...]

    def address_of(self, name: str, config: LabConfig) -> str:
        """Address of host ``name``."""
        for i, host in enumerate(self.hosts, start=1):
            if host.name == name:
                return host.address or config.host_address(i)
        raise KeyError(name)


def default_spec(count: int, prefix: str = "lab") -> LabSpec:
    """``lab1`` runs database, redis and coordinator; ``lab2``.. are agents (1 host: all four)."""
    if count < 1:
        raise SpecError("a lab needs at least one host")
    if not NAME_PATTERN.match(f"{prefix}{count}"):
        raise SpecError(f"host prefix {prefix!r} gives invalid names like {prefix}{count}")
    if count == 1:
        return LabSpec((HostSpec(f"{prefix}1", SERVICE_ROLES, vars=_agent_vars(0)),))
    hosts = [HostSpec(f"{prefix}1", ("database", "redis", "coordinator"))]
    hosts += [
        HostSpec(f"{prefix}{i}", ("agents",), vars=_agent_vars(i - 2)) for i in range(2, count + 1)
    ]
    return LabSpec(tuple(hosts))


def _agent_vars(index: int) -> dict[str, Any]:
    specialty = _DEFAULT_ROTATION[index % len(_DEFAULT_ROTATION)]
    return {"agent_specialties": [specialty, "general"], "agent_max_tasks": 2}


def parse_spec(data: Any, config: LabConfig | None = None) -> LabSpec:
    """Validate a spec already loaded from YAML (``hosts:`` as a list or a name mapping)."""
    config = config or LabConfig()
    if not isinstance(data, dict) or "hosts" not in data:
        raise SpecError("a lab spec is a mapping with a `hosts:` list")
    raw = data["hosts"]
    if isinstance(raw, dict):
        raw = [{"name": name, **(body or {})} for name, body in raw.items()]
    if not isinstance(raw, list) or not raw:
        raise SpecError("`hosts:` must list at least one host")
    hosts = tuple(_parse_host(entry) for entry in raw)
    _check_unique(hosts, config)
    return LabSpec(hosts)


def load_spec(path: Path, config: LabConfig | None = None) -> LabSpec:
    """Read and validate a YAML lab spec file."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SpecError(f"cannot read lab spec {path}: {error}") from error
    return parse_spec(data, config)


def _parse_host(entry: Any) -> HostSpec:
    if not isinstance(entry, dict) or "name" not in entry:
        raise SpecError(f"each host needs a `name:`, got {entry!r}")
    entry = dict(entry)
    name = str(entry.pop("name"))
    if not NAME_PATTERN.match(name):
        raise SpecError(
            f"host name {name!r}: use 1-12 of a-z, 0-9, '-', starting with a letter "
            "(the veth vb-NAME must fit 15 characters)"
        )
    roles = entry.pop("roles", None)
    if isinstance(roles, str):
        roles = [roles]
    # `roles: []` is a spare host: booted and in the inventory, in no group (add_agent.yml).
    unknown = [role for role in roles or () if role not in ROLES]
    if unknown or not isinstance(roles, list):
        raise SpecError(
            f"host {name}: roles must be some of {', '.join(ROLES)} ([] for a spare host), "
            f"got {roles}"
        )
    address = entry.pop("address", None)
    specialties = entry.get("agent_specialties")
    if specialties is not None and (
        not isinstance(specialties, list) or any(s not in SPECIALTIES for s in specialties)
    ):
        raise SpecError(f"host {name}: agent_specialties must be a list of {SPECIALTIES}")
    max_tasks = entry.get("agent_max_tasks")
    if max_tasks is not None and (not isinstance(max_tasks, int) or max_tasks < 1):
        raise SpecError(f"host {name}: agent_max_tasks must be a positive integer")
    if "spare" in roles and len(roles) > 1:
        raise SpecError(f"host {name}: a spare host has no other role, got {roles}")
    if (specialties or max_tasks) and roles and not {"agents", "spare"} & set(roles):
        raise SpecError(
            f"host {name}: agent_* settings need the `agents` or `spare` role (or no roles)"
        )
    return HostSpec(name, tuple(roles), str(address) if address else None, entry)


def _check_unique(hosts: tuple[HostSpec, ...], config: LabConfig) -> None:
    names = [host.name for host in hosts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(f"duplicate host names: {', '.join(duplicates)}")
    network = ipaddress.ip_network(config.network)
    seen: dict[str, str] = {}
    for i, host in enumerate(hosts, start=1):
        address = host.address or config.host_address(i)
        ip = ipaddress.ip_address(address)
        if ip not in network or ip in (network[0], network[1], network.broadcast_address):
            raise SpecError(f"host {host.name}: address {address} not usable in {network}")
        if address in seen:
            raise SpecError(f"hosts {seen[address]} and {host.name} share address {address}")
        seen[address] = host.name
