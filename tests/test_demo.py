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
    rows = re.findall(r"^#(\d+)\s+(\w+)\s+(agent-\w+)\s+(\w+)\s+(\d+) passed\s+(\S+/pull/\d+)"
                      r"\s+\d+\s+\S+\s+\S+\s+(.+)$", done.stdout, re.MULTILINE)  # fmt: skip
    assert len(rows) == 3, output
    # The maintainer merged the first pull request and closed the second without merging.
    assert [row[3] for row in rows] == ["completed", "failed", "review"], output
    assert re.fullmatch(r"merged by alice \d+\.\ds after it opened", rows[0][6].strip()), output
    assert rows[1][6].strip() == "pull request closed without merge"
    assert rows[2][6].strip() == "pull request open, awaiting review"
    assert "merge rate: 50% (1 merged, 1 closed without merge, 1 in review)" in done.stdout
    # Routed by analysis: each issue to a different specialty, each specialty to its agent.
    specialties = {row[1]: row[2] for row in rows}
    assert specialties == {"backend": "agent-backend", "documentation": "agent-docs",
                           "testing": "agent-docs"}  # fmt: skip
    assert len({row[5] for row in rows}) == 3  # three distinct pull requests
    assert "admin pages: http://127.0.0.1:" in done.stdout
