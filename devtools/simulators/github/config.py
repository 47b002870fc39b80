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
    # The App's private key (PEM), in place of the seed's: read when the file exists, else
    # generated and written there (0600), so a cluster can be configured before the simulator
    # starts.
    app_key_file: Path | None = None
    # Lifetime of App installation access tokens (an hour on GitHub; tests make them expire).
    installation_token_seconds: int = 3600
    # Seconds a webhook receiver gets to answer before the delivery counts as failed.
    webhook_timeout: float = 10.0
    # PEM file of extra CAs webhook deliveries to https:// URLs trust (e.g. a cluster's own CA),
    # besides the system's; None: the system's only, as on GitHub.
    webhook_ca_file: Path | None = None
    # Primary limit: requests per window per user token or per App installation (all of its
    # tokens together), as GitHub's 5,000 an hour.
    rate_limit: int = 5000
    # Primary limit for unauthenticated requests, per client address.
    anonymous_rate_limit: int = 60
    # Length of the primary window, which starts at a caller's first request (tests use seconds).
    rate_limit_window_seconds: int = 3600
    # Secondary limits per caller (0 disables one): content-creating requests (POST, PATCH, PUT,
    # DELETE) per rolling minute and per rolling hour, and requests in flight at once.
    secondary_writes_per_minute: int = 80
    secondary_writes_per_hour: int = 500
    secondary_concurrent_requests: int = 100

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
    if name in ("data_dir", "seed", "webhook_ca_file", "app_key_file") and isinstance(
        value, str | Path
    ):
        return Path(str(value))
    if name == "webhook_timeout":
        return float(str(value))
    if name in _INT_FIELDS:
        return int(str(value))
    return value


_INT_FIELDS = {field.name for field in fields(SimulatorConfig) if field.type == "int"}
