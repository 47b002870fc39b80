"""The model's shell: one bash per task that lives from one bash tool call to the next.

Claude's bash tool is a persistent session: a ``cd``, an exported variable or an activated
virtualenv carries over to the next call, and ``restart`` starts a fresh one. ``ShellSession``
keeps one such bash inside the task's sandbox (the same command line, environment, limits and
network as every other command: agent_app.sandbox.CommandRunner) and feeds it commands.

The protocol: each command reaches the shell on its stdin, ended by a NUL byte (which no bash
string can hold); the shell evaluates it with stdin from /dev/null and both pipes closed to it,
its output going to the session's output file, then writes the exit status as one line to its
stdout, a pipe only this side reads. A command that outlives its timeout, is cancelled or fills
the disk is killed with the whole shell; so is a shell that exits (``exit``, ``set -e``). The
next command then starts a new shell in the checkout, and the model is told so.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

from agent_app.sandbox import CommandResult, CommandRunner, DiskGuard, kill_group, supervise

# Keeps its stdin (the commands) and stdout (the statuses) on descriptors of its own, out of
# reach of the commands, which see /dev/null as stdin and the output file as stdout and stderr.
BOOT = r"""
exec {__ccc_commands}<&0 </dev/null {__ccc_status}>&1 1>&2
while IFS= read -r -d '' -u "$__ccc_commands" __ccc_command; do
    eval "$__ccc_command" {__ccc_commands}<&- {__ccc_status}>&-
    printf '%d\n' "$?" >&"$__ccc_status"
done
"""
RESTARTED = "the shell was restarted: the working directory and variables are back to their start"


class ShellSession:
    """A persistent bash for one task, started at its first command in ``cwd``."""

    def __init__(self, runner: CommandRunner, cwd: Path, writable: list[Path] = ()) -> None:
        self.runner, self.cwd = runner, cwd
        self.writable = [*writable, cwd]
        self.process: subprocess.Popen | None = None
        self.output: BinaryIO | None = None  # the shell's stdout and stderr, while it lives

    def run(self, command: str, timeout: float, cancel: threading.Event | None) -> CommandResult:
        """Run ``command`` in the session's shell; the same result, limits and clean-up as
        CommandRunner.run, except that the shell (and what it started in the background)
        lives on."""
        if "\0" in command:
            return CommandResult(2, "bash: a command cannot contain NUL bytes")
        guard = DiskGuard(self.writable, self.runner.policy.disk_bytes)
        if guard.exceeded():
            return CommandResult(None, guard.message, disk_full=True)
        process, output_file, notice = self._shell()
        start = output_file.seek(0, os.SEEK_END)
        status = bytearray()
        shell_ended = False

        def ended(wait: float) -> bool:
            nonlocal shell_ended
            ready, _, _ = select.select([process.stdout], [], [], wait)
            if ready:
                chunk = os.read(process.stdout.fileno(), 64)
                shell_ended = not chunk
                status.extend(chunk)
            elif process.poll() is not None:
                shell_ended = True
            return shell_ended or b"\n" in status

        try:
            process.stdin.write(command.encode() + b"\0")
            process.stdin.flush()
        except BrokenPipeError:
            shell_ended = True
        stopped = None if shell_ended else supervise(process, ended, timeout, cancel, guard)
        output = notice + self.runner.excerpt(output_file, start)
        if stopped:
            self._end()
            result = self.runner.result(None, output, stopped, timeout, guard)
            if stopped != "cancelled":  # the task goes on: the model must know
                result.output += f"\n[{RESTARTED}]"
            return result
        if shell_ended:
            code = _wait(process)
            self._end()
            note = f"the shell exited (status {code}); the next command starts a new one"
            return self.runner.result(code, f"{output}\n[{note} in {self.cwd}]", None, 0, guard)
        code = int(status.split(b"\n", 1)[0] or 1)
        return self.runner.result(code, output, None, timeout, guard)

    def restart(self) -> None:
        """End the shell; the next command starts a fresh one (the bash tool's ``restart``)."""
        self._end()

    def close(self) -> None:
        """End the shell with everything it started."""
        self._end()

    def _shell(self) -> tuple[subprocess.Popen, BinaryIO, str]:
        """The running shell, started if there is none, and what the model must be told of
        it: a shell that died since the last command is replaced, and that is news."""
        notice = ""
        if self.process is not None and self.process.poll() is not None:
            notice = (
                f"[the shell had exited (status {self.process.returncode}) since the last "
                f"command; this one ran in a new shell in {self.cwd}]\n"
            )
            self._end()
        if self.process is None:
            self.output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _end()
            self.process = subprocess.Popen(
                self.runner.argv(BOOT, self.cwd, self.writable),
                cwd=self.cwd,
                env=self.runner.environment(self.cwd),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.output,
                start_new_session=True,  # its own process group: we kill all it started
            )
        return self.process, self.output, notice

    def _end(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        kill_group(process)
        for pipe in (process.stdin, process.stdout, self.output):
            with contextlib.suppress(OSError):
                pipe.close()
        self.output = None


def _wait(process: subprocess.Popen) -> int:
    try:
        return process.wait(5)
    except subprocess.TimeoutExpired:
        kill_group(process)
        return process.wait()
