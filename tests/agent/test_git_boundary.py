"""The agent's own git against a hostile checkout: whatever commands in the sandbox wrote into
the checkout (a `.git` of their own with hooks, filters, fsmonitor, signing, worktree, include
and alternates, `.gitattributes`, symlinks out), the agent's commit runs none of it and
commits only the checkout's own files; the real git directory is read-only to commands."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from agent_app.sandbox import CommandRunner, Policy
from tests.agent.conftest import needs_bwrap


def hostile_git_dir(folder: Path, marker: Path) -> None:
    """A git directory whose every setting runs a program that leaves ``marker``."""
    run = f"sh -c 'echo ran >> {marker}'"
    subprocess.run(["git", "init", "-q", "--bare", str(folder)], check=True)
    (folder / "hooks").mkdir(exist_ok=True)
    for hook in ("pre-commit", "commit-msg", "post-commit", "pre-push", "reference-transaction"):
        (folder / "hooks" / hook).write_text(f"#!/bin/sh\necho ran >> {marker}\n")
        (folder / "hooks" / hook).chmod(0o755)
    included = folder / "included.cfg"
    included.write_text(f'[core]\n\tfsmonitor = "{run}"\n')
    (folder / "config").write_text(
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
        f'\tfsmonitor = "{run}"\n\thooksPath = {folder / "hooks"}\n\tworktree = /etc\n'
        f"[include]\n\tpath = {included}\n"
        f'[filter "pwn"]\n\tclean = "{run}"\n\tsmudge = "{run}"\n\trequired = true\n'
        f'[gpg]\n\tprogram = "{run}"\n[commit]\n\tgpgSign = true\n'
    )
    (folder / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (folder / "objects" / "info" / "alternates").write_text("/etc\n")


def test_a_git_directory_planted_in_the_checkout_is_never_used(checkout):
    workspace, publisher, mirror, tmp = checkout
    marker = tmp / "pwned"
    secret = tmp / "agent.toml"
    secret.write_text('github_token = "ghp_planted_secret_value"\n')
    repo = workspace.repo
    # What a command could do inside its checkout: replace `.git` (a file pointing at the real
    # git directory) with a directory of its own, add attributes naming a filter, link out.
    (repo / ".git").unlink()
    hostile_git_dir(repo / ".git", marker)
    (repo / ".gitattributes").write_text("* filter=pwn diff=pwn\n")
    (repo / "notes.md").write_text("the model's change\n")
    (repo / "config-link.toml").symlink_to(secret)
    nested = repo / "vendor" / "lib"
    nested.mkdir(parents=True)
    hostile_git_dir(nested / ".git", marker)

    made = publisher.commit_all(workspace, "Add notes")
    pushed = publisher.push(mirror, workspace)

    commit = made.sha
    assert commit and pushed == commit
    assert made.left_out == ["vendor/lib/ (a nested repository)"]
    assert not marker.exists(), marker.read_text()
    listed = subprocess.run(
        ["git", "--git-dir", str(workspace.git_dir), "ls-tree", "-r", "--full-tree", commit],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    paths = {line.split("\t")[1]: line.split()[0] for line in listed.splitlines()}
    assert "notes.md" in paths and ".gitattributes" in paths
    assert not any(p.startswith(".git/") or p == ".git" for p in paths)
    assert not any("passwd" in p or p.startswith("etc/") for p in paths)  # core.worktree=/etc
    assert paths["config-link.toml"] == "120000"  # the link itself, not what it points at
    blob = subprocess.run(
        ["git", "--git-dir", str(workspace.git_dir), "show", f"{commit}:config-link.toml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert blob == str(secret) and "ghp_planted_secret_value" not in blob
    # The nested `.git` is a folder git does not descend into as a repository of ours.
    assert not any(p.startswith("vendor/lib/.git") for p in paths)


def test_the_agent_git_ignores_dangerous_settings_of_its_own_git_directory(checkout):
    """Defence in depth: hooks, fsmonitor and signing stay off even if the agent's own git
    directory had them (only a sandbox set to "none" could write there)."""
    workspace, publisher, _mirror, tmp = checkout
    marker = tmp / "pwned"
    run = f"sh -c 'echo ran >> {marker}'"
    with (workspace.git_dir / "config").open("a") as config:
        config.write(f'[core]\n\tfsmonitor = "{run}"\n\thooksPath = {tmp / "hooks"}\n'
                     f'[gpg]\n\tprogram = "{run}"\n[commit]\n\tgpgSign = true\n')  # fmt: skip
    (tmp / "hooks").mkdir()
    (tmp / "hooks" / "pre-commit").write_text(f"#!/bin/sh\necho ran >> {marker}\n")
    (tmp / "hooks" / "pre-commit").chmod(0o755)
    (workspace.repo / "notes.md").write_text("change\n")
    assert publisher.commit_all(workspace, "Add notes").sha
    assert not marker.exists()


@needs_bwrap
def test_commands_in_the_sandbox_cannot_write_the_git_directory(checkout):
    workspace, _publisher, mirror, _tmp = checkout
    policy = Policy(hidden=(workspace.root.parent.parent,), readable=(workspace.git_dir, mirror))
    runner = CommandRunner(policy, secrets=[])
    before = (workspace.git_dir / "config").read_text()
    attack = (
        f"echo '[core] fsmonitor = touch /tmp/x' >> {workspace.git_dir}/config; "
        f"mkdir -p {workspace.git_dir}/hooks && echo x > {workspace.git_dir}/hooks/pre-commit; "
        f"echo x >> {mirror}/config; git status --short; git log --oneline -1"
    )
    result = runner.run(attack, workspace.repo, 30, threading.Event())
    assert "Read-only file system" in result.output, result.output
    assert (workspace.git_dir / "config").read_text() == before
    assert not (workspace.git_dir / "hooks" / "pre-commit").exists()
    # The model's read-only git still works in the checkout.
    assert result.exit_code == 0 and "fatal" not in result.output, result.output
