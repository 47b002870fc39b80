"""The main job, end to end on this machine: `ccc-demo --local --exit`."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest


@pytest.mark.slow
def test_demo_turns_every_issue_into_a_pull_request():
    demo = shutil.which("ccc-demo")
    assert demo, "ccc-demo is a console script of the project (make test installs it)"
    done = subprocess.run([demo, "--local", "--exit", "--timeout", "240"], capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    rows = re.findall(r"^(\w+)#(\d+)\s+(\w+)\s+(agent-\w+)\s+(\w+)\s+(\d+) passed\s+"
                      r"(\S+/pull/\d+)\s+\d+\s+\S+\s+\S+\s+(.+)$", done.stdout,
                      re.MULTILINE)  # fmt: skip
    assert len(rows) == 4, output
    # The maintainer merged the first pull request and closed the second without merging.
    assert [row[4] for row in rows] == ["completed", "failed", "review", "review"], output
    assert re.fullmatch(r"merged by alice \d+\.\ds after it opened", rows[0][7].strip()), output
    assert rows[1][7].strip() == "pull request closed without merge"
    assert rows[2][7].strip() == rows[3][7].strip() == "pull request open, awaiting review"
    assert "merge rate: 50% (1 merged, 1 closed without merge, 2 in review)" in done.stdout
    # Routed by analysis: each issue to a different specialty, each specialty to its agent;
    # the frontend issue is the Node.js repository's, and its tests (node --test) passed.
    specialties = {row[2]: (row[0], row[3]) for row in rows}
    assert specialties == {"backend": ("textstats", "agent-backend"),
                           "documentation": ("textstats", "agent-docs"),
                           "testing": ("textstats", "agent-docs"),
                           "frontend": ("pricetag", "agent-docs")}  # fmt: skip
    assert int(rows[3][5]) >= 3  # the repository's two tests and the new ones
    assert len({row[6] for row in rows}) == 4  # four distinct pull requests
    assert "admin pages: http://127.0.0.1:" in done.stdout
