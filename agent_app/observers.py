"""What the loop's turns leave behind: the task's transcript on disk and its progress events
at the coordinator (accounting is agent_app.agent_loop.Accounting)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_app.agent_loop import Observation
from agent_app.model import Turn
from agent_app.redaction import Redactor


class Transcript:
    """``transcript.jsonl``: every turn and tool call, secrets filtered, one JSON per line, so
    nothing is lost if the process dies."""

    def __init__(self, path: Path, redact: Redactor) -> None:
        self.path, self.redact = path, redact

    def on_turn(self, number: int, turn: Turn) -> None:
        entry = {
            "turn": number,
            "stop_reason": turn.stop_reason,
            "text": turn.text,
            "usage": turn.raw_usage,
            "cost_usd": turn.cost_usd,
        }
        if turn.context_edits:  # old tool output cleared before this turn (agent_app.context)
            entry["context_edits"] = turn.context_edits
        self._write(entry)

    def on_observation(self, call: dict[str, Any], observation: Observation) -> None:
        self._write(
            {
                "tool": call["name"],
                "input": call["input"],
                "output": observation.content,
                "is_error": observation.is_error,
            }
        )

    def _write(self, entry: dict) -> None:
        line = self.redact(json.dumps({"at": time.time(), **entry}, default=str))
        with self.path.open("a") as handle:
            handle.write(line + "\n")


class Progress:
    """One ``turn`` progress event per turn (tokens and cost add up at the coordinator)."""

    def __init__(self, report: Callable[[dict], None]) -> None:
        self.report = report

    def on_turn(self, number: int, turn: Turn) -> None:
        self.report(
            {
                "kind": "turn",
                "data": {
                    "turn": number,
                    "stop_reason": turn.stop_reason,
                    "tool_calls": [call["name"] for call in turn.tool_calls],
                    "input_tokens": turn.usage.prompt_tokens,
                    "output_tokens": turn.usage.output_tokens,
                    "cost_usd": round(turn.cost_usd, 6),
                },
            }
        )

    def on_observation(self, call: dict[str, Any], observation: Observation) -> None:
        """Tool calls travel in the turn's event; their output stays in the transcript."""
