"""The Claude API simulator, driven by the real anthropic SDK over a real socket."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from click.testing import CliRunner

from simulators.claude import ClaudeSimulator, SimulatorConfig, create_app, load_scenarios
from simulators.claude.cli import EXAMPLE_SCENARIOS, claude
from simulators.claude.exceptions import ScenarioError
from simulators.claude.scenarios import FALLBACK_PREFIX
from simulators.claude.usage import REPLY_PRIMER_TOKENS
from simulators.server import BackgroundServer

MODEL = "claude-sonnet-4-6"
KEY = "sk-ant-test-key"
BASH = {"type": "bash_20250124", "name": "bash"}
EDITOR = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
CLIENT_TOOLS = [BASH, EDITOR]
SYSTEM = "You are a coding agent working in a git checkout. Use the tools to change files."


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_server() -> Iterator[tuple[str, ClaudeSimulator]]:
    """One simulator server for the module (starting and stopping one costs half a second)."""
    sim = ClaudeSimulator(config=SimulatorConfig(api_keys=frozenset({KEY})))
    with BackgroundServer(create_app(simulator=sim)) as server:
        yield server.url, sim


@pytest.fixture
def serving(shared_server):
    """``with serving(scenarios, **config) as (url, sim)``: the shared server, reset first."""
    url, sim = shared_server

    @contextmanager
    def use(scenarios: Any = (), **config: Any) -> Iterator[tuple[str, ClaudeSimulator]]:
        original = sim.config
        sim.reset()
        sim.add_scenarios(scenarios, replace=True)
        sim.config = replace(original, **config)
        try:
            yield url, sim
        finally:
            sim.config = original

    return use


def make_client(url: str, **options: Any) -> anthropic.Anthropic:
    options.setdefault("api_key", KEY)
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", 20)
    return anthropic.Anthropic(base_url=url, **options)


def raw_post(url: str, body: object, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """POST without the SDK (to send what the SDK would not): status, headers, body."""
    request = urllib.request.Request(  # noqa: S310 - the URL is our own 127.0.0.1 server
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def admin(url: str, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """Call a /_sim endpoint: (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310
        f"{url}/_sim/{path}", data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Workspace:
    """Executes Claude's client tools (bash, text editor) for real in a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # The commands run `python -m pytest`: the venv's python first on PATH.
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def run(self, name: str, tool_input: dict[str, Any]) -> tuple[str, bool]:
        """The tool's output and whether it is an error."""
        if name == "bash":
            done = subprocess.run(
                ["bash", "-c", tool_input["command"]],
                cwd=self.root,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            return f"{done.stdout}{done.stderr}\n[exit status {done.returncode}]", False
        path = self.root / tool_input["path"]
        command = tool_input["command"]
        if command == "view":
            lines = path.read_text().splitlines()
            return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(lines, 1)), False
        if command == "str_replace":
            text = path.read_text()
            if text.count(tool_input["old_str"]) != 1:
                return "Error: old_str must occur exactly once", True
            path.write_text(text.replace(tool_input["old_str"], tool_input["new_str"]))
            return f"The file {tool_input['path']} has been edited.", False
        if command == "create":
            path.write_text(tool_input["file_text"])
            return f"File created successfully at: {tool_input['path']}", False
        return f"Error: unknown command {command}", True


def run_agent(
    client: anthropic.Anthropic, workspace: Workspace, prompt: str, *, stream: bool
) -> tuple[anthropic.types.Message, list[dict[str, Any]]]:
    """A minimal tool-use loop: ask, run the tool calls, send the results back, until done."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    for _ in range(12):
        request = {
            "model": MODEL,
            "max_tokens": 4096,
            "system": SYSTEM,
            "tools": CLIENT_TOOLS,
            "messages": messages,
        }
        if stream:
            with client.messages.stream(**request) as events:
                reply = events.get_final_message()
        else:
            reply = client.messages.create(**request)
        messages.append(reply.to_param())
        if reply.stop_reason != "tool_use":
            return reply, messages
        results = []
        for block in reply.content:
            if block.type == "tool_use":
                output, is_error = workspace.run(block.name, block.input)
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": block.id,
                        "content": output,
                        "is_error": is_error,
                    }
                )
        messages.append({"role": "user", "content": results})
    raise AssertionError("the conversation did not end within 12 turns")


def flask_service(root: Path) -> Path:
    """The small service the add-health-endpoint example works on."""
    (root / "app.py").write_text(
        textwrap.dedent('''\
            """A tiny web service."""
            from flask import Flask

            app = Flask(__name__)


            @app.get("/")
            def index():
                return {"message": "hello"}
            ''')
    )
    (root / "test_app.py").write_text(
        textwrap.dedent("""\
            from app import app


            def test_health():
                assert app.test_client().get("/health").get_json() == {"status": "ok"}
            """)
    )
    return root


def calc_package(root: Path, *, buggy: bool) -> Path:
    """The package of the fix-failing-tests example, with or without its bug."""
    operator = "-" if buggy else "+"
    (root / "calc.py").write_text(f"def add(a, b):\n    return a {operator} b\n")
    (root / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    return root


SCRIPTED = {
    "name": "greeter",
    "match": {"first_user": "^Say hello"},
    "turns": [
        [
            {"text": "Checking the name."},
            {"tool_use": {"name": "bash", "input": {"command": "id"}}},
        ],
        "Hello!",
    ],
    "final": "Nothing more to say.",
}


# --- conversations -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_tool_use_conversation_edits_a_real_workspace(serving, tmp_path, stream):
    workspace = Workspace(flask_service(tmp_path))
    with serving(EXAMPLE_SCENARIOS) as (url, sim):
        reply, messages = run_agent(
            make_client(url), workspace, "Issue #12: Add a /health endpoint", stream=stream
        )
        log = sim.requests()

    assert reply.stop_reason == "end_turn"
    assert reply.content[0].text.endswith("and the tests pass.")
    assert reply.id.startswith("msg_")
    assert '@app.get("/health")' in (tmp_path / "app.py").read_text()
    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"], cwd=tmp_path, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout
    # view, str_replace, bash, final: four answers, each to one more assistant turn.
    assert [entry.turn for entry in log] == [0, 1, 2, 3]
    assert {entry.scenario for entry in log} == {"add-health-endpoint"}
    assert all(entry.stream is stream and entry.status == 200 for entry in log)
    assert log[0].tools == ["bash", "str_replace_based_edit_tool"]
    tool_ids = [b["id"] for m in messages if m["role"] == "assistant" for b in _dicts(m)]
    assert all(tool_id.startswith("toolu_01") for tool_id in tool_ids)
    assert len(set(tool_ids)) == 3


def _dicts(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        b.to_dict() for b in message["content"] if not isinstance(b, dict) and b.type == "tool_use"
    ]


@pytest.mark.parametrize(
    ("buggy", "final"),
    [(True, "Fixed `add` in calc.py"), (False, "All tests already pass")],
    ids=["tests-fail", "tests-pass"],
)
def test_conditional_turn_follows_the_tool_result(serving, tmp_path, buggy, final):
    workspace = Workspace(calc_package(tmp_path, buggy=buggy))
    with serving(EXAMPLE_SCENARIOS) as (url, sim):
        reply, _ = run_agent(
            make_client(url), workspace, "Please fix the failing tests", stream=False
        )
        turns = len(sim.requests())

    assert reply.content[0].text.startswith(final)
    assert "return a + b" in (tmp_path / "calc.py").read_text()
    # The failing branch views, edits and reruns: three more turns than the passing one.
    assert turns == (5 if buggy else 2)


def test_replaying_a_conversation_gets_the_same_answers(serving):
    messages = [{"role": "user", "content": "Say hello to the user"}]
    with serving([SCRIPTED]) as (url, _):
        client = make_client(url)
        first = client.messages.create(model=MODEL, max_tokens=100, tools=[BASH], messages=messages)
        # A restarted agent replays the same request: the simulator holds no conversation state.
        again = client.messages.create(model=MODEL, max_tokens=100, tools=[BASH], messages=messages)
        messages += [
            first.to_param(),
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": first.content[1].id, "content": "uid=0"}
                ],
            },
        ]
        second = client.messages.create(
            model=MODEL, max_tokens=100, tools=[BASH], messages=messages
        )
        messages += [second.to_param(), {"role": "user", "content": "Anything else?"}]
        exhausted = client.messages.create(
            model=MODEL, max_tokens=100, tools=[BASH], messages=messages
        )

    assert first.content[1].id == again.content[1].id
    assert first.id != again.id
    assert first.content[1].input == {"command": "id"}
    assert (first.stop_reason, second.stop_reason) == ("tool_use", "end_turn")
    assert second.content[0].text == "Hello!"
    assert exhausted.content[0].text == "Nothing more to say."
    assert exhausted.stop_reason == "end_turn"


def test_unmatched_request_gets_the_fallback_answer(serving):
    with serving([SCRIPTED]) as (url, sim):
        reply = make_client(url).messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Refactor the db"}]
        )
        entry = sim.requests()[0]

    assert reply.content[0].text.startswith(FALLBACK_PREFIX)
    assert "Refactor the db" in reply.content[0].text
    assert reply.stop_reason == "end_turn"
    assert entry.scenario == "__no_scenario__"


def test_named_groups_of_the_match_fill_the_script(serving):
    scenario = {
        "name": "vars",
        "match": {"first_user": r"branch (?P<branch>\S+)"},
        "turns": [
            [
                {
                    "tool_use": {
                        "name": "bash",
                        "input": {"command": "git checkout ${branch} && echo $HOME"},
                    }
                }
            ]
        ],
    }
    with serving([scenario]) as (url, _):
        reply = make_client(url).messages.create(
            model=MODEL,
            max_tokens=100,
            tools=[BASH],
            messages=[{"role": "user", "content": "Work on branch fix-1"}],
        )

    assert reply.content[0].input == {"command": "git checkout fix-1 && echo $HOME"}


def test_max_tokens_and_stop_sequences_cut_the_answer(serving):
    long_text = {"name": "long", "turns": ["word " * 200 + "STOP and more"]}
    with serving([long_text]) as (url, _):
        client = make_client(url)
        ask = {"model": MODEL, "messages": [{"role": "user", "content": "Talk"}]}
        short = client.messages.create(max_tokens=10, **ask)
        stopped = client.messages.create(max_tokens=1000, stop_sequences=["STOP"], **ask)

    assert short.stop_reason == "max_tokens"
    assert short.usage.output_tokens == 10
    assert len(short.content[0].text) == 40
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == "STOP"
    assert "STOP" not in stopped.content[0].text


def test_claude_code_style_request_is_accepted(serving):
    """Claude Code sends ?beta=true, a role "system" message and extra body fields."""
    schema = {"type": "object", "properties": {}}
    body = {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": True,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "system", "content": "Working directory: /srv/work\nPlatform: linux"},
            {"role": "user", "content": [{"type": "text", "text": "Create hello.txt, please"}]},
        ],
        "tools": [
            {"name": "Bash", "description": "Run", "input_schema": schema},
            {
                "name": "Write",
                "description": "Write",
                "input_schema": schema,
                "defer_loading": False,
            },
        ],
        "thinking": {"type": "disabled"},
        "metadata": {"user_id": "u1"},
        "context_management": {},
        "output_config": {},
    }
    with serving(EXAMPLE_SCENARIOS) as (url, _):
        status, headers, raw = raw_post(
            f"{url}/v1/messages?beta=true",
            body,
            {
                "x-api-key": KEY,
                "anthropic-version": "2023-06-01",
                "anthropic-beta": "claude-code-20250219",
            },
        )

    assert status == 200, raw
    assert headers["Content-Type"].startswith("text/event-stream")
    partial = "".join(
        json.loads(line[6:])["delta"]["partial_json"]
        for line in raw.decode().splitlines()
        if line.startswith("data: ") and "input_json_delta" in line
    )
    # The working directory Claude Code reported is captured and used in the Write call.
    assert json.loads(partial)["file_path"] == "/srv/work/hello.txt"


# --- the wire ----------------------------------------------------------------------------------


def test_stream_events_have_names_order_and_json_deltas(serving):
    scenario = {
        "name": "edit",
        "turns": [
            [
                "Let me edit the file now, carefully and completely.",
                {
                    "tool_use": {
                        "name": "str_replace_based_edit_tool",
                        "input": {"command": "create", "path": "a.txt", "file_text": "x" * 60},
                    }
                },
            ]
        ],
    }
    body = {
        "model": MODEL,
        "max_tokens": 500,
        "stream": True,
        "tools": [EDITOR],
        "messages": [{"role": "user", "content": "edit"}],
    }
    with serving([scenario]) as (url, _):
        status, headers, raw = raw_post(
            f"{url}/v1/messages", body, {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
        )

    assert status == 200
    assert headers["request-id"].startswith("req_")
    frames = [f for f in raw.decode().split("\n\n") if f.strip()]
    events = []
    for frame in frames:
        name_line, data_line = frame.split("\n")
        name, data = name_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))
        assert name == data["type"]  # every event carries its `event:` line
        events.append(data)
    names = [e["type"] for e in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert "ping" in names
    assert events[0]["message"]["content"] == []
    assert events[0]["message"]["stop_reason"] is None
    json_deltas = [
        e["delta"]["partial_json"]
        for e in events
        if e.get("index") == 1 and e["type"] == "content_block_delta"
    ]
    assert json_deltas[0] == ""
    assert len(json_deltas) > 2
    assert json.loads("".join(json_deltas))["file_text"] == "x" * 60
    text = "".join(
        e["delta"]["text"] for e in events if e.get("delta", {}).get("type") == "text_delta"
    )
    assert text == "Let me edit the file now, carefully and completely."
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["output_tokens"] > 1


def test_streaming_and_plain_replies_agree(serving):
    with serving([SCRIPTED]) as (url, _):
        client = make_client(url)
        ask = {
            "model": MODEL,
            "max_tokens": 200,
            "tools": [BASH],
            "messages": [{"role": "user", "content": "Say hello"}],
        }
        plain = client.messages.create(**ask)
        with client.messages.stream(**ask) as stream:
            streamed = stream.get_final_message()

    assert streamed.content[1].input == plain.content[1].input == {"command": "id"}
    assert streamed.content[1].id == plain.content[1].id
    assert streamed.usage.output_tokens == plain.usage.output_tokens
    assert streamed.usage.input_tokens == plain.usage.input_tokens


# --- usage and prompt caching ------------------------------------------------------------------


def test_prompt_cache_creation_then_read(serving):
    system = [
        {"type": "text", "text": "Project rules. " * 400, "cache_control": {"type": "ephemeral"}}
    ]
    with serving([SCRIPTED]) as (url, sim):
        client = make_client(url)
        ask = {
            "model": MODEL,
            "max_tokens": 100,
            "system": system,
            "tools": CLIENT_TOOLS,
            "messages": [{"role": "user", "content": "Say hello"}],
        }
        first = client.messages.create(**ask).usage
        second = client.messages.create(**ask).usage
        counted = client.messages.count_tokens(
            model=MODEL, system=system, tools=CLIENT_TOOLS, messages=ask["messages"]
        )
        other_model = client.messages.create(**{**ask, "model": "claude-haiku-4-5"}).usage
        logged = [entry.usage for entry in sim.requests() if entry.path == "/v1/messages"]

    assert first.cache_creation_input_tokens > 1024
    assert first.cache_read_input_tokens == 0
    assert second.cache_creation_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.input_tokens == first.input_tokens > 0
    total = first.input_tokens + first.cache_creation_input_tokens
    assert counted.input_tokens == total
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert other_model.cache_read_input_tokens == 0  # caches are per model
    assert [u["cache_read_input_tokens"] for u in logged] == [0, total - first.input_tokens, 0]


def test_moving_breakpoint_reads_the_earlier_prefix(serving):
    """An agent loop marks its latest message: each turn reads what the previous one wrote."""
    prompt = "Say hello. " + "context " * 800
    turn_one = [
        {
            "role": "user",
            "content": [{"type": "text", "text": prompt, "cache_control": {"type": "ephemeral"}}],
        }
    ]
    with serving([SCRIPTED]) as (url, _):
        client = make_client(url)
        first = client.messages.create(model=MODEL, max_tokens=100, tools=[BASH], messages=turn_one)
        turn_two = [
            {"role": "user", "content": [{"type": "text", "text": prompt}]},
            first.to_param(),
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": first.content[1].id,
                        "content": "uid=0",
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    },
                ],
            },
        ]
        second = client.messages.create(
            model=MODEL, max_tokens=100, tools=[BASH], messages=turn_two
        )

    assert first.usage.cache_creation_input_tokens > 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    created = second.usage.cache_creation_input_tokens
    assert created == second.usage.cache_creation.ephemeral_1h_input_tokens > 0
    assert second.usage.cache_creation.ephemeral_5m_input_tokens == 0
    # Only the few tokens that open the reply are never cached.
    assert second.usage.input_tokens == first.usage.input_tokens == REPLY_PRIMER_TOKENS


def test_short_prompts_are_not_cached(serving):
    system = [{"type": "text", "text": "Short.", "cache_control": {"type": "ephemeral"}}]
    with serving([SCRIPTED]) as (url, _):
        client = make_client(url)
        ask = {
            "model": MODEL,
            "max_tokens": 50,
            "system": system,
            "messages": [{"role": "user", "content": "Say hello"}],
        }
        usages = [client.messages.create(**ask).usage for _ in range(2)]

    assert all(u.cache_creation_input_tokens == u.cache_read_input_tokens == 0 for u in usages)
    assert usages[0].input_tokens > 0


# --- faults ------------------------------------------------------------------------------------


def test_overloaded_is_retried_by_the_sdk(serving):
    with serving([SCRIPTED]) as (url, sim):
        sim.inject("overloaded", count=1)
        reply = make_client(url, max_retries=2).messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
        )
        sim.inject("overloaded", count=1)
        with pytest.raises(anthropic.OverloadedError) as failure:
            make_client(url).messages.create(
                model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
            )
        log = sim.requests()

    assert reply.content[0].text == "Checking the name."
    assert [entry.status for entry in log] == [529, 200, 529]
    # A failed request is logged with what the client sent.
    assert (log[0].model, log[0].fault, log[0].error_type) == (
        MODEL,
        "overloaded",
        "overloaded_error",
    )
    assert failure.value.body["error"]["type"] == "overloaded_error"
    assert failure.value.request_id.startswith("req_")


def test_rate_limit_via_admin_endpoint_then_recovery(serving):
    with serving([SCRIPTED]) as (url, sim):
        status, queued = admin(
            url, "POST", "faults", {"kind": "rate_limit", "count": 2, "retry_after": 0.2}
        )
        with pytest.raises(anthropic.RateLimitError) as failure:
            make_client(url).messages.create(
                model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
            )
        reply = make_client(url, max_retries=1).messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
        )
        statuses = [entry.status for entry in sim.requests()]

    assert status == 201
    assert queued["faults"][0]["count"] == 2
    assert failure.value.response.headers["retry-after"] == "0.2"
    assert failure.value.body["error"]["type"] == "rate_limit_error"
    assert reply.stop_reason == "tool_use"
    assert statuses == [429, 429, 200]


def test_server_error_and_clearing_faults(serving):
    with serving([SCRIPTED]) as (url, _):
        admin(url, "POST", "faults", [{"kind": "server_error"}, {"kind": "overloaded", "count": 3}])
        with pytest.raises(anthropic.InternalServerError) as failure:
            make_client(url).messages.create(
                model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
            )
        _, pending = admin(url, "GET", "faults")
        status, cleared = admin(url, "DELETE", "faults")
        reply = make_client(url).messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
        )

    assert failure.value.status_code == 500
    assert failure.value.body["error"]["type"] == "api_error"
    assert [f["kind"] for f in pending["faults"]] == ["overloaded"]
    assert (status, cleared) == (200, {"faults": []})
    assert reply.content[0].text == "Checking the name."


def test_drop_stream_gives_the_sdk_an_error_not_a_hang(serving):
    with serving([SCRIPTED]) as (url, sim):
        sim.inject("drop_stream", after_events=2)
        client = make_client(url, timeout=5)
        with (
            # The SDK leaves a cut stream's transport error unwrapped (httpx2.RemoteProtocolError).
            pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)) as failure,
            client.messages.stream(
                model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
            ) as stream,
        ):
            stream.get_final_message()
        entry = sim.requests()[0]

    assert not isinstance(failure.value, anthropic.APITimeoutError | httpx2.TimeoutException)
    assert entry.fault == "drop_stream"


def test_stream_error_event_raises(serving):
    with serving([SCRIPTED]) as (url, sim):
        sim.inject("stream_error", count=2, after_events=1)
        with (
            pytest.raises(anthropic.APIStatusError) as failure,
            make_client(url).messages.stream(
                model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
            ) as stream,
        ):
            stream.get_final_message()
        # A plain (non-streaming) request has no stream to break: it gets the 529 instead.
        with pytest.raises(anthropic.OverloadedError):
            make_client(url).messages.create(
                model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
            )

    assert failure.value.body["error"]["type"] == "overloaded_error"


def test_slow_fault_delays_the_answer(serving):
    with serving([SCRIPTED]) as (url, sim):
        sim.inject("slow", seconds=1.0)
        started = time.monotonic()
        with pytest.raises(anthropic.APITimeoutError):
            make_client(url, timeout=0.3).messages.create(
                model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
            )
        # The server still answers, late: wait for it so the next test starts clean.
        while not sim.requests() and time.monotonic() - started < 5:
            time.sleep(0.05)
        entry = sim.requests()[0]

    assert (entry.fault, entry.status) == ("slow", 200)
    assert time.monotonic() - started >= 1.0


# --- validation and auth -----------------------------------------------------------------------

USER = {"role": "user", "content": "Say hello"}
TOOL_TURN = {
    "role": "assistant",
    "content": [
        {"type": "tool_use", "id": "toolu_01abc", "name": "bash", "input": {"command": "ls"}}
    ],
}
INVALID = {
    "alternation": ({"messages": [USER, USER]}, 'found multiple "user" roles in a row'),
    "first-assistant": (
        {"messages": [{"role": "assistant", "content": "x"}, USER]},
        'first message must use the "user" role',
    ),
    "no-max-tokens": ({"max_tokens": None}, "max_tokens: Field required"),
    "zero-max-tokens": ({"max_tokens": 0}, "greater than or equal to 1"),
    "no-messages": ({"messages": []}, "at least one message is required"),
    "unknown-tool-type": (
        {"tools": [{"type": "bash_20990101", "name": "bash"}]},
        "Input tag 'bash_20990101' found using 'type'",
    ),
    "wrong-tool-name": (
        {"tools": [{"type": "text_editor_20250728", "name": "editor"}]},
        "Input should be 'str_replace_based_edit_tool'",
    ),
    "custom-without-schema": ({"tools": [{"name": "lookup"}]}, "input_schema: Field required"),
    "duplicate-tools": ({"tools": [BASH, BASH]}, "Tool names must be unique"),
    "unanswered-tool-use": (
        {"messages": [USER, TOOL_TURN, USER]},
        "`tool_use` ids were found without `tool_result` blocks",
    ),
    "stray-tool-result": (
        {
            "messages": [
                USER,
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01x"}]},
            ]
        },
        "unexpected `tool_use_id` found in `tool_result` blocks: toolu_01x",
    ),
    "empty-text": ({"messages": [{"role": "user", "content": ""}]}, "must be non-empty"),
}


@pytest.mark.parametrize(("change", "message"), INVALID.values(), ids=INVALID.keys())
def test_invalid_requests_are_rejected_with_400(serving, change, message):
    body = {"model": MODEL, "max_tokens": 100, "messages": [USER], "tools": [BASH], **change}
    body = {key: value for key, value in body.items() if value is not None}
    with serving([SCRIPTED]) as (url, sim):
        with pytest.raises(anthropic.BadRequestError) as failure:
            make_client(url).post("/v1/messages", cast_to=anthropic.types.Message, body=body)
        entry = sim.requests()[0]

    assert message in failure.value.message
    assert failure.value.body["error"]["type"] == "invalid_request_error"
    assert (entry.status, entry.error_type) == (400, "invalid_request_error")


def test_client_tool_versions_are_accepted(serving):
    tools = [
        {"type": "bash_20241022", "name": "bash"},
        {"type": "text_editor_20250124", "name": "str_replace_editor"},
    ]
    with serving([SCRIPTED]) as (url, sim):
        for editor in ("text_editor_20241022", "text_editor_20250124"):
            reply = make_client(url).messages.create(
                model="claude-opus-4-1-20250805",
                max_tokens=50,
                messages=[USER],
                tools=[tools[0], {**tools[1], "type": editor}],
            )
            assert reply.model == "claude-opus-4-1-20250805"
        for editor in ("text_editor_20250429", "text_editor_20250728"):
            make_client(url).messages.create(
                model="claude-haiku-4-5",
                max_tokens=50,
                messages=[USER],
                tools=[{"type": editor, "name": "str_replace_based_edit_tool"}],
            )
        assert [entry.status for entry in sim.requests()] == [200] * 4


def test_unknown_model_is_404(serving):
    with serving([SCRIPTED]) as (url, _), pytest.raises(anthropic.NotFoundError) as failure:
        make_client(url).messages.create(model="claude-imaginary-9", max_tokens=10, messages=[USER])

    assert failure.value.body["error"] == {
        "type": "not_found_error",
        "message": "model: claude-imaginary-9",
    }


def test_authentication(serving):
    body = {"model": MODEL, "max_tokens": 10, "messages": [USER]}
    version = {"anthropic-version": "2023-06-01"}
    with serving([SCRIPTED]) as (url, sim):
        with pytest.raises(anthropic.AuthenticationError) as wrong:
            make_client(url, api_key="sk-ant-wrong").messages.create(**body)
        missing = raw_post(f"{url}/v1/messages", body, version)
        by_header = raw_post(f"{url}/v1/messages", body, {"x-api-key": KEY, **version})
        by_bearer = make_client(url, api_key=None, auth_token=KEY).messages.create(**body)
        no_version = raw_post(f"{url}/v1/messages", body, {"x-api-key": KEY})
        statuses = [entry.status for entry in sim.requests()]

    assert wrong.value.body["error"]["type"] == "authentication_error"
    assert missing[0] == 401
    assert json.loads(missing[2])["error"] == {
        "type": "authentication_error",
        "message": "x-api-key header is required",
    }
    assert missing[1]["request-id"].startswith("req_")
    assert by_header[0] == 200
    assert by_bearer.content[0].text == "Checking the name."
    assert no_version[0] == 400
    assert statuses == [401, 401, 200, 200, 400]


def test_any_key_accepted_when_keys_are_not_configured(serving):
    with serving([SCRIPTED], api_keys=None) as (url, _):
        reply = make_client(url, api_key="anything").messages.create(
            model=MODEL, max_tokens=10, messages=[USER]
        )
    assert reply.content[0].text == "Checking the name."


# --- admin, scenarios, CLI ---------------------------------------------------------------------


def test_request_log_and_admin_endpoints(serving):
    with serving([SCRIPTED]) as (url, _):
        make_client(url).messages.create(model=MODEL, max_tokens=10, messages=[USER], tools=[BASH])
        _, health = admin(url, "GET", "health")
        _, log = admin(url, "GET", "requests")
        bad_status, bad = admin(url, "POST", "faults", {"kind": "meteor"})
        added_status, added = admin(
            url,
            "POST",
            "scenarios",
            {"name": "late", "match": {"first_user": "late"}, "turns": ["ok"]},
        )
        late = make_client(url).messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "a late one"}]
        )
        admin(url, "DELETE", "requests")
        _, emptied = admin(url, "GET", "requests")

    assert health["status"] == "ok"
    assert health["scenarios"] == 1
    entry = log["requests"][0]
    assert (entry["model"], entry["messages"], entry["tools"]) == (MODEL, 1, ["bash"])
    assert entry["usage"]["input_tokens"] > 0
    assert entry["status"] == 200
    assert entry["scenario"] == "greeter"
    assert entry["turn"] == 0
    assert bad_status == 400
    assert "kind must be one of" in bad["error"]["message"]
    assert (added_status, added) == (201, {"loaded": ["late"]})
    assert late.content[0].text == "ok"
    assert emptied == {"requests": []}


def test_unknown_path_is_a_json_404(serving):
    with serving([SCRIPTED]) as (url, _):
        status, _, raw = raw_post(f"{url}/v1/completions-nope", {}, {"x-api-key": KEY})
    assert status == 404
    assert json.loads(raw)["error"]["type"] == "not_found_error"


def test_shipped_scenarios_load_and_bad_ones_are_reported(tmp_path):
    names = [scenario.name for scenario in load_scenarios(EXAMPLE_SCENARIOS)]
    assert names == ["add-health-endpoint", "claude-code-hello", "fix-failing-tests"]

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nturns:\n  - [{tool_use: {input: {}}}]\n")
    with pytest.raises(ScenarioError, match=r"broken\.yaml.*turns\[0\]\.content\[0\]\.name"):
        load_scenarios(tmp_path)
    with pytest.raises(ScenarioError, match="invalid regular expression"):
        load_scenarios([{"name": "x", "match": {"system": "("}}])


def test_cli_command_is_named_claude_and_rejects_bad_scenarios(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: bad\nturns: 3\n")
    result = CliRunner().invoke(claude, ["--port", "0", "--scenarios", str(tmp_path)])

    assert claude.name == "claude"
    assert result.exit_code != 0
    assert "turns: must be a list" in result.output


# --- the context window and context editing ----------------------------------------------------

CONTEXT_BETA = "context-management-2025-06-27"


def _tool_history(uses: int, result_chars: int) -> list[dict[str, Any]]:
    """A conversation of ``uses`` bash calls, each answered with ``result_chars`` of output."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Say hello"}]
    for number in range(uses):
        call = f"toolu_{number:04d}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": call, "name": "bash", "input": {"command": "ls"}}
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call, "content": "x" * result_chars}
                ],
            }
        )
    return messages


