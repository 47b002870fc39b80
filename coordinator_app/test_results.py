"""A task's test run as agents report it, put into words for comments, pages and tables."""

from __future__ import annotations


def status(tests: dict | None) -> str | None:
    """passed, failed, timed_out or not_run; None when no suite was found."""
    if not tests:
        return None
    if tests.get("environment_error"):
        return "not_run"
    if tests.get("status") in ("passed", "failed", "timed_out"):
        return tests["status"]
    return "passed" if tests.get("failed", 0) == 0 and tests.get("exit_code") == 0 else "failed"


def short(tests: dict | None) -> str:
    """A table cell: ``3 passed``, ``1 failed``, ``not run`` or ``-``."""
    verdict = status(tests)
    if verdict is None:
        return "-"
    if verdict == "not_run":
        return "not run"
    if verdict == "passed":
        return f"{tests.get('passed', 0)} passed"
    return f"{tests.get('failed', 0)} failed"


def describe(tests: dict | None) -> str:
    """A sentence: what ran and how it ended, with the reason when the suite could not run."""
    verdict = status(tests)
    if verdict is None:
        return "No test suite was found."
    command = tests.get("command") or "tests"
    if verdict == "not_run":
        return (
            f"Tests ({command}) could not run on the agent host: {tests['environment_error']}. "
            "The change is untested."
        )
    counts = f"{tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed"
    if verdict == "timed_out":
        return f"Tests ({command}): timed out, {counts}."
    return f"Tests ({command}): {'passed' if verdict == 'passed' else 'FAILED'}, {counts}."
