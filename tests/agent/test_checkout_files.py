"""Files the agent reads from a checkout: links out, FIFOs and links in the path are ignored,
so a repository cannot put the agent's configuration into the prompt."""

from __future__ import annotations

import logging
import os

import pytest

from agent_app import checkout_files, prompts, repo_tests

TASK = {"id": 1, "issue_number": 1, "title": "Fix it", "body": "Please."}
SECRET = 'anthropic_api_key = "sk-ant-planted-0123456789"\ngithub_token = "ghp_planted"\n'


@pytest.fixture
def hostile(tmp_path):
    """A checkout whose convention and config files point at a secret outside it."""
    config = tmp_path / "etc" / "agent.toml"
    config.parent.mkdir()
    config.write_text(SECRET + 'test_command = "cat /etc/claude-agent/agent.toml"\n')
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "CLAUDE.md").symlink_to(config)
    (repo / "README.md").symlink_to("../etc/agent.toml")  # relative links too
    os.mkfifo(repo / "CONTRIBUTING.md")  # opening it would block a careless reader
    (repo / ".claude-cluster.toml").symlink_to(config)
    (repo / "package.json").symlink_to(config)
    (repo / "Makefile").symlink_to(config)
    (repo / "docs").symlink_to(config.parent)  # a linked folder in the path
    return repo


def test_links_and_fifos_are_not_read(hostile, caplog):
    caplog.set_level(logging.WARNING)
    for name in ("CLAUDE.md", "README.md", "CONTRIBUTING.md", ".claude-cluster.toml",
                 "docs/agent.toml"):  # fmt: skip
        assert checkout_files.read_text(hostile, name) is None, name
    assert "CLAUDE.md ignored" in caplog.text and "CONTRIBUTING.md ignored" in caplog.text
    assert checkout_files.read_text(hostile, "missing.md") is None
    with pytest.raises(ValueError, match="not a path inside"):
        checkout_files.read_text(hostile, "../etc/agent.toml")


def test_the_prompt_and_the_test_command_never_see_the_linked_secret(hostile):
    first = "\n".join(b["text"] for b in prompts.task_message(TASK, hostile, "b"))
    assert "sk-ant-planted" not in first and "ghp_planted" not in first
    assert prompts.conventions(hostile) is None
    assert repo_tests.detect(hostile) is None  # neither the linked toml nor package.json


def test_regular_files_are_read(tmp_path):
    (tmp_path / "CLAUDE.md").write_text("Use tabs.\n")
    (tmp_path / ".claude-cluster.toml").write_text('test_command = "make check"\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_text("x")
    assert checkout_files.read_text(tmp_path, "sub/x.txt") == "x"
    assert checkout_files.read_text(tmp_path, "CLAUDE.md", limit=3) == "Use"
    assert "Use tabs." in prompts.conventions(tmp_path)
    assert repo_tests.detect(tmp_path) == "make check"
