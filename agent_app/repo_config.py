"""A repository's own settings for the cluster: ``.claude-cluster.toml`` at its root.

    test_command = "make check"          # how its tests run (else detected: agent_app.repo_tests)
    setup = ["npm ci", "npm run build"]  # run before the model starts (else detected:
                                         # agent_app.repo_setup)
    allow_workflow_changes = true        # read from the default branch only (agent_app.publisher)

The file is the repository's, so it is untrusted like the rest of the checkout: it is read as a
regular file without following links, and what it sets runs inside the sandbox.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from agent_app import checkout_files
from agent_app.exceptions import AgentError

REPO_CONFIG = ".claude-cluster.toml"


class RepoConfigError(AgentError):
    """The repository's configuration cannot be used; the message says what to fix."""


def load(repo: Path) -> dict[str, Any]:
    """The settings in the checkout's ``.claude-cluster.toml`` (``{}`` without one)."""
    text = checkout_files.read_text(repo, REPO_CONFIG)
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RepoConfigError(f"{REPO_CONFIG} is not valid TOML: {exc}") from exc


def commands(settings: dict[str, Any], key: str) -> list[str] | None:
    """``settings[key]`` as a list of commands (a string is one), or None when unset."""
    value = settings.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        raise RepoConfigError(f"{key} in {REPO_CONFIG} must be a command or a list of commands")
    return value
