"""The code stays lint-clean and formatted: CI runs what `make lint` runs."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command):
    ruff = shutil.which("ruff")
    assert ruff, "ruff is not installed (it is a dev dependency: make test installs it)"
    done = subprocess.run(
        [ruff, *command, "."], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
