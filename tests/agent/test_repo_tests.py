"""A test suite that could not start is told apart from one that failed, with real commands."""

from __future__ import annotations

import threading

import pytest

from agent_app import repo_tests
from agent_app.sandbox import CommandRunner, Policy

MAKEFILE_MISSING_TOOL = "test:\n\tno-such-tool --check\n"
FAILING_IMPORT = "from no_such_dependency import thing\n\n\ndef test_thing():\n    assert thing\n"
FAILING_ASSERT = "def test_sum():\n    assert 1 + 1 == 3\n"


def run(tmp_path, command: str, files: dict[str, str] | None = None) -> repo_tests.TestRun:
    for name, text in (files or {}).items():
        path = tmp_path / name
        path.write_text(text)
        if text.startswith("#!"):
            path.chmod(0o755)
    runner = CommandRunner(Policy(mode="none"), secrets=[])
    return repo_tests.run(runner, tmp_path, command, timeout=60, cancel=threading.Event())


@pytest.mark.parametrize(
    ("command", "files", "reason"),
    [
        ("python3 -m no_such_runner -q", {}, "python3: No module named no_such_runner"),
        ("no-such-runner", {}, "no-such-runner: command not found"),
        ("sh -c no-such-runner", {}, "sh: 1: no-such-runner: not found"),
        (
            "make test",
            {"Makefile": MAKEFILE_MISSING_TOOL},
            "make: no-such-tool: No such file or directory",
        ),
        ("./run-tests", {"run-tests": "#!/usr/bin/env no-such-interpreter\n"}, "no-such-interp"),
        ("./run-tests", {"run-tests": "plain text, not executable\n"}, "Permission denied"),
    ],
)
def test_a_runner_that_cannot_start_is_an_environment_error(tmp_path, command, files, reason):
    result = run(tmp_path, command, files)
    assert result.status == "not_run", result
    assert reason in result.environment_error
    assert not result.ok and result.failed == 0
    assert "could not run" in result.summary()
    assert result.as_dict()["environment_error"] == result.environment_error


@pytest.mark.parametrize(
    ("files", "failed"),
    [
        # A test that imports something missing is the repository's failure, not the host's:
        # "ModuleNotFoundError: No module named 'no_such_dependency'" (quoted, from the test).
        ({"test_import.py": FAILING_IMPORT}, 1),
        ({"test_sum.py": FAILING_ASSERT}, 1),
    ],
)
def test_a_suite_that_ran_and_failed_is_a_failure(tmp_path, files, failed):
    result = run(tmp_path, "python3 -m pytest -q", files)
    assert result.status == "failed" and result.environment_error is None, result.output
    assert result.failed == failed


def test_a_suite_that_reported_results_ran_whatever_else_it_printed(tmp_path):
    # A test's own subprocess may say "command not found"; the runner did start.
    noisy = "import subprocess\n\n\ndef test_tool():\n" + (
        "    subprocess.run('no-such-tool', shell=True)\n    assert False\n"
    )
    result = run(tmp_path, "python3 -m pytest -q -s", {"test_noisy.py": noisy})
    assert "command not found" in result.output or "not found" in result.output
    assert result.status == "failed" and result.environment_error is None


def test_a_passing_suite(tmp_path):
    result = run(tmp_path, "python3 -m pytest -q", {"test_ok.py": "def test_ok():\n    pass\n"})
    assert result.status == "passed" and result.ok and result.passed == 1
