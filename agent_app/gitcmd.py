"""Running git on the agent's side of the sandbox: a fixed, minimal configuration, credentials
that never touch disk, argv or logs, and the git directory named explicitly.

A task's checkout is written by commands the model chose and by the repository's own scripts,
so nothing in it may steer the agent's git: no system or global configuration, no hooks, no
fsmonitor, no signing program, and for a checkout the git directory is passed as GIT_DIR (it
lives outside the checkout, read-only to the sandbox); a `.git` file or folder the checkout
holds is never looked at.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

from agent_app.exceptions import AgentError
from agent_app.redaction import Redactor

# Settings that run programs or read other files; fixed whatever a configuration says.
FIXED_CONFIG = {
    "core.hooksPath": "/dev/null",
    "core.fsmonitor": "false",
    "core.attributesFile": "/dev/null",
    "core.excludesFile": "/dev/null",
    "core.sshCommand": "false",
    "commit.gpgSign": "false",
    "tag.gpgSign": "false",
    "gpg.program": "false",
    "credential.helper": "",
    "safe.directory": "",
}


class GitError(AgentError):
    """A git command failed; the message has its (redacted) output."""


class Git:
    """git with the fixed configuration, and a task's token and identity for the calls that
    need them.

    A token is handed to git as an ``http.extraHeader`` in the environment of the one call
    that needs it, so it is never written to a git configuration, never on a command line
    ``ps`` could show, and is redacted from every error message.
    """

    def __init__(self) -> None:
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/nonexistent",
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_CONFIG_COUNT": str(len(FIXED_CONFIG)),
        }
        for index, (key, value) in enumerate(FIXED_CONFIG.items()):
            self._env[f"GIT_CONFIG_KEY_{index}"] = key
            self._env[f"GIT_CONFIG_VALUE_{index}"] = value

    def __call__(
        self,
        *args: str,
        cwd: Path | None = None,
        timeout: float = 600,
        git_dir: Path | None = None,
        token: str | None = None,
        author: tuple[str, str] | None = None,
    ) -> str:
        """Run ``git args`` and return stdout; GitError (redacted) when it fails.

        ``git_dir``: work on the checkout ``cwd`` whose git directory this is (GIT_DIR and
        GIT_WORK_TREE), never on whatever ``cwd/.git`` says. ``token``: GitHub's, for a clone,
        fetch or push. ``author``: (name, email) of a commit, as author and committer.
        """
        env = dict(self._env)
        if git_dir is not None:
            env |= {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(cwd)}
        if token:
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            index = len(FIXED_CONFIG)
            env |= {
                "GIT_CONFIG_COUNT": str(index + 1),
                f"GIT_CONFIG_KEY_{index}": "http.extraHeader",
                f"GIT_CONFIG_VALUE_{index}": f"Authorization: Basic {basic}",
            }
        if author is not None:
            name, email = author
            env |= {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
            env |= {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} timed out after {timeout}s") from exc
        if done.returncode != 0:
            # The filter is built only here: compiling it for every call would cost each one.
            redact = Redactor([token] if token else [])
            raise GitError(redact(f"git {' '.join(args[:2])}: {done.stderr.strip()[-800:]}"))
        return done.stdout
