"""Running the model's commands and the repository's scripts: in the task's folder, in their
own process group, with a timeout, resource limits, an environment without credentials, and
inside bubblewrap, in a view of the filesystem where the agent's configuration and other tasks
do not exist and a network namespace whose only way out is the egress proxy (agent_app.egress).

The sandbox fails closed: ``bwrap`` is the default, :func:`probe` checks it at start-up with the
very command line tasks use, and an agent whose sandbox does not hold takes no work. ``none``
(no sandbox at all) is for development only and is logged as such.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from agent_app import egress
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
# Without a sandbox (development), the agent's own proxy settings are passed on; sandboxed
# commands get the egress relay's instead (agent_app.egress.environment).
PASSED_THROUGH = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


@dataclass
class CommandResult:
    """What a command did."""

    exit_code: int | None
    output: str
    timed_out: bool = False
    cancelled: bool = False
    disk_full: bool = False


def truncate(text: str, limit: int) -> str:
    """Keep the head and the tail of long output (errors are usually at the end)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters omitted ...]\n{text[-half:]}"


@dataclass(frozen=True)
class Policy:
    """How commands are isolated; the start-up probe and every task's commands share one.

    ``mode``: "bwrap" or "none"; ``hidden``: folders commands see empty (the configuration,
    the workspace root); ``readable``: paths under hidden ones bound read-only; ``path``: the
    PATH of commands; ``rlimits``: prlimit's names and values, e.g. ``(("cpu", 600),
    ("nproc", 512), ("fsize", 2**30), ("data", 2**32))``; ``egress_socket``: the unix socket of the
    allowlisting egress proxy (empty: commands have no network at all); ``tmp_bytes``: size of
    the private /tmp; ``disk_bytes``: the most the task's writable folders may hold (0: no
    guard); ``writable``: folders bound writable besides the task's own (the repository's
    tool caches, outside the disk guard); ``env``: variables added to every command's
    environment (where those caches are)."""

    mode: str = "bwrap"
    hidden: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    path: str = BASE_ENV["PATH"]
    rlimits: tuple[tuple[str, int], ...] = ()
    egress_socket: str = ""
    tmp_bytes: int = 1024 * 1024 * 1024
    disk_bytes: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"sandbox mode must be one of {MODES}, not {self.mode!r}")

    def reading(self, *paths: Path) -> Policy:
        """This policy with ``paths`` also readable."""
        return replace(self, readable=(*self.readable, *paths))


