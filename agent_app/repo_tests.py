"""Finding and running a repository's own tests, and reading their outcome."""

from __future__ import annotations

import json
import re
import threading
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from agent_app.sandbox import CommandRunner

# A repository may name its command in .claude-cluster.toml: test_command = "make check".
REPO_CONFIG = ".claude-cluster.toml"
PYTEST_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


@dataclass
class TestRun:
    """The outcome of one run of the test suite."""

    __test__ = False  # not a pytest class, despite the name

    command: str
    exit_code: int | None
    passed: int
    failed: int
    output: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failed == 0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["output"] = data["output"][-4000:]
        return data


def detect(repo: Path) -> str | None:
    """The command that runs this repository's tests, or None when it has none we know."""
    config = repo / REPO_CONFIG
    if config.is_file():
        try:
            command = tomllib.loads(config.read_text()).get("test_command")
        except tomllib.TOMLDecodeError:
            command = None
        if isinstance(command, str) and command.strip():
            return command
    if (repo / "package.json").is_file():
        try:
            scripts = json.loads((repo / "package.json").read_text()).get("scripts", {})
        except ValueError:
            scripts = {}
        if "test" in scripts:
            return "npm test"
    makefile = repo / "Makefile"
    if makefile.is_file() and re.search(r"^test:", makefile.read_text(errors="replace"), re.M):
        return "make test"
    if (repo / "go.mod").is_file():
        return "go test ./..."
    if (repo / "Cargo.toml").is_file():
        return "cargo test"
    python_markers = ("pytest.ini", "conftest.py", "setup.cfg", "tox.ini", "pyproject.toml")
    has_tests = any(repo.glob("test*/**/test_*.py")) or any(repo.glob("test_*.py"))
    if has_tests or any((repo / m).is_file() for m in python_markers[:2]):
        return "python3 -m pytest -q"
    return None


def run(
    runner: CommandRunner, repo: Path, command: str, timeout: float, cancel: threading.Event
) -> TestRun:
    """Run ``command`` in the checkout and count passes and failures where the output says."""
    result = runner.run(command, repo, timeout, cancel)
    counts = {"passed": 0, "failed": 0}
    for number, word in PYTEST_COUNTS.findall(result.output):
        if word == "passed":
            counts["passed"] = int(number)
        elif word in ("failed", "error", "errors"):
            counts["failed"] += int(number)
    if result.exit_code not in (0, None) and counts["failed"] == 0:
        counts["failed"] = 1  # it failed, whatever it printed
    return TestRun(
        command,
        result.exit_code,
        counts["passed"],
        counts["failed"],
        result.output,
        result.timed_out,
    )
