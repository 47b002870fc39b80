"""Long tasks never die on the context window: the API's context editing or the agent's own
clearing, prompt caching that keeps hitting, and recovery from a request refused as too long.
Driven through the real anthropic SDK against the Claude simulator, with a persistent shell."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anthropic
import pytest

from agent_app import context, prompts
from agent_app.config import AgentConfig, ModelPrice
from agent_app.context import ContextPolicy
from agent_app.exceptions import ContextExhausted, LimitExceeded
from agent_app.messages_api import MessagesApiModel, RateGate
from agent_app.model import Conversation
from bench.context_management import KEY, long_task_scenario, run_task, write_log
from cluster_core.errors import ConfigError
from simulators.claude import ClaudeSimulator, SimulatorConfig, create_app
from simulators.server import BackgroundServer

PRICE = ModelPrice(input=3.0, output=15.0, cache_write=3.75, cache_read=0.3)
WINDOW = 100_000  # the simulated model's window, in the simulator's tokens (4 characters)
OUTPUT_CHARS = 20_000  # each tool result: 20 KB, about 5,000 tokens


@pytest.fixture
def claude():
    sim = ClaudeSimulator(
        config=SimulatorConfig(api_keys=frozenset({KEY}), context_window_tokens=WINDOW)
    )
    with BackgroundServer(create_app(simulator=sim)) as server:
        yield server.url, sim


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    write_log(repo, OUTPUT_CHARS)
    return repo


def answered(sim: ClaudeSimulator) -> list:
    return [r for r in sim.requests() if r.path == "/v1/messages" and r.status == 200]


@pytest.mark.parametrize("editing", ["api", "client"])
def test_a_200_turn_task_with_20_kb_outputs_stays_within_the_window(claude, checkout, editing):
    url, sim = claude
    sim.add_scenarios([long_task_scenario(200)])
    policy = ContextPolicy(editing=editing, window=WINDOW, trigger=WINDOW // 2, keep=3)
    summary, usage, conversation = run_task(url, checkout, policy, 200, OUTPUT_CHARS, caching=True)

    assert summary == "Done: read every log."
    assert usage.turns == 201 and usage.tool_calls == 200
    replies = answered(sim)
    assert len(replies) == 201 and all(r.status == 200 for r in sim.requests())
    largest = max(r.prompt_tokens for r in replies)
    assert largest <= WINDOW - 256, largest  # the largest request the model read fits
    assert largest > policy.trigger * 0.9  # and the context was used, not starved
    # The system prompt and the task statement are never cleared.
    last = replies[-1].body
    assert last["system"] == conversation.system
    assert "Resolve GitHub issue #7" in str(last["messages"][0]["content"])
    # The newest results are whole; the oldest were cleared: by the API in what the model
    # read (the history the agent keeps and sends is whole), or in the history itself.
    results = context.tool_results(conversation.messages)
    assert results[-1]["content"].startswith("log line 000000")
    if editing == "api":
        assert all(r.applied_edits for r in replies[-100:])
        assert all(b["content"] != context.PLACEHOLDER for b in results)
        assert conversation.cleared_results > 150
    else:
        assert all(r.applied_edits is None for r in replies)
        assert results[0]["content"] == context.PLACEHOLDER
        assert sum(b["content"] == context.PLACEHOLDER for b in results) > 150
    # Prompt caching keeps working after clearing: most turns read from the cache.
    reading = [r for r in replies if r.usage["cache_read_input_tokens"] > 0]
    assert len(reading) >= 0.8 * len(replies), (len(reading), len(replies))
    # The clearing happens in sweeps, so the prefix between them is read, not written again.
    assert usage.cache_read_tokens > 2 * usage.cache_creation_tokens, usage


def test_a_request_refused_as_too_long_is_made_smaller_and_sent_again(claude, checkout):
    """An agent that believes the window is larger than it is (a misconfigured window, a
    gateway with a smaller model) is refused; it clears old output and carries on."""
    url, sim = claude
    sim.add_scenarios([long_task_scenario(30)])
    policy = ContextPolicy(editing="client", window=400_000, trigger=300_000, keep=3)
    summary, _, _ = run_task(url, checkout, policy, 30, OUTPUT_CHARS, caching=True)

    assert summary == "Done: read every log."
    refused = [r for r in sim.requests() if r.status == 400]
    assert refused and all(r.error_type == "invalid_request_error" for r in refused)
    assert len(answered(sim)) == 31


def test_too_much_output_asked_for_lowers_max_tokens(claude, checkout):
    url, sim = claude
    sim.add_scenarios([long_task_scenario(6)])
    client = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=30)
    # 8,192 output tokens on top of a prompt near 95,000 does not fit a 100,000 window.
    model = MessagesApiModel(
        client,
        "claude-sonnet-4-6",
        8192,
        PRICE,
        RateGate(),
        ContextPolicy(editing="client", window=400_000, trigger=300_000, keep=3),
    )
    conversation = Conversation(
        system=[{"type": "text", "text": "rules"}],
        messages=[{"role": "user", "content": "Resolve GitHub issue #7: " + "y" * 380_000}],
    )
    turn = model.query(conversation, [], time.monotonic() + 60, threading.Event())
    statuses = [r.status for r in sim.requests()]
    assert statuses == [400, 200], statuses
    assert turn.content
    assert sim.requests()[1].body["max_tokens"] < 8192


def test_a_conversation_with_nothing_left_to_clear_ends_as_a_context_limit(claude):
    url, sim = claude
    client = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=30)
    model = MessagesApiModel(client, "claude-sonnet-4-6", 256, PRICE, RateGate())
    conversation = Conversation(
        system=[{"type": "text", "text": "rules"}],
        messages=[{"role": "user", "content": "z" * (WINDOW * 5)}],  # the task alone is too big
    )
    with pytest.raises(ContextExhausted) as ended:
        model.query(conversation, [], time.monotonic() + 60, threading.Event())
    assert isinstance(ended.value, LimitExceeded) and ended.value.limit == "context"
    assert "does not fit the model's context window" in str(ended.value)
    assert [r.status for r in sim.requests()] == [400]  # no retry loop


def test_the_system_prompt_is_the_same_for_every_task_of_a_repository(tmp_path):
    first = prompts.system_blocks("acme/widgets", "backend")
    assert first == prompts.system_blocks("acme/widgets", "backend")
    task = {"id": 1, "issue_number": 7, "title": "T", "body": "B"}
    assert "claude/issue-7-t" in str(prompts.task_message(task, tmp_path, "claude/issue-7-t"))
    assert "claude/issue" not in str(first)


def test_context_settings_are_checked(tmp_path):
    base = {"agent_key": "k", "anthropic_api_key": "a"}
    (tmp_path / "none.toml").write_text("")
    for bad in (
        {"context_editing": "server"},
        {"context_trigger_tokens": 300_000},
        {"context_trigger_tokens": 0},
    ):
        with pytest.raises(ConfigError, match="context"):
            AgentConfig.load(path=tmp_path / "none.toml", environ={}, **base, **bad).validate()
    policy = AgentConfig.load(path=tmp_path / "none.toml", environ={}, **base).context_policy()
    assert policy == ContextPolicy("api", 200_000, 100_000, 5)
    (edit,) = context.api_edits(results=10, cleared=4)["edits"]
    assert edit["keep"] == {"type": "tool_uses", "value": 6}
