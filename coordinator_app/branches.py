"""Task branches: the coordinator names each task's branch, and agents push nowhere else."""

from __future__ import annotations

import re

PREFIX = "claude/"


def branch_name(issue_number: int, title: str, avoid: frozenset[str] = frozenset()) -> str:
    """``claude/issue-<n>-<slug>``, numbered ``-2``, ``-3``... past the names in ``avoid``
    (the branches of the issue's rejected pull requests: new work starts afresh)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-") or "task"
    name = base = f"{PREFIX}issue-{issue_number}-{slug}"
    n = 2
    while name in avoid:
        name, n = f"{base}-{n}", n + 1
    return name


def is_task_branch(branch: str, issue_number: int) -> bool:
    """Whether ``branch`` is a branch of the cluster's for this issue."""
    return re.fullmatch(rf"{re.escape(PREFIX)}issue-{issue_number}-[a-z0-9-]+", branch) is not None
