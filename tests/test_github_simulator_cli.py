"""`ccc-sim github` end to end: the demo seed served by the CLI, its repository's tests pass."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner

from simulators.github.cli import DEMO_SEED, github

BOB = "ghp_demo_bob_write_token_00000000000000"  # from seeds/demo.yml


def free_port() -> int:
    """A free loopback port (bound, then released for the child to take)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo_server(tmp_path):
    """`ccc-sim github` with the demo seed, in a child process; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-c", "from simulators.cli import main; main()", "github"]
    command += ["--port", str(port), "--seed", str(DEMO_SEED), "--data-dir", str(tmp_path / "d")]
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(f"{url}/api/v3/rate_limit", timeout=1).raise_for_status()
                    break
                except requests.ConnectionError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(process.stderr.read()) from None
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(10)


def test_help_names_the_options():
    result = CliRunner().invoke(github, ["--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--seed", "--data-dir", "--public-url"):
        assert option in result.output


def test_demo_repository_clones_and_its_tests_pass(demo_server, tmp_path):
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "HOME": str(tmp_path)}
    clone_url = demo_server.replace("http://", f"http://bob:{BOB}@") + "/octo-org/textstats.git"
    work = tmp_path / "textstats"
    subprocess.run(["git", "clone", "-q", clone_url, str(work)], env=env, check=True)
    assert {"README.md", "CONTRIBUTING.md", "textstats", "tests"} <= {
        p.name for p in work.iterdir()
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=work,
        env={**env, "PYTHONPATH": str(work)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout

    labels = requests.get(
        f"{demo_server}/api/v3/repos/octo-org/textstats/labels",
        headers={"Authorization": f"token {BOB}"},
        timeout=10,
    ).json()
    assert {"claude", "backend", "frontend", "docs"} <= {label["name"] for label in labels}


def test_gzip_request_bodies_are_inflated(demo_server):
    """git gzips large upload-pack requests; http-backend must see the inflated body."""
    auth = ("x-access-token", BOB)
    refs = requests.get(
        f"{demo_server}/octo-org/textstats.git/info/refs?service=git-upload-pack",
        auth=auth,
        timeout=10,
    )
    assert refs.status_code == 200
    assert refs.headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
    head = next(line for line in refs.content.split(b"\n") if b"refs/heads/main" in line)
    sha = head.split(b" ")[0][-40:].decode()
    want = f"want {sha}\n".encode()
    body = b"%04x" % (len(want) + 4) + want + b"0000" + b"0009done\n"
    response = requests.post(
        f"{demo_server}/octo-org/textstats.git/git-upload-pack",
        data=gzip.compress(body),
        headers={
            "Content-Type": "application/x-git-upload-pack-request",
            "Content-Encoding": "gzip",
        },
        auth=auth,
        timeout=10,
    )
    assert response.status_code == 200
    assert response.content.startswith(b"0008NAK\n")
    assert b"PACK" in response.content
