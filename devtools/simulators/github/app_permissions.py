"""What a GitHub App installation may do: permission levels, defaults and endpoint requirements."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

# Granted when a seed or an install call names no permissions: enough to work on issues and pull
# requests and to push branches, not to change CI (`workflows`) or settings (`administration`).
DEFAULT_PERMISSIONS = {
    "contents": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
}
# GitHub gives every installation and every token read access to repository metadata.
MANDATORY = {"metadata": "read"}
INTEGRATION_DENIED = "Resource not accessible by integration"
ACCEPTED_HEADER = "X-Accepted-GitHub-Permissions"


class Access(str, enum.Enum):
    """A permission level; write includes read."""

    READ = "read"
    WRITE = "write"

    def allows(self, needed: Access) -> bool:
        """Whether this level includes ``needed``."""
        return self is Access.WRITE or needed is Access.READ


def is_level(value: object) -> bool:
    """Whether ``value`` names a permission level."""
    return value in {access.value for access in Access}


def grants(permissions: Mapping[str, str], name: str, level: str) -> bool:
    """Whether ``permissions`` hold ``name`` at ``level`` or above."""
    held = permissions.get(name)
    return is_level(held) and is_level(level) and Access(held).allows(Access(level))


def permissions_with(changes: Mapping[str, str | None] | None) -> dict[str, str]:
    """The default permissions with ``changes`` applied (None or "none" removes one)."""
    merged: dict[str, str] = dict(DEFAULT_PERMISSIONS)
    for name, level in (changes or {}).items():
        if level in (None, "none"):
            merged.pop(name, None)
        elif is_level(level):
            merged[name] = str(level)
        else:
            raise ValueError(f"permission {name}: {level!r} is not read or write")
    return {**merged, **MANDATORY}


@dataclass(frozen=True)
class Requirement:
    """Permission sets, any one of which admits an installation token to an endpoint.

    Written like GitHub's X-Accepted-GitHub-Permissions header: sets separated by ";", the
    permissions one set needs joined by ",", e.g. "contents=write,pull_requests=write".
    """

    sets: tuple[tuple[tuple[str, str], ...], ...]

    @classmethod
    def parse(cls, text: str) -> Requirement:
        """The requirement ``text`` spells."""
        sets = []
        for alternative in text.split(";"):
            pairs = (item.strip().partition("=") for item in alternative.split(","))
            sets.append(tuple((name, level) for name, _, level in pairs))
        return cls(tuple(sets))

    @property
    def header(self) -> str:
        """The X-Accepted-GitHub-Permissions value."""
        return "; ".join(",".join(f"{n}={level}" for n, level in s) for s in self.sets)

    def met_by(self, permissions: Mapping[str, str]) -> bool:
        """Whether ``permissions`` satisfy one of the sets."""
        return any(all(grants(permissions, n, level) for n, level in s) for s in self.sets)

    def or_pull_requests(self) -> Requirement:
        """Also accept `pull_requests` where `issues` is asked: GitHub's rule for issue
        endpoints called on a pull request's number."""
        extra = tuple(
            tuple(("pull_requests" if n == "issues" else n, level) for n, level in s)
            for s in self.sets
            if any(n == "issues" for n, _ in s)
        )
        return Requirement(self.sets + tuple(s for s in extra if s not in self.sets))
