"""Running the model's commands and the repository's scripts: in the task's folder, in their
own process group, with a timeout, an environment without credentials, and inside bubblewrap,
in a view of the filesystem where the agent's configuration and other tasks do not exist.

The sandbox fails closed: ``bwrap`` is the default, :func:`probe` checks it at start-up with the
very command line tasks use, and an agent whose sandbox does not hold takes no work. ``none``
(no sandbox at all) is for development only and is logged as such.
"""

from __future__ import annotations

import contextlib
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

from agent_app.exceptions import AgentError
from agent_app.redaction import Redactor

logger = logging.getLogger(__name__)

MODES = ("bwrap", "none")
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
        rlimits: dict[str, int] | None = None,
    ) -> None:
        """``mode``: "bwrap" or "none"; ``readable``: paths under hidden ones that commands may
        read (bound read-only); ``rlimits``: prlimit's resource names and values, e.g.
        ``{"cpu": 600, "nproc": 512, "fsize": 2**30}``."""
        if mode not in MODES:
            raise ValueError(f"sandbox mode must be one of {MODES}, not {mode!r}")
        self.hidden = [Path(p) for p in hidden]
        self.readable = [Path(p) for p in readable]
        self.redact = Redactor(secrets)
        self.output_chars = output_chars
        self.path = path
        self.use_bwrap = mode == "bwrap"
        # prlimit (util-linux) sets them on the command before it starts: no preexec_fn in a
        # threaded process.
        self.limit_prefix = (
            ["prlimit", *(f"--{name}={value}" for name, value in rlimits.items()), "--"]
            if rlimits
            else []
        )

    def argv(self, command: str, cwd: Path, writable: list[Path], readable: list[Path]):
        """The command line: plain bash, or bash inside a bubblewrap view of the system."""
        if not self.use_bwrap:
            return [*self.limit_prefix, "bash", "-c", command]
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
        return [*self.limit_prefix, *argv, "--chdir", str(cwd), "bash", "-c", command]

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
                # Returns as soon as the command ends; wakes every 50 ms to check the rest.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(0.05)
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


class SandboxUnavailable(AgentError):
    """Commands cannot be run safely here; the message says what is wrong."""


# Run inside the sandbox by probe(); each line checks one promise and names it when broken.
PROBE_SCRIPT = """
fail() {{ echo "sandbox probe: $*"; exit 1; }}
for hidden in {hidden}; do
    [ -z "$(ls -A "$hidden" 2>/dev/null)" ] || fail "$hidden is visible to commands"
done
[ ! -e {sentinel} ] || fail "another task's files are visible to commands"
[ -r {git_dir}/HEAD ] || fail "the task's git directory is not readable"
touch {git_dir}/probe 2>/dev/null && fail "the task's git directory is writable"
touch probe && rm probe || fail "the checkout is not writable"
[ "$$" -le 3 ] || fail "commands do not run in a PID namespace of their own (pid $$)"
echo sandbox-ok
"""


def probe(
    mode: str,
    hidden: list[Path],
    scratch: Path,
    path: str = BASE_ENV["PATH"],
    rlimits: dict[str, int] | None = None,
) -> None:
    """Run a command exactly as a task runs one, in a scratch task folder under ``scratch``,
    and check that it sees what it must and nothing more; SandboxUnavailable says what failed.
    ``hidden`` is what tasks hide (the configuration folder, the workspace root)."""
    if mode == "none":
        logger.warning(
            "SANDBOX DISABLED (sandbox = none): commands run as the agent's user with its view "
            "of the system. Development only; never with real credentials."
        )
        return
    if shutil.which("bwrap", path=path) is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) is not installed (PATH {path})")
    shutil.rmtree(scratch, ignore_errors=True)
    repo, git_dir = scratch / "repo", scratch / "git"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True, timeout=30)
    sentinel = scratch / "other-task-file"
    sentinel.write_text("must not be visible\n")
    script = PROBE_SCRIPT.format(
        hidden=" ".join(_quote(p) for p in hidden if p.exists() and p not in scratch.parents),
        sentinel=_quote(sentinel),
        git_dir=_quote(git_dir),
    )
    try:
        runner = CommandRunner(mode, hidden, [], path=path, readable=[git_dir], rlimits=rlimits)
        result = runner.run(script, repo, timeout=30)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.exit_code != 0 or "sandbox-ok" not in result.output:
        reason = result.output.strip().splitlines()[-1:] or [f"exit code {result.exit_code}"]
        raise SandboxUnavailable(reason[0][:300])


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"
