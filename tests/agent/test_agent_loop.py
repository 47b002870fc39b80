"""The agent core on its own: the loop with a scripted model and a workbench environment (both
real implementations of the loop's protocols), each limit, cancellation, the observers, and the
Messages API model's retries, backoff and shared rate gate against the Claude simulator."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import anthropic
import pytest

from agent_app.agent_loop import AgentLoop, Budget, Usage
from agent_app.config import ModelPrice
from agent_app.exceptions import Cancelled, LimitExceeded
from agent_app.executor import LoopExecutor
from agent_app.messages_api import MessagesApiModel, RateGate, price_of, with_cache_breakpoint
from agent_app.model import Conversation, Turn, TurnUsage
from agent_app.tools import TOOL_DEFINITIONS
from simulators.claude import ClaudeSimulator, SimulatorConfig, create_app
from simulators.server import BackgroundServer

ROOMY = Budget(max_turns=50, max_tokens=10**9, max_dollars=100.0, max_seconds=600)
PRICE = ModelPrice(input=3.0, output=15.0, cache_write=3.75, cache_read=0.3)
API_KEY = "sk-ant-loop-test"


def tool_turn(*commands: str, tokens: int = 100, cost: float = 0.01) -> Turn:
    """A turn that runs ``commands`` with the bash tool."""
    calls = [
        {"type": "tool_use", "id": f"toolu_{i}_{c[:8]}", "name": "bash", "input": {"command": c}}
        for i, c in enumerate(commands)
    ]
    content = [{"type": "text", "text": "Let me look."}, *calls]
    return Turn(content, "tool_use", TurnUsage(input_tokens=tokens, output_tokens=10), cost)


def final_turn(text: str = "Done: added the endpoint.") -> Turn:
    return Turn([{"type": "text", "text": text}], "end_turn", TurnUsage(50, 20), 0.002)


@dataclass
class ScriptedModel:
    """A model that answers with the next of its turns (the last one again when they run out)."""

    turns: list[Turn]
    queries: list[dict[str, Any]] = field(default_factory=list)

    def query(self, conversation, tools, deadline, cancel) -> Turn:
        self.queries.append({"messages": list(conversation.messages), "tools": tools})
        return self.turns[min(len(self.queries), len(self.turns)) - 1]


@dataclass
class Observation:
    content: str
    is_error: bool = False


@dataclass
class Workbench:
    """An environment that answers every bash call with its own echo, and may act on a call."""

    on_call: Any = None
    calls: list[tuple[str, dict]] = field(default_factory=list)
    definitions: list[dict] = field(default_factory=lambda: TOOL_DEFINITIONS)

    def execute(self, name: str, tool_input: dict) -> Observation:
        self.calls.append((name, tool_input))
        if self.on_call:
            self.on_call(len(self.calls))
        return Observation(f"ran {tool_input['command']}", is_error="fail" in tool_input["command"])


def loop_for(model, environment=None, budget=ROOMY, usage=None, cancel=None, **options):
    return AgentLoop(
        model,
        environment or Workbench(),
        budget,
        usage if usage is not None else Usage(),
        started=options.pop("started", time.monotonic()),
        cancel=cancel or threading.Event(),
        **options,
    )


def conversation() -> Conversation:
    return Conversation(system=[{"type": "text", "text": "rules"}], messages=[
        {"role": "user", "content": "Issue #1: add /health"}
    ])  # fmt: skip


def test_the_loop_runs_tool_calls_until_the_model_answers_without_one():
    model = ScriptedModel([tool_turn("ls", "cat app.py"), tool_turn("pytest -q"), final_turn()])
    bench, usage, talk = Workbench(), Usage(), conversation()
    summary = loop_for(model, bench, usage=usage).run(talk)
    assert summary == "Done: added the endpoint."
    assert [call[1]["command"] for call in bench.calls] == ["ls", "cat app.py", "pytest -q"]
    assert model.queries[0]["tools"] == TOOL_DEFINITIONS
    # Each tool result answers its call, in the next user message the model sees.
    results = talk.messages[2]["content"]
    assert [r["tool_use_id"] for r in results] == ["toolu_0_ls", "toolu_1_cat app."]
    assert results[1]["content"] == "ran cat app.py" and not results[1]["is_error"]
    assert [m["role"] for m in talk.messages] == ["user", *["assistant", "user"] * 2, "assistant"]
    assert (usage.turns, usage.tool_calls, usage.input_tokens, usage.output_tokens) == (
        3, 3, 250, 40,
    )  # fmt: skip
    assert usage.cost_usd == pytest.approx(0.022)


def test_a_failing_command_is_an_error_observation_not_the_end():
    model = ScriptedModel([tool_turn("make fail"), final_turn()])
    talk = conversation()
    loop_for(model).run(talk)
    assert talk.messages[2]["content"][0]["is_error"] is True


def test_the_summary_never_carries_nul():
    assert loop_for(ScriptedModel([final_turn("a\0b")])).run(conversation()) == "a\ufffdb"


@pytest.mark.parametrize(
    ("budget", "limit"),
    [
        (Budget(max_turns=2, max_tokens=10**9, max_dollars=100, max_seconds=600), "turns"),
        (Budget(max_turns=50, max_tokens=500, max_dollars=100, max_seconds=600), "tokens"),
        (Budget(max_turns=50, max_tokens=10**9, max_dollars=0.05, max_seconds=600), "dollars"),
    ],
)
def test_each_budget_limit_stops_the_loop_before_the_next_query(budget, limit):
    model = ScriptedModel([tool_turn("sleep 1", tokens=200, cost=0.02)])  # never done
    usage = Usage()
    with pytest.raises(LimitExceeded) as stopped:
        loop_for(model, budget=budget, usage=usage).run(conversation())
    assert stopped.value.limit == limit
    # It stopped at the limit, not a turn later.
    assert len(model.queries) == {"turns": 2, "tokens": 3, "dollars": 3}[limit]
    assert usage.turns == len(model.queries)


def test_the_time_limit_counts_from_the_task_start():
    model = ScriptedModel([final_turn()])
    budget = Budget(max_turns=50, max_tokens=10**9, max_dollars=100, max_seconds=60)
    with pytest.raises(LimitExceeded) as stopped:
        loop_for(model, budget=budget, started=time.monotonic() - 61).run(conversation())
    assert stopped.value.limit == "seconds" and model.queries == []


def test_cancellation_before_a_query_asks_nothing():
    cancel = threading.Event()
    cancel.set()
    model = ScriptedModel([final_turn()])
    with pytest.raises(Cancelled):
        loop_for(model, cancel=cancel).run(conversation())
    assert model.queries == []


def test_cancellation_between_tool_calls_runs_no_further_call():
    cancel = threading.Event()
    bench = Workbench(on_call=lambda n: cancel.set())
    model = ScriptedModel([tool_turn("first", "second", "third"), final_turn()])
    usage = Usage()
    with pytest.raises(Cancelled):
        loop_for(model, bench, usage=usage, cancel=cancel).run(conversation())
    assert [c[1]["command"] for c in bench.calls] == ["first"]
    assert usage.turns == 1 and usage.input_tokens == 100  # the turn was billed: it counts


def test_the_executor_writes_a_filtered_transcript_and_reports_each_turn(tmp_path):
    secret = "sk-ant-api03-very-secret-value"
    model = ScriptedModel([tool_turn(f"echo {secret}"), final_turn()])
    events: list[dict] = []
    transcript = tmp_path / "transcript.jsonl"
    LoopExecutor(model, [secret]).run(
        conversation(), Workbench(), ROOMY, Usage(), time.monotonic(), transcript,
        threading.Event(), events.append,
    )  # fmt: skip
    lines = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [("turn" in line, "tool" in line) for line in lines] == [
        (True, False), (False, True), (True, False),
    ]  # fmt: skip
    assert secret not in transcript.read_text()
    assert lines[1]["output"].startswith("ran echo ") and lines[0]["cost_usd"] == 0.01
    assert [e["kind"] for e in events] == ["turn", "turn"]
    assert events[0]["data"] == {
        "turn": 1,
        "stop_reason": "tool_use",
        "tool_calls": ["bash"],
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": 0.01,
    }


# --- the Messages API model ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def claude():
    sim = ClaudeSimulator(config=SimulatorConfig(api_keys=frozenset({API_KEY})))
    with BackgroundServer(create_app(simulator=sim)) as server:
        yield server.url, sim


def api_model(url: str, gate: RateGate | None = None) -> MessagesApiModel:
    client = anthropic.Anthropic(base_url=url, api_key=API_KEY, max_retries=0, timeout=20)
    return MessagesApiModel(client, "claude-sonnet-4-6", 256, PRICE, gate or RateGate())


def test_the_api_model_returns_one_priced_turn_with_a_cache_breakpoint(claude):
    url, sim = claude
    sim.reset()
    turn = api_model(url).query(
        conversation(), TOOL_DEFINITIONS, time.monotonic() + 60, threading.Event()
    )
    assert turn.stop_reason in {"end_turn", "tool_use"} and turn.content
    assert turn.cost_usd == pytest.approx(price_of(turn.usage, PRICE)) and turn.cost_usd > 0
    assert turn.raw_usage["input_tokens"] == turn.usage.input_tokens
    (request,) = sim.requests()
    assert request.status == 200
    marked = with_cache_breakpoint(conversation().messages)[-1]["content"][-1]
    assert marked["cache_control"] == {"type": "ephemeral"}


def test_rate_limits_and_overload_are_retried_after_the_time_the_api_asks(claude):
    url, sim = claude
    sim.reset()
    sim.inject("rate_limit", count=1, retry_after=0.3)
    sim.inject("overloaded", count=1)
    sim.inject("server_error", count=1)
    began = time.monotonic()
    turn = api_model(url).query(conversation(), TOOL_DEFINITIONS, began + 120, threading.Event())
    assert turn.content
    assert [entry.status for entry in sim.requests()] == [429, 529, 500, 200]
    # retry-after 0.3 s, then backoff of 4 s and 8 s (attempts 2 and 3), each with up to 25 %
    # jitter: the model waited at least what it was told.
    assert time.monotonic() - began >= 0.3 + 4 + 8


def test_one_tasks_rate_limit_holds_back_the_others_through_the_shared_gate(claude):
    url, sim = claude
    sim.reset()
    gate = RateGate()
    sim.inject("rate_limit", count=1, retry_after=2)
    api_model(url, gate).query(
        conversation(), TOOL_DEFINITIONS, time.monotonic() + 60, threading.Event()
    )
    gate.back_off(30)  # as if that task had just been told to wait half a minute
    cancel = threading.Event()
    other = threading.Thread(target=lambda: time.sleep(0.3) or cancel.set())
    other.start()
    with pytest.raises(Cancelled):  # the other task waits at the gate until it is cancelled
        api_model(url, gate).query(conversation(), TOOL_DEFINITIONS, time.monotonic() + 60, cancel)
    other.join()
    assert len(sim.requests()) == 2  # the 429 and its retry; the waiting task sent nothing
    with pytest.raises(LimitExceeded):  # a wait longer than the time left ends the task now
        api_model(url, gate).query(
            conversation(), TOOL_DEFINITIONS, time.monotonic() + 5, threading.Event()
        )


def test_a_refusal_of_the_request_itself_is_not_retried(claude):
    url, sim = claude
    sim.reset()
    client = anthropic.Anthropic(base_url=url, api_key="sk-ant-wrong", max_retries=0, timeout=20)
    model = MessagesApiModel(client, "claude-sonnet-4-6", 256, PRICE, RateGate())
    with pytest.raises(anthropic.AuthenticationError):
        model.query(conversation(), TOOL_DEFINITIONS, time.monotonic() + 60, threading.Event())
    assert len(sim.requests()) == 1
