"""Settings of the GitHub simulator: defaults here, then the environment, then explicit values."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

ENV_PREFIX = "GHSIM_"


@dataclass
class SimulatorConfig:
    """How one simulated GitHub runs."""

    # Where the bare git repositories live; a private temporary directory when None.
    data_dir: Path | None = None
    # YAML seed file (users, App, repos, hooks), or the same as a dict, loaded at start and on
    # reset; None starts empty.
    seed: Path | dict | None = None
    # Base URL clients use (e.g. behind a proxy); None derives it from each request's Host.
    public_url: str | None = None
    # When set, /_sim/ needs `Authorization: token <admin_token>`; otherwise loopback only.
    admin_token: str | None = None
    # Seconds a webhook receiver gets to answer before the delivery counts as failed.
    webhook_timeout: float = 10.0
    # PEM file of extra CAs webhook deliveries to https:// URLs trust (e.g. a cluster's own CA),
    # besides the system's; None: the system's only, as on GitHub.
    webhook_ca_file: Path | None = None
    # Requests per hour per token reported in X-RateLimit-* (never enforced).
    rate_limit: int = 5000

    @classmethod
    def load(cls, **overrides: object) -> SimulatorConfig:
        """Defaults, then GHSIM_* environment variables, then ``overrides`` that are not None."""
        config = cls()
        for field in fields(cls):
            raw = os.environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None:
                setattr(config, field.name, _convert(field.name, raw))
        for name, value in overrides.items():
            if value is not None:
                setattr(config, name, _convert(name, value))
        return config


def _convert(name: str, value: object) -> object:
    """Coerce a setting from text (environment, CLI) to its field's type."""
    if name in ("data_dir", "seed", "webhook_ca_file") and isinstance(value, str | Path):
        return Path(str(value))
    if name == "webhook_timeout":
        return float(str(value))
    if name == "rate_limit":
        return int(str(value))
    return value
