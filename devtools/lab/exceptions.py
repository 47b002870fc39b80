"""Errors raised by the lab; the CLI turns each into one clear message naming the fix."""

from __future__ import annotations


class LabError(RuntimeError):
    """Something in the lab could not be done."""


class PrerequisiteError(LabError):
    """The control machine lacks something the lab needs (root, a binary, a kernel feature)."""


class UnknownHostError(LabError):
    """A host name that is not part of the lab."""

    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(known) if known else "none (run `ccc-lab up` first)"
        super().__init__(f"unknown lab host {name!r}; lab hosts: {listed}")
        self.name = name


class SpecError(LabError):
    """A lab spec file that does not describe a valid lab."""


class LabBusyError(LabError):
    """A lab already runs in the state directory a new one would use."""
