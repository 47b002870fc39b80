"""Getting a checkout ready before the model starts: the repository's dependencies installed.

The steps are the repository's ``setup`` in ``.claude-cluster.toml`` or, without one, what its
files show (``detect``): a virtualenv with the project and its test extra or requirements for
Python projects that declare dependencies (``uv sync --frozen`` where there is a uv.lock and
uv), ``npm ci`` (``npm install`` without a lockfile), ``go mod download``, ``cargo fetch``,
``mvn dependency:go-offline``, gradle's dependencies. They run in the task's sandbox, whose
only network is the egress proxy (package registries), one after another within
``setup_timeout`` seconds in all and under the task's disk guard. Their output goes to the
task's events; a step that fails ends the task with a clear outcome before any model turn.

What the steps leave in the checkout (``.venv``, ``node_modules``...) is never committed, and
a step's change to a tracked file (a lockfile rewritten) is undone. It is also kept per
repository, keyed by the hash of the files the steps read (agent_app.dependency_cache): the
next task whose files hash the same gets it back and runs no step at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from agent_app import checkout_files, repo_config
from agent_app.exceptions import AgentError
from agent_app.sandbox import CommandRunner

logger = logging.getLogger(__name__)

# Files whose content decides what a detected or configured setup installs: the cache key.
KEY_FILES = (
    repo_config.REPO_CONFIG,
    "pyproject.toml", "setup.py", "setup.cfg", "uv.lock", "poetry.lock",
    "requirements.txt", "requirements-dev.txt", "requirements-test.txt",
    "package.json", "package-lock.json", "npm-shrinkwrap.json",
    "go.mod", "go.sum", "Cargo.toml", "Cargo.lock",
    "pom.xml", "build.gradle", "build.gradle.kts", "settings.gradle", "gradle.lockfile",
)  # fmt: skip
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt", "requirements-test.txt")
TEST_EXTRAS = ("test", "tests", "testing", "dev")
OUTPUT_KEPT = 4000  # characters of each step's output in the task's events


class SetupFailed(AgentError):
    """A setup step failed or timed out: the task ends before the model starts. ``steps``:
    those run so far; ``permanent``: it would fail the same way again (a malformed
    configuration), so the coordinator does not retry it."""

    def __init__(self, message: str, steps: list[StepResult] = (), permanent: bool = False):
        super().__init__(message)
        self.steps, self.permanent = list(steps), permanent


@dataclass
class SetupPlan:
    """What prepares a checkout, and where that came from."""

    commands: list[str]
    source: str  # the configuration file, or "detected"

    def key(self, repo: Path) -> str:
        """The cache key: the commands and the content of every file they may read."""
        digest = hashlib.sha256(json.dumps(self.commands).encode())
        for name in KEY_FILES:
            text = checkout_files.read_text(repo, name, 50_000_000)
            digest.update(f"\0{name}\0{text if text is not None else '-'}".encode())
        return digest.hexdigest()[:32]


@dataclass
class StepResult:
    command: str
    exit_code: int | None
    seconds: float
    output: str


@dataclass
class SetupResult:
    """How setup went: the steps run (none on a cache hit), and whether the cache served."""

    plan: SetupPlan
    cache: str  # "hit", "miss" or "off" (nothing to keep)
    seconds: float
    steps: list[StepResult] = field(default_factory=list)

    def event(self) -> dict:
        """The task event that reports it (each step's output cut to its end)."""
        return {
            "kind": "setup",
            "data": {
                "source": self.plan.source,
                "commands": self.plan.commands,
                "cache": self.cache,
                "seconds": round(self.seconds, 2),
                "steps": [
                    {
                        "command": s.command,
                        "exit_code": s.exit_code,
                        "seconds": round(s.seconds, 2),
                        "output": s.output[-OUTPUT_KEPT:],
                    }
                    for s in self.steps
                ],
            },
        }


def plan(repo: Path, has_tool=lambda name: True) -> SetupPlan | None:
    """The checkout's setup: its configured ``setup`` (an empty list: none), else detected;
    None when there is nothing to do. ``has_tool(name)``: whether commands can run ``name``.
    RepoConfigError when the configuration is malformed."""
    configured = repo_config.commands(repo_config.load(repo), "setup")
    if configured is not None:
        return SetupPlan(configured, repo_config.REPO_CONFIG) if configured else None
    found = detect(repo, has_tool)
    return SetupPlan(found, "detected") if found else None


def detect(repo: Path, has_tool=lambda name: True) -> list[str]:
    """Setup commands for the ecosystems the checkout's files show, in a fixed order."""
    commands = _python(repo, has_tool)
    package = _json(repo, "package.json")
    if package is not None and (package.get("dependencies") or package.get("devDependencies")):
        locked = any((repo / n).is_file() for n in ("package-lock.json", "npm-shrinkwrap.json"))
        commands.append(
            "npm ci --no-audit --no-fund" if locked else "npm install --no-audit --no-fund"
        )
    if (repo / "go.mod").is_file():
        commands.append("go mod download")
    if (repo / "Cargo.toml").is_file():
        commands.append("cargo fetch")
    if (repo / "pom.xml").is_file():
        commands.append("mvn -q -B dependency:go-offline")
    if any((repo / n).is_file() for n in ("build.gradle", "build.gradle.kts")):
        gradle = "./gradlew" if (repo / "gradlew").is_file() else "gradle"
        commands.append(f"{gradle} -q --console=plain dependencies")
    return commands


def _python(repo: Path, has_tool) -> list[str]:
    """A virtualenv (.venv, seeing the system's packages) with what the project declares; none
    for a project that declares no dependency (its tests run on the system's Python)."""
    if (repo / "uv.lock").is_file() and has_tool("uv"):
        return ["uv sync --frozen"]
    requirements = [n for n in REQUIREMENTS if (repo / n).is_file()]
    project = _toml(repo, "pyproject.toml").get("project", {})
    extras = project.get("optional-dependencies", {}) if isinstance(project, dict) else {}
    extra = next((e for e in TEST_EXTRAS if e in extras), None)
    declared = bool(project.get("dependencies") or extra) if isinstance(project, dict) else False
    if not (declared or requirements or (repo / "setup.py").is_file()):
        return []
    pip = ".venv/bin/python -m pip install -q"
    commands = ["python3 -m venv --system-site-packages .venv"]
    if declared or (repo / "setup.py").is_file():
        commands.append(f"{pip} -e '.[{extra}]'" if extra else f"{pip} -e .")
    commands += [f"{pip} -r {name}" for name in requirements]
    return commands


def _toml(repo: Path, name: str) -> dict:
    text = checkout_files.read_text(repo, name)
    try:
        return tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError:
        return {}  # the project's own tools will say what is wrong with it


def _json(repo: Path, name: str) -> dict | None:
    text = checkout_files.read_text(repo, name)
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def run_steps(
    runner: CommandRunner,
    repo: Path,
    commands: list[str],
    timeout: float,
    cancel: threading.Event,
) -> list[StepResult]:
    """Run ``commands`` in order within ``timeout`` seconds in all; SetupFailed (carrying the
    steps so far in ``steps``) at the first that fails, times out or fills the disk."""
    steps: list[StepResult] = []
    deadline = time.monotonic() + timeout
    for command in commands:
        started = time.monotonic()
        left = deadline - started
        result = runner.run(command, repo, max(left, 0.1), cancel)
        steps.append(
            StepResult(command, result.exit_code, time.monotonic() - started, result.output)
        )
        if result.cancelled:
            break
        if result.exit_code != 0:
            last = next((line for line in reversed(result.output.splitlines()) if line.strip()), "")
            why = (
                f"timed out (setup may take {timeout:.0f}s in all)"
                if result.timed_out
                else "filled the task's disk" if result.disk_full
                else f"exited with status {result.exit_code}"
            )  # fmt: skip
            raise SetupFailed(f"setup failed: `{command}` {why}: {last.strip()[:300]}", steps)
    return steps
