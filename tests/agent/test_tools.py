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
    tools = ToolSet(repo, runner, command_timeout=5, cancel=threading.Event())
    yield tools
    tools.close()


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
    result = tools.execute("bash", {"command": "echo out; false"})
    assert result.is_error and "[exit status 1]" in result.content and "out" in result.content


SHELL_MODES = ["none", pytest.param("bwrap", marks=needs_bwrap)]


@pytest.fixture(params=SHELL_MODES)
def shell_tools(request, repo):
    runner = CommandRunner(Policy(mode=request.param), secrets=[SECRET], output_chars=2000)
    tools = ToolSet(repo, runner, command_timeout=5, cancel=threading.Event())
    yield tools
    tools.close()


def bash(tools, command):
    return tools.execute("bash", {"command": command})


def test_the_shell_persists_between_calls_and_restart_starts_afresh(shell_tools, repo):
    """A cd, a variable, a function and an activated virtualenv carry over, as in Claude's
    own bash tool; restart forgets them all."""
    (repo / "pkg").mkdir()
    (repo / "venv" / "bin").mkdir(parents=True)
    (repo / "venv" / "bin" / "activate").write_text(
        'export VIRTUAL_ENV=venv PATH="venv/bin:$PATH"\n'
    )
    for command in (
        "cd pkg",
        "export COLOUR=blue",
        "greet() { echo hi $1; }",
        ". ../venv/bin/activate",
    ):
        assert not bash(shell_tools, command).is_error
    seen = bash(shell_tools, 'pwd; echo "$COLOUR $VIRTUAL_ENV"; greet there').content
    assert seen.splitlines() == [str(repo / "pkg"), "blue venv", "hi there"]
    restarted = shell_tools.execute("bash", {"restart": True})
    assert not restarted.is_error and "restarted" in restarted.content
    assert bash(shell_tools, 'pwd; echo "[$COLOUR]"').content.splitlines() == [str(repo), "[]"]


def test_each_result_holds_its_own_output_and_exit_status(shell_tools):
    first = bash(shell_tools, "echo one; echo two >&2")
    second = bash(shell_tools, "echo three; (exit 7)")
    assert first.content == "one\ntwo\n" and not first.is_error
    assert second.content == "three\n\n[exit status 7]" and second.is_error
    # Input is /dev/null: a command waiting for input ends at once, and takes no later command.
    assert bash(shell_tools, "cat; read -r line; echo read=$?").content == "read=1\n"
    assert bash(shell_tools, "echo still here").content == "still here\n"


def test_a_command_cannot_forge_its_status_or_reach_the_protocol(shell_tools):
    """The status pipe and the command pipe are closed to commands: writing a fake status
    fails, and the real one is reported."""
    forged = bash(shell_tools, 'printf "0\\n" >&"$__ccc_status"; echo "fd=$__ccc_status"; exit 9')
    assert forged.is_error and "[exit status 9]" in forged.content, forged.content
    assert "Bad file descriptor" in forged.content
    stolen = bash(shell_tools, 'read -r -d "" -u "$__ccc_commands" x; echo "got=[$x]"')
    assert "got=[]" in stolen.content and "Bad file descriptor" in stolen.content
    assert bash(shell_tools, "echo next").content == "next\n"
    assert "NUL" in bash(shell_tools, "echo a\0b").content


def test_a_shell_that_exits_is_replaced_and_the_model_told(shell_tools, repo):
    bash(shell_tools, "cd / && export GONE=1")
    ended = bash(shell_tools, "echo bye; exit 4")
    assert ended.is_error and "bye" in ended.content and "[exit status 4]" in ended.content
    assert "the next command starts a new one" in ended.content
    fresh = bash(shell_tools, 'pwd; echo "[$GONE]"')
    assert fresh.content.splitlines() == [str(repo), "[]"]
    # One that dies between calls (here: killed by a command it left running) is news too.
    bash(shell_tools, "(sleep 0.3; kill -9 $$) >/dev/null 2>&1 &")
    time.sleep(1)
    told = bash(shell_tools, "echo after")
    assert "the shell had exited" in told.content and told.content.endswith("after\n")


def test_a_timeout_restarts_the_shell_and_kills_what_it_started(shell_tools, repo):
    pid_file = repo / "bg.pid"
    bash(shell_tools, f"cd pkg 2>/dev/null; sleep 60 >/dev/null 2>&1 & echo $! > {pid_file}")
    timed_out = bash(shell_tools, "export LOST=1; sleep 30")
    assert timed_out.is_error and "timed out after 5s" in timed_out.content
    assert "the shell was restarted" in timed_out.content
    assert bash(shell_tools, 'echo "[$LOST]"').content == "[]\n"
    if shell_tools.runner.policy.mode == "none":  # in bwrap the PID is the namespace's own
        time.sleep(0.2)
        assert not _alive(int(pid_file.read_text()))


def test_closing_ends_background_work(shell_tools, repo):
    marker = repo / "still-running"
    bash(shell_tools, f"(while true; do touch {marker}; sleep 0.1; done) >/dev/null 2>&1 &")
    time.sleep(0.5)
    assert marker.exists()
    shell_tools.close()
    marker.unlink()
    time.sleep(0.5)
    assert not marker.exists()


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
    tools.close()
