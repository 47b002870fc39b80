"""The sandbox fails closed: the start-up probe runs the command line tasks use and checks each
promise; an agent whose sandbox breaks one reports the error state and claims nothing."""

from __future__ import annotations

import time

import pytest

from agent_app import sandbox
from agent_app.sandbox import CommandRunner, DiskGuard, Policy, SandboxUnavailable
from lab.admin_api import ADMIN
from tests.agent.conftest import needs_bwrap
from tests.coordinator.test_admin_pages import admin_session


@pytest.fixture
def layout(tmp_path):
    """An agent's configuration folder (with a secret) and workspace root."""
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "agent.toml").write_text('anthropic_api_key = "sk-ant-secret"\n')
    root = tmp_path / "var"
    (root / "tasks" / "task-7").mkdir(parents=True)
    return config_dir, root


def policy(config_dir, root, **settings) -> Policy:
    """What an agent with this configuration folder and workspace root runs commands with."""
    return Policy(hidden=(config_dir, root), **settings)


@needs_bwrap
def test_the_probe_passes_when_the_sandbox_holds(layout):
    config_dir, root = layout
    sandbox.probe(policy(config_dir, root), root / "tasks" / "sandbox-probe")
    assert not (root / "tasks" / "sandbox-probe").exists()  # it cleans up


def drop_options(monkeypatch, *unwanted: str) -> None:
    """Make every command line lack ``unwanted`` options (and their argument)."""
    original = CommandRunner.argv

    def weakened(self, *args, **kwargs):
        argv, out, skip = original(self, *args, **kwargs), [], 0
        for index, part in enumerate(argv):
            if skip:
                skip -= 1
                continue
            if part in unwanted:
                # --tmpfs PATH / --ro-bind SRC DST / --unshare-pid: drop with their arguments.
                skip = {"--tmpfs": 1, "--ro-bind": 2, "--size": 1}.get(part, 0)
                if part == "--ro-bind" and argv[index + 1] == "/":
                    out.append(part)
                    skip = 0
                continue
            out.append(part)
        return out

    monkeypatch.setattr(CommandRunner, "argv", weakened)


@needs_bwrap
@pytest.mark.parametrize(
    ("weakness", "reason"),
    [
        (
            ("--tmpfs", "--size"),
            "is visible to commands",
        ),  # configuration and other tasks not hidden
        (("--unshare-pid",), "PID namespace of their own"),
        (("--unshare-net",), "network interfaces other than loopback"),
    ],
)
def test_the_probe_names_a_broken_promise(layout, monkeypatch, weakness, reason):
    config_dir, root = layout
    drop_options(monkeypatch, *weakness)
    with pytest.raises(SandboxUnavailable, match=reason):
        sandbox.probe(policy(config_dir, root), root / "tasks" / "sandbox-probe")


@needs_bwrap
def test_the_probe_finds_a_writable_git_directory(layout, monkeypatch):
    config_dir, root = layout
    original = CommandRunner.argv

    def writable_git(self, command, cwd, writable):
        return original(self, command, cwd, [*writable, *self.policy.readable])

    monkeypatch.setattr(CommandRunner, "argv", writable_git)
    with pytest.raises(SandboxUnavailable, match="git directory is writable"):
        sandbox.probe(policy(config_dir, root), root / "tasks" / "sandbox-probe")


def test_without_bubblewrap_the_probe_fails(layout, tmp_path):
    config_dir, root = layout
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(SandboxUnavailable, match=r"bubblewrap \(bwrap\) is not installed"):
        sandbox.probe(policy(config_dir, root, path=str(empty)), root / "tasks" / "probe")


def test_none_is_allowed_but_warned(layout, caplog):
    config_dir, root = layout
    sandbox.probe(policy(config_dir, root, mode="none"), root / "tasks" / "probe")
    assert "SANDBOX DISABLED" in caplog.text


