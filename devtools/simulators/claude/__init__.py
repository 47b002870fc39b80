"""Offline stand-in for the Anthropic Messages API, replaying scripted tool-use conversations."""

from __future__ import annotations

from simulators.claude.app import create_app, get_simulator
from simulators.claude.faults import Fault, FaultKind
from simulators.claude.scenarios import Scenario, load_scenarios
from simulators.claude.state import ClaudeSimulator, SimulatorConfig

__all__ = [
    "ClaudeSimulator",
    "Fault",
    "FaultKind",
    "Scenario",
    "SimulatorConfig",
    "create_app",
    "get_simulator",
    "load_scenarios",
]
