"""Tokens billed for one long task with and without context management and prompt caching.

The same scripted task (a number of bash calls that each print 20 KB, then a summary) runs
through the agent's own loop, Messages API model and persistent shell against the Claude
simulator, once per variant, in one run:

- no context management: the agent only recovers when the API refuses a request as too long
  (the baseline: what a loop without it would pay, had it not died at the first refusal);
- the API's context editing (``context_editing = "api"``, the default);
- the agent's own clearing (``context_editing = "client"``);

each with prompt caching on and off. Prices are Sonnet's list prices (dollars per million
tokens: 3 input, 3.75 cache write, 0.30 cache read, 15 output).

    .venv/bin/python -m bench.context_management [--turns 200] [--output-kb 20]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import anthropic

from agent_app import prompts
from agent_app.agent_loop import AgentLoop, Budget, Usage
from agent_app.config import DEFAULT_PRICES, ModelPrice
from agent_app.context import ContextPolicy
from agent_app.messages_api import MessagesApiModel, RateGate
from agent_app.model import Conversation
from agent_app.sandbox import CommandRunner, Policy
from agent_app.tools import ToolSet
from bench.report import machine, table
from simulators.claude import ClaudeSimulator, SimulatorConfig, create_app
from simulators.server import BackgroundServer

KEY = "sk-ant-bench"
MODEL = "claude-sonnet-4-6"
PRICE = ModelPrice(**DEFAULT_PRICES["sonnet"])
TASK = {"id": 1, "issue_number": 7, "title": "Read the logs", "body": "All of them."}


def long_task_scenario(turns: int) -> dict:
    """The Claude simulator's script: ``turns`` calls of ``cat big.log``, then a summary."""
    steps = [
        [
            {"text": f"Step {n}: reading the log."},
            {"tool_use": {"name": "bash", "input": {"command": f"cat big.log # {n}"}}},
        ]
        for n in range(turns)
    ]
    return {
        "name": "long-task",
        "match": {"first_user": f"Resolve GitHub issue #{TASK['issue_number']}"},
        "turns": steps,
        "final": "Done: read every log.",
    }


def write_log(repo: Path, size: int) -> None:
    """``big.log`` of about ``size`` bytes of numbered lines."""
    line = "log line {:06d} ........\n"
    repo.joinpath("big.log").write_text("".join(line.format(n) for n in range(size // 24)))


@dataclass
class Outcome:
    usage: Usage
    summary: str
    refused: int
    largest_prompt: int
    seconds: float


def run_task(
    url: str, repo: Path, policy: ContextPolicy, turns: int, output_chars: int, caching: bool
) -> tuple[str, Usage, Conversation]:
    """The scripted task through the agent's loop; returns its summary, usage and
    conversation (tests/agent/test_context.py reads it too)."""
    client = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=60)
    model = MessagesApiModel(client, MODEL, 256, PRICE, RateGate(), policy, caching=caching)
    runner = CommandRunner(Policy(mode="none"), secrets=[], output_chars=output_chars)
    tools = ToolSet(repo, runner, command_timeout=30, cancel=threading.Event())
    conversation = Conversation(
        system=prompts.system_blocks("acme/widgets", "backend"),
        messages=[{"role": "user", "content": prompts.task_message(TASK, repo, "b")}],
    )
    usage = Usage()
    budget = Budget(max_turns=turns + 5, max_tokens=10**10, max_dollars=10**6, max_seconds=3600)
    cancel = threading.Event()
    loop = AgentLoop(model, tools, budget, usage, started=time.monotonic(), cancel=cancel)
    try:
        return loop.run(conversation), usage, conversation
    finally:
        tools.close()


def measure(
    policy: ContextPolicy, turns: int, output_chars: int, caching: bool, window: int
) -> Outcome:
    sim = ClaudeSimulator(
        [long_task_scenario(turns)],
        SimulatorConfig(api_keys=frozenset({KEY}), context_window_tokens=window),
    )
    repo = Path(tempfile.mkdtemp(prefix="ccc-bench-context-"))
    try:
        write_log(repo, output_chars)
        with BackgroundServer(create_app(simulator=sim)) as server:
            started = time.perf_counter()
            summary, usage, _ = run_task(server.url, repo, policy, turns, output_chars, caching)
            seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(repo, ignore_errors=True)
    sent = [r for r in sim.requests() if r.path == "/v1/messages"]
    return Outcome(
        usage,
        summary,
        refused=sum(1 for r in sent if r.status == 400),
        largest_prompt=max((r.prompt_tokens or 0) for r in sent if r.status == 200),
        seconds=seconds,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.context_management", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--turns", type=int, default=200, help="bash calls in the task")
    parser.add_argument("--output-kb", type=int, default=20, help="output of each call (KB)")
    parser.add_argument("--window", type=int, default=200_000, help="context window (tokens)")
    args = parser.parse_args(argv)
    output_chars = args.output_kb * 1000
    default = ContextPolicy(window=args.window, trigger=args.window // 2)
    # No management: the agent believes the window is a hundred times larger, so it clears
    # nothing until the API refuses a request.
    unmanaged = ContextPolicy("client", window=args.window * 100, trigger=args.window * 50)
    variants = {
        "none (recovery from refusals only)": unmanaged,
        "API context editing (default)": default,
        "agent's own clearing (client)": ContextPolicy("client", args.window, args.window // 2),
    }
    rows, baseline = [], None
    for name, policy in variants.items():
        for caching in (False, True):
            outcome = measure(policy, args.turns, output_chars, caching, args.window)
            usage = outcome.usage
            baseline = baseline or usage.cost_usd
            rows.append(
                (
                    name,
                    "on" if caching else "off",
                    usage.turns,
                    outcome.refused,
                    f"{outcome.largest_prompt:,}",
                    f"{usage.input_tokens:,}",
                    f"{usage.cache_creation_tokens:,}",
                    f"{usage.cache_read_tokens:,}",
                    f"{usage.cost_usd:.2f}",
                    f"{usage.cost_usd / baseline:.2f}",
                    f"{outcome.seconds:.1f}",
                )
            )
    print(f"# Context management and caching on a long task\n\n{machine()}\n")
    title = (
        f"{args.turns} bash calls of {args.output_kb} KB each, {args.window:,}-token window, "
        f"{MODEL} list prices"
    )
    header = ("context management", "caching", "turns", "refused", "largest prompt",
              "input", "cache write", "cache read", "$", "vs baseline", "s")  # fmt: skip
    print(table(title, header, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
