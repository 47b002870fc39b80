"""Running the model's commands: in the task's folder, in their own process group, with a
timeout, an environment without credentials, and (with bubblewrap) a view of the filesystem
in which the agent's configuration and other tasks' workspaces do not exist."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

KILL_GRACE_SECONDS = 2
# The only variables a command sees; nothing of the agent's own environment leaks through.
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "CI": "1",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "GIT_TERMINAL_PROMPT": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
# Proxies are passed on: lab hosts reach package registries only through one.
PASSED_THROUGH = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


@dataclass
class CommandResult:
    """What a command did."""

    exit_code: int | None
    output: str
    timed_out: bool = False
    cancelled: bool = False


def truncate(text: str, limit: int) -> str:
    """Keep the head and the tail of long output (errors are usually at the end)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters omitted ...]\n{text[-half:]}"


class CommandRunner:
    """Runs shell commands for one task."""

    def __init__(
        self,
        mode: str,
        hidden: list[Path],
        secrets: list[str],
        output_chars: int = 20_000,
        path: str = BASE_ENV["PATH"],
        readable: list[Path] = (),
    ) -> None:
        """``mode``: "bwrap", "none" or "auto" (bwrap when it works here); ``readable``: paths
        under hidden ones that commands may read (bound read-only)."""
        self.hidden = [Path(p) for p in hidden]
        self.readable = [Path(p) for p in readable]
        self.secrets = [s for s in secrets if s]
        self.output_chars = output_chars
        self.path = path
        self.use_bwrap = mode == "bwrap" or (mode == "auto" and bwrap_works())
        if mode == "bwrap" and not bwrap_works():
            raise RuntimeError("sandbox = bwrap, but bubblewrap is missing or not permitted here")

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def argv(self, command: str, cwd: Path, writable: list[Path], readable: list[Path]):
        """The command line: plain bash, or bash inside a bubblewrap view of the system."""
        if not self.use_bwrap:
            return ["bash", "-c", command]
        # A private /tmp (tmpfs), read-only system, fresh /dev and /proc of its own PID space.
        argv = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc"]
        argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        argv += ["--tmpfs", "/tmp"]  # noqa: S108 - a private tmpfs, not a shared temp file
        for path in self.hidden:  # configuration and the other tasks disappear
            if path.exists():
                argv += ["--tmpfs", str(path)]
        for path in [*self.readable, *readable]:
            if path.exists():
                argv += ["--ro-bind", str(path), str(path)]
        for path in writable:
            argv += ["--bind", str(path), str(path)]
        return [*argv, "--chdir", str(cwd), "bash", "-c", command]

    def run(
        self,
        command: str,
        cwd: Path,
        timeout: float,
        cancel: threading.Event | None = None,
        writable: list[Path] = (),
        readable: list[Path] = (),
    ) -> CommandResult:
        """Run ``command`` and return its merged output, truncated and redacted."""
        env = {**BASE_ENV, "HOME": str(cwd), "PATH": self.path}
        env.update({k: v for k, v in os.environ.items() if k in PASSED_THROUGH})
        with tempfile.TemporaryFile() as out:
            process = subprocess.Popen(
                self.argv(command, cwd, [*writable, cwd], list(readable)),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: we kill all it started
            )
            timed_out = cancelled = False
            deadline = time.monotonic() + timeout
            while process.poll() is None:
                if cancel is not None and cancel.is_set():
                    cancelled = True
                elif time.monotonic() > deadline:
                    timed_out = True
                if timed_out or cancelled:
                    _kill_group(process)
                    break
                time.sleep(0.05)
            out.seek(0)
            text = out.read().decode(errors="replace")
        note = ""
        if timed_out:
            note = f"\n[command timed out after {timeout:.0f}s and was killed]"
        elif cancelled:
            note = "\n[command cancelled]"
        return CommandResult(
            None if timed_out or cancelled else process.returncode,
            truncate(self.redact(text), self.output_chars) + note,
            timed_out,
            cancelled,
        )


def _kill_group(process: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(KILL_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue


_bwrap_ok: bool | None = None


def bwrap_works() -> bool:
    """Whether bubblewrap is installed and may create namespaces here (checked once)."""
    global _bwrap_ok  # noqa: PLW0603 - a process-wide probe result
    if _bwrap_ok is None:
        binary = shutil.which("bwrap")
        _bwrap_ok = (
            bool(binary)
            and subprocess.run(
                [binary, "--ro-bind", "/", "/", "--unshare-pid", "--dev", "/dev", "true"],
                capture_output=True,
                check=False,
                timeout=10,
            ).returncode
            == 0
        )
        if not _bwrap_ok:
            logger.warning("bubblewrap unavailable: commands run without a filesystem sandbox")
    return _bwrap_ok
