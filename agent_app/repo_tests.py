"""Finding and running a repository's own tests, and reading their outcome."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from agent_app import checkout_files, repo_config
from agent_app.sandbox import CommandRunner, truncate

# The whole output is read for the counts (the model and the events get its head and tail).
COUNTED_OUTPUT_CHARS = 4_000_000
PYTEST_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped)")
CARGO_RESULT = re.compile(r"^test result: \w+\. (\d+) passed; (\d+) failed;", re.M)
MAVEN_RESULT = re.compile(
    r"Tests run: (\d+), Failures: (\d+), Errors: (\d+), Skipped: (\d+)(?!,? Time elapsed)"
)
GO_TEST = re.compile(r"^\s*--- (PASS|FAIL): ", re.M)
NODE_TAP = re.compile(r"^(?:#|\u2139) (pass|fail) (\d+)\s*$", re.M)  # node --test (tap, spec)
JEST = re.compile(
    r"^Tests:\s+(?:(\d+) failed, )?(?:\d+ skipped, )?(?:(\d+) passed, )?\d+ total", re.M
)
MOCHA = re.compile(r"^\s*(\d+) (passing|failing)\b", re.M)
# Exit codes with which a shell says the command itself could not start (not found, not
# executable); make and npm pass them on inside their own messages.
NOT_STARTED_CODES = (126, 127)
# Lines that say the test runner, not a test, is missing. The interpreter's own message for
# `python3 -m <missing>` ("python3: No module named pytest") has no quotes, unlike the
# ModuleNotFoundError a failing test raises, which is the repository's problem to fix.
NOT_STARTED_LINES = re.compile(
    r"^(?:"
    r"\S*python[\d.]*: No module named \S+"  # python3 -m pytest, no pytest
    r"|.*: command not found"  # bash
    r"|(?:\S+: )?\d+: \S+: not found"  # dash (sh -c, npm scripts)
    r"|/usr/bin/env: .*: No such file or directory"  # a shebang's interpreter is missing
    r"|make(?:\[\d+\])?: \*\*\* .*Error 12[67]"  # a recipe's command is missing
    r"|make: \S+: (?:No such file or directory|Permission denied)"
    r"|npm (?:ERR!|error) code 12[67]"
    r")\s*$",
    re.M,
)


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
    # Why the suite could not start (a missing runner or toolchain), or None when it ran.
    environment_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failed == 0 and not self.environment_error

    @property
    def status(self) -> str:
        """passed, failed, timed_out or not_run (the environment lacks what the suite needs)."""
        if self.environment_error:
            return "not_run"
        if self.timed_out:
            return "timed_out"
        return "passed" if self.ok else "failed"

    def as_dict(self) -> dict:
        data = asdict(self)
        data["output"] = data["output"][-4000:]
        data["status"] = self.status
        return data

    def summary(self) -> str:
        """One line for people: what ran and how it ended."""
        if self.environment_error:
            return f"`{self.command}` could not run: {self.environment_error}"
        if self.timed_out:
            return f"`{self.command}` timed out ({self.passed} passed before it was stopped)"
        if self.ok:
            return f"`{self.command}`: {self.passed} passed"
        return f"`{self.command}`: {self.failed} failed, {self.passed} passed"


def detect(repo: Path) -> str | None:
    """The command that runs this repository's tests, or None when it has none we know."""
    try:  # the repository may name it: test_command = "make check"
        command = repo_config.load(repo).get("test_command")
    except repo_config.RepoConfigError:
        command = None  # setup has already said what is wrong with the file
    if isinstance(command, str) and command.strip():
        return command
    package = checkout_files.read_text(repo, "package.json")
    if package is not None:
        try:
            scripts = json.loads(package).get("scripts", {})
        except (ValueError, AttributeError):
            scripts = {}
        if isinstance(scripts, dict) and "test" in scripts:
            return "npm test"
    if (repo / "pom.xml").is_file():
        return "mvn -B test"
    if any((repo / n).is_file() for n in ("build.gradle", "build.gradle.kts")):
        return ("./gradlew" if (repo / "gradlew").is_file() else "gradle") + " test --console=plain"
    makefile = checkout_files.read_text(repo, "Makefile")
    if makefile is not None and re.search(r"^test:", makefile, re.M):
        return "make test"
    if (repo / "go.mod").is_file():
        return "go test -v ./..."  # -v: a line per test, to count them
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
    result = runner.reading_more(COUNTED_OUTPUT_CHARS).run(command, repo, timeout, cancel)
    reported = count(result.output)
    # A suite that reported results ran, whatever else its output says.
    not_started = None if reported else environment_error(result.exit_code, result.output)
    output = truncate(result.output, runner.output_chars)
    if not_started:
        return TestRun(command, result.exit_code, 0, 0, output, environment_error=not_started)
    passed, failed = reported or (0, 0)
    if result.exit_code not in (0, None) and failed == 0:
        failed = 1  # it failed, whatever it printed
    return TestRun(command, result.exit_code, passed, failed, output, result.timed_out)


def count(output: str) -> tuple[int, int] | None:
    """(passed, failed) as the test runner's own summary says, for pytest, cargo test, Maven
    (surefire), go test -v, node --test, jest and mocha (and make or npm running any of them);
    None when the output holds no summary we know."""
    if found := CARGO_RESULT.findall(output):  # one line per test binary: add them up
        return sum(int(p) for p, _ in found), sum(int(f) for _, f in found)
    if found := MAVEN_RESULT.findall(output):  # the last one is the build's total
        run_, failures, errors, skipped = map(int, found[-1])
        return run_ - failures - errors - skipped, failures + errors
    if found := GO_TEST.findall(output):
        return found.count("PASS"), found.count("FAIL")
    if found := NODE_TAP.findall(output):
        last = dict(found)  # the summary's own lines come last
        return int(last.get("pass", 0)), int(last.get("fail", 0))
    if found := JEST.findall(output):
        failed, passed = found[-1]
        return int(passed or 0), int(failed or 0)
    if found := MOCHA.findall(output):
        last = {word: int(number) for number, word in found}
        return last.get("passing", 0), last.get("failing", 0)
    # pytest: the counts of the last line that has any (its summary).
    for line in reversed(output.splitlines()):
        if found := PYTEST_COUNTS.findall(line):
            passed = sum(int(n) for n, word in found if word == "passed")
            failed = sum(int(n) for n, word in found if word in ("failed", "error", "errors"))
            return passed, failed
    return None


def environment_error(exit_code: int | None, output: str) -> str | None:
    """Why the test command could not start, from its exit code and output; None if it ran.

    A runner that is missing makes every task look like failing tests, and a model sent off to
    fix them changes code that never ran: this keeps the two apart.
    """
    if exit_code in (0, None):
        return None
    found = NOT_STARTED_LINES.search(output)
    if found:
        return found.group(0).strip()[:300]
    if exit_code in NOT_STARTED_CODES:
        last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
        return f"exit code {exit_code} (the command could not start): {last.strip()[:240]}"
    return None
