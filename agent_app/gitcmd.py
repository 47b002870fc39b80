"""Running git with credentials that never touch disk, argv or logs."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

from agent_app.exceptions import AgentError


class GitError(AgentError):
    """A git command failed; the message has its (redacted) output."""


class Git:
    """git with an HTTP token supplied through GIT_CONFIG_* environment variables.

    The token is handed to git as an ``http.extraHeader`` in the environment of each call, so
    it is never written to ``.git/config``, never on a command line ``ps`` could show, and is
    redacted from every error message.
    """

    def __init__(self, token: str, author_name: str, author_email: str) -> None:
        self._token = token
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/nonexistent"),
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": author_name,
            "GIT_COMMITTER_EMAIL": author_email,
        }

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def __call__(self, *args: str, cwd: Path | None = None, timeout: float = 600) -> str:
        """Run ``git args`` and return stdout; GitError (redacted) when it fails."""
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=cwd,
                env=self._env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} timed out after {timeout}s") from exc
        if done.returncode != 0:
            raise GitError(self.redact(f"git {' '.join(args[:2])}: {done.stderr.strip()[-800:]}"))
        return done.stdout
