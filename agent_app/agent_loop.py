"""The tool-use loop, shaped like mini-swe-agent: ``step()`` = observe(query()), ``run()`` a
short loop until the model ends its turn without a tool call, a limit is reached or the task
is cancelled.

The loop knows three small protocols: the ``Model`` (agent_app.model: one query, one turn), the
``Environment`` (one tool call, one observation: agent_app.tools.ToolSet in the sandbox) and
``Observer``s, which hear every turn and observation (accounting, the transcript, progress
reports: agent_app.observers). Limits and cancellation stop it with the work so far left in the
checkout for the caller to commit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from agent_app.exceptions import Cancelled, LimitExceeded
from agent_app.model import Conversation, Model, Turn


@dataclass
class Budget:
    """The task's limits (the smaller of the coordinator's budget and the agent's ceilings)."""

    max_turns: int
    max_tokens: int
    max_dollars: float
    max_seconds: float


@dataclass
class Usage:
    """Running totals for a task, across its rounds."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_tokens
            + self.cache_read_tokens
        )


class Observation(Protocol):
    content: str
    is_error: bool


class Environment(Protocol):
    """Where the model's tool calls run."""

    definitions: list[dict[str, Any]]  # the tools, as the model is told of them

    def execute(self, name: str, tool_input: dict[str, Any]) -> Observation: ...


class Observer(Protocol):
    """Hears the loop: each turn (numbered across the task) and each tool call's outcome."""

    def on_turn(self, number: int, turn: Turn) -> None: ...

    def on_observation(self, call: dict[str, Any], observation: Observation) -> None: ...


class Accounting:
    """Adds each turn's usage and cost, and each tool call, to the task's ``Usage``."""

    def __init__(self, usage: Usage) -> None:
        self.usage = usage

    def on_turn(self, number: int, turn: Turn) -> None:
        self.usage.turns = number
        self.usage.input_tokens += turn.usage.input_tokens
        self.usage.output_tokens += turn.usage.output_tokens
        self.usage.cache_creation_tokens += turn.usage.cache_write_tokens
        self.usage.cache_read_tokens += turn.usage.cache_read_tokens
        self.usage.cost_usd += turn.cost_usd

    def on_observation(self, call: dict[str, Any], observation: Observation) -> None:
        self.usage.tool_calls += 1


class AgentLoop:
    """One task's conversation with the model, within its budget."""

    def __init__(
        self,
        model: Model,
        environment: Environment,
        budget: Budget,
        usage: Usage,
        *,
        started: float,
        cancel: threading.Event,
        observers: tuple[Observer, ...] = (),
    ) -> None:
        """``started``: the task's start (time.monotonic()), from which ``max_seconds`` runs."""
        self.model, self.environment = model, environment
        self.budget, self.usage, self.cancel = budget, usage, cancel
        self.deadline = started + budget.max_seconds
        self.observers = (Accounting(usage), *observers)

    def run(self, conversation: Conversation) -> str:
        """Step until the model answers without a tool call; returns its final text."""
        while True:
            self.check()
            turn = self.step(conversation)
            if not turn.tool_calls:
                # It becomes a commit message (a git argument) and a PR body: no NULs.
                conversation.summary = turn.text.replace("\0", "\ufffd")
                return conversation.summary

    def step(self, conversation: Conversation) -> Turn:
        """Query the model, then run the tool calls of its turn: observe(query())."""
        turn = self.model.query(
            conversation, self.environment.definitions, self.deadline, self.cancel
        )
        conversation.messages.append({"role": "assistant", "content": turn.content})
        number = self.usage.turns + 1
        for observer in self.observers:
            observer.on_turn(number, turn)
        results = [self.observe(call) for call in turn.tool_calls]
        if results:
            conversation.messages.append({"role": "user", "content": results})
        return turn

    def observe(self, call: dict[str, Any]) -> dict[str, Any]:
        """Run one tool call in the environment; its result block for the next query."""
        if self.cancel.is_set():
            raise Cancelled("cancelled between tool calls")
        observation = self.environment.execute(call["name"], call["input"])
        for observer in self.observers:
            observer.on_observation(call, observation)
        return {
            "type": "tool_result",
            "tool_use_id": call["id"],
            "content": observation.content,
            "is_error": observation.is_error,
        }

    def check(self) -> None:
        """Raise Cancelled or LimitExceeded when the loop must not query again."""
        usage, budget = self.usage, self.budget
        if self.cancel.is_set():
            raise Cancelled("cancelled")
        if usage.turns >= budget.max_turns:
            raise LimitExceeded("turns", usage.turns, budget.max_turns)
        if usage.tokens >= budget.max_tokens:
            raise LimitExceeded("tokens", usage.tokens, budget.max_tokens)
        if usage.cost_usd >= budget.max_dollars:
            raise LimitExceeded("dollars", round(usage.cost_usd, 4), budget.max_dollars)
        if time.monotonic() >= self.deadline:
            elapsed = budget.max_seconds + time.monotonic() - self.deadline
            raise LimitExceeded("seconds", round(elapsed), budget.max_seconds)