class CommandRunner:
    """Runs shell commands for one task."""

    def __init__(self, policy: Policy, secrets: list[str], output_chars: int = 20_000) -> None:
        self.policy = policy
        self.redact = Redactor(secrets)
        self.output_chars = output_chars
        # prlimit (util-linux) sets them on the command before it starts: no preexec_fn in a
        # threaded process.
        self.limit_prefix = (
            ["prlimit", *(f"--{name}={value}" for name, value in policy.rlimits), "--"]
            if policy.rlimits
            else []
        )

    def reading_more(self, output_chars: int) -> CommandRunner:
        """This runner keeping up to ``output_chars`` of each command's output."""
        runner = copy.copy(self)
        runner.output_chars = output_chars
        return runner

    def argv(self, command: str, cwd: Path, writable: list[Path]) -> list[str]:
        """The command line: plain bash, or bash inside a bubblewrap view of the system with
        no network but the egress proxy's relay."""
        policy = self.policy
        if policy.mode == "none":
            return [*self.limit_prefix, "bash", "-c", command]
        # A private /tmp (tmpfs), read-only system, fresh /dev and /proc of its own PID space,
        # and a network namespace where only loopback exists.
        argv = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-net"]
        argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        argv += ["--size", str(policy.tmp_bytes), "--tmpfs", "/tmp"]  # noqa: S108 - private
        for path in policy.hidden:  # configuration and the other tasks disappear
            if path.exists():
                argv += ["--tmpfs", str(path)]
        for path in policy.readable:
            if path.exists():
                argv += ["--ro-bind", str(path), str(path)]
        for path in (*policy.writable, *writable):
            argv += ["--bind", str(path), str(path)]
        shell = ["bash", "-c", command]
        if policy.egress_socket:
            argv += ["--bind", policy.egress_socket, egress.SOCKET_IN_SANDBOX]
            shell = egress.relay_command(command)
        return [*self.limit_prefix, *argv, "--chdir", str(cwd), *shell]

    def environment(self, cwd: Path) -> dict[str, str]:
        """Nothing of the agent's own environment but the proxy settings it was given (none
        mode) or the egress relay's (bwrap mode)."""
        env = {**BASE_ENV, "HOME": str(cwd), "PATH": self.policy.path, **dict(self.policy.env)}
        if self.policy.mode == "none":
            env.update({k: v for k, v in os.environ.items() if k in PASSED_THROUGH})
        elif self.policy.egress_socket:
            env.update(egress.environment())
        return env

    def run(
        self,
        command: str,
        cwd: Path,
        timeout: float,
        cancel: threading.Event | None = None,
        writable: list[Path] = (),
    ) -> CommandResult:
        """Run ``command`` in a shell of its own and return its merged output, truncated and
        redacted. A command that outlives ``timeout``, is cancelled or fills the task's folders
        past the disk guard is killed with everything it started."""
        writable = [*writable, cwd]
        guard = DiskGuard(writable, self.policy.disk_bytes)
        if guard.exceeded():
            return CommandResult(None, guard.message, disk_full=True)
        with tempfile.TemporaryFile() as out:
            process = subprocess.Popen(
                self.argv(command, cwd, writable),
                cwd=cwd,
                env=self.environment(cwd),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: we kill all it started
            )

            def ended(wait: float) -> bool:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(wait)
                return process.returncode is not None

            stopped = supervise(process, ended, timeout, cancel, guard)
            output = self.excerpt(out, 0)
        return self.result(None if stopped else process.returncode, output, stopped, timeout, guard)

    def excerpt(self, handle: BinaryIO, start: int) -> str:
        """What was written to ``handle`` from ``start`` on: redacted, its head and tail kept
        within ``output_chars`` (a command that printed gigabytes is not read whole)."""
        end = handle.seek(0, os.SEEK_END)
        limit = self.output_chars
        if end - start <= 4 * limit:
            handle.seek(start)
            return truncate(self.redact(handle.read().decode(errors="replace")), limit)
        # Each side is read twice as long as it is kept, and redacted before it is cut: a
        # secret that straddles the cut is still whole where it is redacted.
        half = limit // 2
        handle.seek(start)
        head = self.redact(handle.read(limit).decode(errors="replace"))[:half]
        handle.seek(end - limit)
        tail = self.redact(handle.read(limit).decode(errors="replace"))[-half:]
        omitted = end - start - 2 * half
        return f"{head}\n[... about {omitted} characters omitted ...]\n{tail}"

    @staticmethod
    def result(
        exit_code: int | None, output: str, stopped: str | None, timeout: float, guard: DiskGuard
    ) -> CommandResult:
        """The CommandResult of a command that ended with ``exit_code`` or was ``stopped``
        ("timed_out", "cancelled", "disk_full"; see supervise)."""
        notes = {
            "timed_out": f"\n[command timed out after {timeout:.0f}s and was killed]",
            "cancelled": "\n[command cancelled]",
            "disk_full": f"\n{guard.message}",
        }
        return CommandResult(
            exit_code,
            output + notes.get(stopped or "", ""),
            timed_out=stopped == "timed_out",
            cancelled=stopped == "cancelled",
            disk_full=stopped == "disk_full",
        )


