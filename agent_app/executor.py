"""Executors: what works on a task's checkout with a model, for the task runner.

``Executor`` is what the runner needs; ``LoopExecutor`` runs the project's own tool-use loop
(agent_app.agent_loop) with a model, reporting its name with each result so the acceptance
figures can compare executors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agent_app.agent_loop import AgentLoop, Budget, Environment, Usage
from agent_app.model import Conversation, Model
from agent_app.observers import Progress, Transcript
from agent_app.redaction import Redactor


class Executor(Protocol):
    name: str

    def run(
        self,
        conversation: Conversation,
        tools: Environment,
        budget: Budget,
        usage: Usage,
        started: float,
        transcript: Path,
        cancel: threading.Event,
        report: Callable[[dict], None],
    ) -> str:
        """Work until the model is done; returns its summary. Raises LimitExceeded or
        Cancelled with the conversation and checkout as they are."""
        ...


class LoopExecutor:
    """The tool-use loop against a ``Model`` (the Messages API in production)."""

    def __init__(self, model: Model, secrets: list[str], name: str = "messages-api") -> None:
        self.model, self.name = model, name
        self.redact = Redactor(secrets)

    def run(
        self,
        conversation: Conversation,
        tools: Environment,
        budget: Budget,
        usage: Usage,
        started: float,
        transcript: Path,
        cancel: threading.Event,
        report: Callable[[dict], None],
    ) -> str:
        observers = (Transcript(transcript, self.redact), Progress(report))
        loop = AgentLoop(
            self.model, tools, budget, usage, started=started, cancel=cancel, observers=observers
        )
        return loop.run(conversation)