def test_a_prompt_larger_than_the_window_is_refused_as_the_api_does(serving):
    with serving([SCRIPTED], context_window_tokens=5_000) as (url, _):
        client = make_client(url)
        ask = {"model": MODEL, "tools": CLIENT_TOOLS, "messages": _tool_history(4, 8_000)}
        with pytest.raises(anthropic.BadRequestError) as too_long:
            client.messages.create(max_tokens=100, **ask)
        small = {**ask, "messages": _tool_history(1, 8_000)}
        with pytest.raises(anthropic.BadRequestError) as with_output:
            client.messages.create(max_tokens=4_000, **small)
        assert client.messages.create(max_tokens=100, **small).stop_reason
    message = too_long.value.body["error"]["message"]
    assert re.fullmatch(r"prompt is too long: \d+ tokens > 5000 maximum", message), message
    assert too_long.value.status_code == 400
    assert re.match(
        r"input length and `max_tokens` exceed context limit: \d+ \+ 4000 > 5000",
        with_output.value.body["error"]["message"],
    )


def test_context_editing_clears_the_oldest_tool_results_past_the_trigger(serving):
    edit = {
        "type": "clear_tool_uses_20250919",
        "trigger": {"type": "input_tokens", "value": 6_000},
        "keep": {"type": "tool_uses", "value": 2},
        "clear_at_least": {"type": "input_tokens", "value": 1_000},
    }
    ask = {
        "model": MODEL,
        "max_tokens": 100,
        "tools": CLIENT_TOOLS,
        "messages": _tool_history(6, 8_000),
        "context_management": {"edits": [edit]},
    }
    with serving([SCRIPTED], context_window_tokens=8_000) as (url, sim):
        client = make_client(url)
        # Without the beta, as from the GA method (which has no such parameter).
        plain = {k: v for k, v in ask.items() if k != "context_management"}
        with pytest.raises(anthropic.BadRequestError, match="Extra inputs are not permitted"):
            client.messages.create(**plain, extra_body={"context_management": {"edits": [edit]}})
        reply = client.beta.messages.create(betas=[CONTEXT_BETA], **ask)
        with client.beta.messages.stream(betas=[CONTEXT_BETA], **ask) as streamed:
            final = streamed.get_final_message()
        counted = client.beta.messages.count_tokens(
            betas=[CONTEXT_BETA],
            **{k: v for k, v in ask.items() if k != "max_tokens"},
        )
        high = {**edit, "clear_at_least": {"type": "input_tokens", "value": 100_000}}
        with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
            client.beta.messages.create(
                betas=[CONTEXT_BETA], **{**ask, "context_management": {"edits": [high]}}
            )
        record = next(r for r in sim.requests() if r.path == "/v1/messages" and r.status == 200)
    (applied,) = reply.context_management.applied_edits
    assert applied.cleared_tool_uses == 4 and applied.cleared_input_tokens > 7_000
    assert final.context_management.applied_edits[0].cleared_tool_uses == 4
    prompt = reply.usage.input_tokens + reply.usage.cache_creation_input_tokens
    assert prompt == record.prompt_tokens < 8_000
    assert counted.input_tokens == prompt
    assert counted.context_management.original_input_tokens == prompt + applied.cleared_input_tokens
    assert "x" * 8_000 in json.dumps(record.body)  # the client sent its whole history


def test_more_than_four_cache_breakpoints_are_refused(serving):
    marked = {"type": "ephemeral"}
    system = [{"type": "text", "text": f"rule {n}", "cache_control": marked} for n in range(5)]
    refused = pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks")
    with serving([SCRIPTED]) as (url, _), refused:
        make_client(url).messages.create(
            model=MODEL,
            max_tokens=10,
            system=system,
            messages=[{"role": "user", "content": "hi"}],
        )