def supervise(
    process: subprocess.Popen,
    ended: Callable[[float], bool],
    timeout: float,
    cancel: threading.Event | None,
    guard: DiskGuard,
) -> str | None:
    """Wait until ``ended(wait)`` (which blocks at most ``wait`` seconds) says the command is
    over. Returns None, or why it was stopped: "timed_out", "cancelled" or "disk_full", after
    killing ``process``'s group (everything the command started)."""
    deadline = time.monotonic() + timeout
    while not ended(0.05):  # wakes every 50 ms to check the rest
        if cancel is not None and cancel.is_set():
            stopped = "cancelled"
        elif time.monotonic() > deadline:
            stopped = "timed_out"
        elif guard.due() and guard.exceeded():
            stopped = "disk_full"
        else:
            continue
        kill_group(process)
        return stopped
    return None


class DiskGuard:
    """Measures what a task's writable folders hold (du, every few seconds while a command
    runs); a quota the filesystem would enforce is not available on every host."""

    INTERVAL = 3.0

    def __init__(self, paths: list[Path], limit: int) -> None:
        self.paths, self.limit = paths, limit
        self.next_check = time.monotonic() + self.INTERVAL
        self.message = (
            f"[command killed: the task's folders hold more than {limit // 2**20} MiB; "
            "delete what is not needed (build output, caches) before going on]"
        )

    def due(self) -> bool:
        if time.monotonic() < self.next_check:
            return False
        self.next_check = time.monotonic() + self.INTERVAL
        return True

    def exceeded(self) -> bool:
        return bool(self.limit) and disk_use(self.paths) > self.limit


def disk_use(paths: list[Path]) -> int:
    """Bytes the files under ``paths`` occupy (du -s, one filesystem, hard links once)."""
    found = subprocess.run(
        ["du", "-s", "-x", "-B1", "--", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return sum(int(line.split()[0]) for line in found.stdout.splitlines() if line.strip())


def kill_group(process: subprocess.Popen) -> None:
    """Stop ``process`` and its process group: SIGTERM, then SIGKILL after a grace period."""
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
nics=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')
[ "$nics" = "lo " ] || fail "commands see network interfaces other than loopback: $nics"
{egress_check}
echo sandbox-ok
"""
EGRESS_CHECK = (
    f"grep -q '{egress.LISTENING}' /proc/net/tcp"
    ' || fail "the egress proxy relay does not listen (is socat installed?)"'
)


def probe(policy: Policy, scratch: Path) -> None:
    """Run a command exactly as a task runs one, in a scratch task folder ``scratch``, and
    check that it sees what it must and nothing more; SandboxUnavailable says what failed."""
    if policy.mode == "none":
        logger.warning(
            "SANDBOX DISABLED (sandbox = none): commands run as the agent's user with its view "
            "of the system and network. Development only; never with real credentials."
        )
        return
    if shutil.which("bwrap", path=policy.path) is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) is not installed (PATH {policy.path})")
    if policy.egress_socket and not _is_socket(policy.egress_socket):
        raise SandboxUnavailable(
            f"the egress proxy socket {policy.egress_socket} does not exist "
            "(is its claude-egress@<port>.socket running?)"
        )
    shutil.rmtree(scratch, ignore_errors=True)
    repo, git_dir = scratch / "repo", scratch / "git"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True, timeout=30)
    sentinel = scratch / "other-task-file"
    sentinel.write_text("must not be visible\n")
    script = PROBE_SCRIPT.format(
        hidden=" ".join(
            _quote(p) for p in policy.hidden if p.exists() and p not in scratch.parents
        ),
        sentinel=_quote(sentinel),
        git_dir=_quote(git_dir),
        egress_check=EGRESS_CHECK if policy.egress_socket else "",
    )
    try:
        result = CommandRunner(policy.reading(git_dir), []).run(script, repo, timeout=30)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.exit_code != 0 or "sandbox-ok" not in result.output:
        reason = result.output.strip().splitlines()[-1:] or [f"exit code {result.exit_code}"]
        raise SandboxUnavailable(reason[0][:300])


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"
