"""Claude's client tools, executed for one task: bash (one persistent shell, as the model
knows it: agent_app.shell) and the text editor.

Both are confined to the task's checkout. A tool problem is an ``is_error`` result for the
model to read, never an exception that ends the task.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_app.sandbox import CommandRunner, truncate
from agent_app.shell import ShellSession

BASH_TOOL = {"type": "bash_20250124", "name": "bash"}
EDITOR_TOOL = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
TOOL_DEFINITIONS = [BASH_TOOL, EDITOR_TOOL]
MAX_VIEW_BYTES = 400_000


class ToolFailure(Exception):
    """The tool call cannot be done; the message goes back to the model."""


@dataclass
class ToolResult:
    content: str
    is_error: bool = False


class ToolSet:
    """Executes tool_use blocks inside ``repo`` (the loop's environment)."""

    definitions = TOOL_DEFINITIONS

    def __init__(
        self,
        repo: Path,
        runner: CommandRunner,
        command_timeout: float,
        cancel: threading.Event,
    ) -> None:
        self.repo = repo.resolve()
        self.runner = runner
        self.shell = ShellSession(runner, self.repo)
        self.command_timeout = command_timeout
        self.cancel = cancel

    def close(self) -> None:
        """End the task's shell and everything it still runs."""
        self.shell.close()

    def execute(self, name: str, tool_input: dict[str, Any]) -> ToolResult:
        try:
            if name == "bash":
                return self.bash(tool_input)
            if name == "str_replace_based_edit_tool":
                return ToolResult(self.edit(tool_input))
            raise ToolFailure(f"unknown tool {name!r}")
        except ToolFailure as exc:
            return ToolResult(f"Error: {exc}", is_error=True)

    # bash -------------------------------------------------------------------------------

    def bash(self, tool_input: dict[str, Any]) -> ToolResult:
        if tool_input.get("restart"):
            self.shell.restart()
            return ToolResult(f"The shell was restarted: a new session in {self.repo}.")
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolFailure("bash needs a non-empty 'command' (or 'restart': true)")
        result = self.shell.run(command, self.command_timeout, self.cancel)
        text = result.output or "(no output)"
        if result.exit_code not in (0, None):
            text += f"\n[exit status {result.exit_code}]"
        return ToolResult(text, is_error=result.exit_code != 0)

    # text editor ------------------------------------------------------------------------

    def resolve(self, raw: Any) -> Path:
        """A path inside the checkout; anything that leads outside it is refused."""
        if not isinstance(raw, str) or not raw:
            raise ToolFailure("'path' is required")
        candidate = Path(raw)
        if not candidate.is_absolute():
            candidate = self.repo / candidate
        # resolve() follows symlinks: a link pointing out of the checkout is caught here too.
        resolved = candidate.resolve()
        if resolved != self.repo and self.repo not in resolved.parents:
            raise ToolFailure(
                f"{raw} is outside the repository; only files under {self.repo} can be used"
            )
        if ".git" in resolved.relative_to(self.repo).parts:
            raise ToolFailure("the .git folder is managed by the agent and cannot be edited")
        return resolved

    def edit(self, tool_input: dict[str, Any]) -> str:
        command = tool_input.get("command")
        path = self.resolve(tool_input.get("path"))
        if command == "view":
            return self._view(path, tool_input.get("view_range"))
        if command == "create":
            text = tool_input.get("file_text")
            if not isinstance(text, str):
                raise ToolFailure("create needs 'file_text'")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return f"File created: {self._rel(path)}"
        if command == "str_replace":
            return self._replace(path, tool_input.get("old_str"), tool_input.get("new_str", ""))
        if command == "insert":
            return self._insert(path, tool_input.get("insert_line"), tool_input.get("insert_text"))
        raise ToolFailure(f"unknown command {command!r}: use view, create, str_replace or insert")

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.repo)) or "."

    def _read(self, path: Path) -> str:
        if not path.is_file():
            raise ToolFailure(f"{self._rel(path)} does not exist or is not a file")
        if path.stat().st_size > MAX_VIEW_BYTES:
            raise ToolFailure(f"{self._rel(path)} is too large to edit here; use bash")
        try:
            return path.read_text()
        except UnicodeDecodeError as exc:
            raise ToolFailure(f"{self._rel(path)} is not a text file") from exc

    def _view(self, path: Path, view_range: Any) -> str:
        if path.is_dir():
            entries = sorted(
                str(p.relative_to(self.repo)) + ("/" if p.is_dir() else "")
                for p in path.rglob("*")
                if ".git" not in p.relative_to(self.repo).parts
                and len(p.relative_to(path).parts) <= 2
            )
            return truncate("\n".join(entries) or "(empty)", self.runner.output_chars)
        lines = self._read(path).splitlines()
        start, end = 1, len(lines)
        if view_range is not None:
            if (
                not isinstance(view_range, list)
                or len(view_range) != 2
                or not all(isinstance(n, int) for n in view_range)
            ):
                raise ToolFailure("view_range must be [start, end] (end -1 for the last line)")
            start, end = view_range[0], len(lines) if view_range[1] == -1 else view_range[1]
            if not 1 <= start <= max(end, 1) or end > len(lines):
                raise ToolFailure(f"view_range {view_range} is outside 1..{len(lines)}")
        numbered = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
        return truncate(numbered, self.runner.output_chars)

    def _replace(self, path: Path, old: Any, new: Any) -> str:
        if not isinstance(old, str) or not old:
            raise ToolFailure("str_replace needs a non-empty 'old_str'")
        if not isinstance(new, str):
            raise ToolFailure("'new_str' must be a string")
        text = self._read(path)
        count = text.count(old)
        if count == 0:
            raise ToolFailure(f"old_str was not found in {self._rel(path)}")
        if count > 1:
            raise ToolFailure(
                f"old_str occurs {count} times in {self._rel(path)}; "
                "include more context so it is unique"
            )
        path.write_text(text.replace(old, new, 1))
        return f"Edited {self._rel(path)}"

    def _insert(self, path: Path, line: Any, text: Any) -> str:
        if not isinstance(line, int) or not isinstance(text, str):
            raise ToolFailure("insert needs 'insert_line' (int) and 'insert_text'")
        lines = self._read(path).splitlines(keepends=True)
        if not 0 <= line <= len(lines):
            raise ToolFailure(f"insert_line {line} is outside 0..{len(lines)}")
        lines.insert(line, text if text.endswith("\n") else text + "\n")
        path.write_text("".join(lines))
        return f"Inserted text after line {line} of {self._rel(path)}"
