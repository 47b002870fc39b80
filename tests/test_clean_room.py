"""`make control`, then `make setup`, on a host that has only what a fresh Debian 12 has, then
the tests that need the Debian packages the agents and the demo use: a package installed by
hand on the development machine cannot hide a missing line in the Makefile any more.

The host is a lab host (the lab's debootstrap minbase image plus Python), reached over SSH
like any machine; it gets the project's files (tracked and new, as `git ls-files` lists them)
and nothing else.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lab.testing import isolated_config, leftovers, running_lab, skip_reason
from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.lab]

# What runs the repositories' tests on the local agents and the demo: the agents' end-to-end
# tests, the runner classification with real commands, and `ccc-demo --local`.
TESTS = ("tests/agent/test_agent_tasks.py", "tests/agent/test_repo_tests.py", "tests/test_demo.py")


def copy_project(root: Path) -> Path:
    """The project's files as a clone has them, into the host's /root/ccc."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    target = root / "root" / "ccc"
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def logged(command: str) -> str:
    """``command`` in the project on the host; its status, and the tail of what it printed."""
    return f"cd /root/ccc && ({command}) > out.log 2>&1; s=$?; tail -n 60 out.log; exit $s"


def test_make_setup_on_a_fresh_host_installs_what_the_agent_tests_and_the_demo_need():
    reason = skip_reason()
    if reason:
        pytest.skip(f"lab hosts unavailable: {reason}")
    config = isolated_config()
    with running_lab(1, config) as session:
        host = session.lab.host("t1")
        copy_project(host.record.root)
        before = session.run("t1", "python3 -c 'import pytest'", 30)
        assert not before.ok, "the fresh host must not have pytest already"
        # What README.md asks of the machine before its commands: Python (there) and make.
        make = session.run("t1", "apt-get install -y -qq --no-install-recommends make", 300)
        assert make.ok, make.stdout + make.stderr
        # A control node first: Ansible, and nothing of the tests (no pytest, no PostgreSQL).
        control = session.run("t1", logged("make control && .venv/bin/ansible-playbook --version"))
        assert control.ok and "ansible-playbook [core" in control.stdout, control.stdout
        for absent in ("test -e .venv/bin/pytest", "test -e .venv/bin/molecule", "which psql"):
            assert not session.run("t1", f"cd /root/ccc && {absent}").ok, absent
        started = time.monotonic()
        setup = session.run("t1", logged("make setup"), timeout=1200)
        assert setup.ok, setup.stdout
        print(f"\nmake setup on a fresh host: {time.monotonic() - started:.0f}s")
        listed = " ".join(shlex.quote(t) for t in TESTS)
        tests = session.run(
            "t1",
            logged(f"PATH=$PWD/.venv/bin:$PATH .venv/bin/pytest -q -p no:cacheprovider {listed}"),
            timeout=1200,
        )
        assert tests.ok, tests.stdout
        assert " passed" in tests.stdout and "skipped" not in tests.stdout, tests.stdout
    assert leftovers(config) == []
