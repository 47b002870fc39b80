"""Routing decisions: specialty, complexity, security level and dependencies, with reasons."""

from __future__ import annotations

import pytest

from coordinator_app.analysis import analyze


@pytest.mark.parametrize(
    ("title", "body", "labels", "specialty"),
    [
        (
            "Add /health endpoint",
            "The API server should answer GET /health with JSON.",
            [],
            "backend",
        ),
        (
            "Fix button alignment",
            "The submit button on the login page overlaps; see src/components/Login.tsx",
            [],
            "frontend",
        ),
        ("Flaky test", "tests/test_api.py::test_timeout fails one run in ten", [], "testing"),
        ("CI is slow", "Cache pip in .github/workflows/ci.yml", [], "devops"),
        (
            "Add index",
            "Queries on orders.created_at are slow; add a migration with an index",
            [],
            "database",
        ),
        ("Escape user names", "Possible XSS injection in the profile page", [], "security"),
        ("Typo in README", "README.md says 'teh'", [], "documentation"),
        ("Whatever", "Please look into it", [], "general"),
        # A label outweighs the words.
        ("Add /health endpoint", "server api json", ["docs"], "documentation"),
    ],
)
def test_specialty(title, body, labels, specialty):
    result = analyze(title, body, labels)
    assert result.specialty == specialty, result.reasons


def test_reasons_explain_the_choice():
    result = analyze("Add /health endpoint", "See app/server.py", ["backend"])
    assert "label 'backend' → backend (+10)" in result.reasons
    assert "mentions app/server.py → backend (+3)" in result.reasons
    assert any(r.startswith("chose backend with score") for r in result.reasons)
    assert result.scores["backend"] >= 13


@pytest.mark.parametrize(
    ("text", "labels", "complexity"),
    [
        ("Fix a typo in the docs", [], "low"),
        ("Refactor the storage layer across modules", [], "high"),
        ("Add a field to the response", [], "medium"),
        ("Anything", ["complexity:high"], "high"),
        ("Anything big and long " * 300, [], "high"),
    ],
)
def test_complexity(text, labels, complexity):
    assert analyze("t", text, labels).complexity == complexity


def test_security_level_from_configured_labels():
    result = analyze("Rotate keys", "", ["Security"], {"security": "restricted"})
    assert result.security_level == "restricted"
    assert analyze("Rotate keys", "", []).security_level == "standard"


def test_dependencies_are_parsed():
    result = analyze("Part 2", "Depends on #12 and blocked by #7. Related to #3.", [])
    assert result.depends_on == [7, 12]
    assert "waits for #7, #12" in result.reasons


def test_a_number_no_issue_can_have_is_no_dependency():
    # Found by fuzzing: these made the task's depends_on overflow its integer column (or
    # int() refuse the 5000 digits), and the delivery carrying them fail in the processor.
    text = "Depends on #2147483648, depends on #0, blocked by #" + "9" * 5000
    text += " and depends on #2147483647."
    assert analyze("t", text, []).depends_on == [2147483647]
