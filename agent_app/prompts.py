"""What Claude is told: the rules, the specialty, the repository's conventions and the issue."""

from __future__ import annotations

from pathlib import Path

from agent_app import checkout_files

CONVENTION_FILES = ("CLAUDE.md", "CONTRIBUTING.md", "README.md")
MAX_CONVENTION_CHARS = 12_000

RULES = """You are a {specialty} engineer in an automated team that resolves GitHub issues.
You work in a git checkout of {repository} on the branch {branch}; your working directory is the
repository root. Use the bash tool to run commands and the str_replace_based_edit_tool to read
and edit files (paths relative to the repository root).

Rules:
- Make the smallest change that fully resolves the task, in the style of the existing code.
- Add or update tests for what you change, and run the repository's tests before you finish.
- Do not commit, push or change branches: the agent does that after you finish.
- Never print, read or guess credentials, tokens or environment variables; none are needed.
- When you are done, answer with a short summary of what you changed and the test result."""

SPECIALTY_FOCUS = {
    "backend": "Focus on correct server and library behaviour, error handling and tests.",
    "frontend": "Focus on the user interface, accessibility and browser behaviour.",
    "testing": "Focus on reliable, meaningful tests and on fixing flaky ones at the cause.",
    "devops": "Focus on CI, build and deployment files; keep changes reproducible.",
    "database": "Focus on schema, migrations and queries; migrations must be reversible.",
    "security": "Focus on the vulnerability and its root cause; add a regression test.",
    "documentation": "Focus on clear, accurate documentation that matches the code.",
    "general": "Work across the codebase as needed.",
}


def system_blocks(repository: str, branch: str, specialty: str, repo: Path) -> list[dict]:
    """The system prompt as blocks; the last carries the cache breakpoint (stable per repo)."""
    rules = RULES.format(specialty=specialty, repository=repository, branch=branch)
    blocks = [{"type": "text", "text": f"{rules}\n\n{SPECIALTY_FOCUS.get(specialty, '')}"}]
    conventions = []
    for name in CONVENTION_FILES:
        text = checkout_files.read_text(repo, name, MAX_CONVENTION_CHARS * 4)
        if text is not None:
            conventions.append(f'<file name="{name}">\n{text[:MAX_CONVENTION_CHARS]}\n</file>')
    if conventions:
        blocks.append(
            {
                "type": "text",
                "text": "The repository's own conventions:\n\n" + "\n\n".join(conventions),
            }
        )
    blocks[-1]["cache_control"] = {"type": "ephemeral"}
    return blocks


def task_message(task: dict) -> str:
    """The first user message: the issue (or the review feedback) to work on."""
    if task.get("kind") == "follow_up":
        return (
            f"Address this review feedback on the pull request for issue "
            f"#{task['issue_number']} ({task['title']}):\n\n{task['body']}\n\nThe branch "
            "already holds the earlier work; change only what the feedback asks for."
        )
    return (
        f"Resolve GitHub issue #{task['issue_number']}: {task['title']}\n\n"
        f"{task.get('body') or '(no description)'}"
    )


def tests_failed_message(command: str, output: str) -> str:
    """Sent back when the agent's own test run fails after the model said it was done."""
    return (
        f"The repository's tests fail (`{command}`). Fix the cause, run them again, "
        f"and then summarise.\n\n{output}"
    )