def test_an_agent_whose_sandbox_fails_reports_the_error_and_claims_nothing(
    cluster_factory, tmp_path
):
    no_bwrap = tmp_path / "bin-without-bwrap"
    no_bwrap.mkdir()
    with cluster_factory([]) as cluster:
        worker = cluster.agent("agent-1", command_path=str(no_bwrap))
        number = cluster.label_issue("Add a triple function", "widgets should offer triple(x)")
        task = cluster.wait_for(number, states=("queued",), timeout=20)
        deadline = time.monotonic() + 20
        agent = None
        while time.monotonic() < deadline and not (agent and agent["state"] == "error"):
            time.sleep(0.3)
            agents = cluster.client.get("/api/v1/agents", headers=cluster.admin_headers).json
            agent = agents["items"][0] if agents["items"] else None
        assert agent and agent["state"] == "error", agent
        assert "bubblewrap (bwrap) is not installed" in agent["error"]
        time.sleep(2)  # claims would have happened by now
        task = cluster.task(number)
        assert task["state"] == "queued" and task["agent"] is None, task
        assert worker.status_line().startswith("error: taking no work: bubblewrap")
        session = admin_session(cluster.coordinator_url, ADMIN, cluster.local.admin_password)
        page = session.get(f"{cluster.coordinator_url}/admin/agents", timeout=5).text
        session.close()
        assert "bubblewrap (bwrap) is not installed" in page


@pytest.mark.parametrize("mode", ["none", pytest.param("bwrap", marks=needs_bwrap)])
def test_commands_run_under_resource_limits(tmp_path, mode):
    rlimits = (("cpu", 1), ("nproc", 300), ("fsize", 2**20), ("data", 256 * 2**20))
    runner = CommandRunner(Policy(mode=mode, rlimits=rlimits), secrets=[])
    shown = runner.run("ulimit -t; ulimit -u; ulimit -f; ulimit -d", tmp_path, timeout=20)
    assert shown.output.split() == ["1", "300", "1024", "262144"], shown.output  # in KiB
    big = runner.run("head -c 5000000 /dev/zero > big.bin", tmp_path, timeout=20)
    assert big.exit_code != 0 and (tmp_path / "big.bin").stat().st_size <= 1024 * 1024
    burner = runner.run("while :; do :; done", tmp_path, timeout=20)
    # Killed by its CPU limit (SIGXCPU, then SIGKILL), not by the 20 s timeout.
    assert not burner.timed_out and burner.exit_code != 0


@needs_bwrap
def test_tmp_is_small_and_memory_is_capped(tmp_path):
    runner = CommandRunner(Policy(tmp_bytes=2**20, rlimits=(("data", 128 * 2**20),)), secrets=[])
    tmp = runner.run("head -c 3000000 /dev/zero > /tmp/big", tmp_path, timeout=20)
    assert tmp.exit_code != 0 and "No space left on device" in tmp.output, tmp.output
    hog = runner.run("python3 -c 'bytearray(512 * 2**20)'", tmp_path, timeout=20)
    assert hog.exit_code != 0 and "MemoryError" in hog.output, hog.output
    small = runner.run("python3 -c 'bytearray(16 * 2**20); print(\"fits\")'", tmp_path, 20)
    assert small.output.strip() == "fits", small.output


def test_a_command_that_fills_the_disk_is_killed_and_the_next_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(DiskGuard, "INTERVAL", 0.3)
    runner = CommandRunner(Policy(mode="none", disk_bytes=5 * 2**20), secrets=[])
    filler = runner.run(
        "for i in $(seq 100); do head -c 1000000 /dev/zero > f$i; sleep 0.05; done; echo finished",
        tmp_path,
        timeout=60,
    )
    assert filler.disk_full and filler.exit_code is None, filler
    assert "finished" not in filler.output and "more than 5 MiB" in filler.output
    assert len(list(tmp_path.glob("f*"))) < 100
    refused = runner.run("echo hello", tmp_path, timeout=20)
    assert refused.disk_full and "hello" not in refused.output
    for written in tmp_path.glob("f*"):
        written.unlink()
    assert runner.run("echo hello", tmp_path, timeout=20).output.strip() == "hello"
