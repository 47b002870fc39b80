"""An offline GitHub (Enterprise Server flavour): REST API, git over HTTP and webhooks."""

from __future__ import annotations

from simulators.github.app import create_app
from simulators.github.config import SimulatorConfig
from simulators.github.simulator import GitHubSimulator, Identity

__all__ = ["GitHubSimulator", "Identity", "SimulatorConfig", "create_app"]
