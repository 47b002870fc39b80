"""The client tools as the model uses them: confined to the checkout, errors as results."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent_app.sandbox import CommandRunner, Policy
from agent_app.tools import ToolSet
from tests.agent.conftest import needs_bwrap

SECRET = "sk-ant-very-secret-key"


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "tasks" / "task-1" / "repo"
    root.mkdir(parents=True)
    (root / "app.py").write_text("def a():\n    return 1\n\n\ndef b():\n    return 1\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    return root


@pytest.fixture
def tools(repo):
    runner = CommandRunner(Policy(mode="none"), secrets=[SECRET], output_chars=2000)
    return ToolSet(repo, runner, command_timeout=5, cancel=threading.Event())


def edit(tools, **tool_input):
    return tools.execute("str_replace_based_edit_tool", tool_input)


@pytest.mark.parametrize(
    "path",
    [
        "../outside.txt",
        "/etc/passwd",
        "sub/../../outside.txt",
        ".git/config",
        ".git/hooks/pre-commit",
    ],
)
def test_paths_outside_the_checkout_are_refused(tools, path):
    for command in ({"command": "view"}, {"command": "create", "file_text": "x"}):
        result = edit(tools, path=path, **command)
        assert result.is_error
        assert "outside the repository" in result.content or ".git folder" in result.content
    assert not (tools.repo.parent / "outside.txt").exists()


def test_symlink_out_of_the_checkout_is_refused(tools, repo, tmp_path):
    secret = tmp_path / "agent.toml"
    secret.write_text(f"anthropic_api_key = '{SECRET}'")
    (repo / "link.toml").symlink_to(secret)
    result = edit(tools, command="view", path="link.toml")
    assert result.is_error and SECRET not in result.content


def test_view_create_replace_insert(tools, repo):
    assert "     1\tdef a():" in edit(tools, command="view", path="app.py").content
    assert (
        edit(tools, command="view", path="app.py", view_range=[2, 2]).content
        == "     2\t    return 1"
    )
    assert not edit(tools, command="create", path="pkg/new.py", file_text="X = 1\n").is_error
    assert (repo / "pkg" / "new.py").read_text() == "X = 1\n"
    ambiguous = edit(
        tools, command="str_replace", path="app.py", old_str="return 1", new_str="return 2"
    )
    assert ambiguous.is_error and "occurs 2 times" in ambiguous.content
    done = edit(
        tools,
        command="str_replace",
        path="app.py",
        old_str="def b():\n    return 1",
        new_str="def b():\n    return 2",
    )
    assert not done.is_error and "return 2" in (repo / "app.py").read_text()
    assert not edit(
        tools, command="insert", path="app.py", insert_line=0, insert_text="# top"
    ).is_error
    assert (repo / "app.py").read_text().startswith("# top\n")
    listing = edit(tools, command="view", path=".").content
    assert "app.py" in listing and "pkg/new.py" in listing and ".git" not in listing


def test_unknown_command_and_missing_file_are_error_results(tools):
    assert edit(tools, command="undo_edit", path="app.py").is_error
    assert "does not exist" in edit(tools, command="view", path="nope.py").content


def test_bash_runs_in_the_checkout_with_a_scrubbed_environment(tools, repo, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    result = tools.execute("bash", {"command": "pwd; env"})
    assert not result.is_error
    assert result.content.splitlines()[0] == str(repo)
    assert SECRET not in result.content and "ghp_secret" not in result.content
    assert "GITHUB_TOKEN" not in result.content


def test_secrets_in_output_are_redacted(tools):
    result = tools.execute("bash", {"command": f"echo key={SECRET}"})
    assert SECRET not in result.content and "key=[REDACTED]" in result.content


def test_failing_command_is_an_error_result(tools):
    result = tools.execute("bash", {"command": "echo out; exit 3"})
    assert result.is_error and "[exit status 3]" in result.content and "out" in result.content


def test_timeout_kills_the_whole_process_group(tools, repo):
    pid_file = repo / "child.pid"
    started = time.monotonic()
    result = tools.execute("bash", {"command": f"sleep 60 & echo $! > {pid_file}; wait"})
    assert time.monotonic() - started < 30
    assert result.is_error and "timed out after 5s" in result.content
    child = int(pid_file.read_text())
    time.sleep(0.2)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for this machine's PID 1 to reap it counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_cancel_stops_a_running_command(tools):
    threading.Timer(0.5, tools.cancel.set).start()
    result = tools.execute("bash", {"command": "sleep 30"})
    assert "[command cancelled]" in result.content


def test_long_output_keeps_head_and_tail(tools):
    result = tools.execute("bash", {"command": "seq 1 100000"})
    assert result.content.startswith("1\n2\n") and "100000" in result.content
    assert "characters omitted" in result.content and len(result.content) < 2200


@needs_bwrap
def test_bubblewrap_hides_the_configuration_and_other_tasks(repo, tmp_path):
    config_dir = tmp_path / "etc-claude-agent"
    config_dir.mkdir()
    (config_dir / "agent.toml").write_text(f"anthropic_api_key = '{SECRET}'")
    other_task = tmp_path / "tasks" / "task-2"
    other_task.mkdir(parents=True)
    (other_task / "secret.txt").write_text("other task data")
    runner = CommandRunner(Policy(hidden=(config_dir, tmp_path / "tasks")), secrets=[])
    tools = ToolSet(repo, runner, command_timeout=10, cancel=threading.Event())
    seen = tools.execute(
        "bash",
        {"command": f"cat {config_dir}/agent.toml; ls {other_task}; cat app.py; touch made-here"},
    )
    assert SECRET not in seen.content
    assert "other task data" not in seen.content and "secret.txt" not in seen.content
    assert "def a():" in seen.content  # its own checkout is there
    assert (repo / "made-here").exists()  # and writable
