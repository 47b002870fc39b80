"""Scripted conversations: load them from YAML or dicts, pick one for a request, pick its turn.

The format is described in this package's README.md. The simulator keeps no conversation state:
the turn to answer is derived from the request itself (how many assistant messages it already
holds), and conditional turns are re-decided from the tool results the request carries, so a
client replaying a conversation gets the same answers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from string import Template
from typing import Any

import yaml

from simulators.claude.content import (
    conversation,
    first_user_text,
    system_text,
    text_of,
    tool_names,
    tool_result_text,
    tool_results,
)
from simulators.claude.exceptions import ScenarioError

logger = logging.getLogger(__name__)

STOP_REASONS = ("end_turn", "tool_use", "max_tokens", "stop_sequence", "pause_turn", "refusal")
DEFAULT_FINAL_TEXT = "I have finished the task."
FALLBACK_NAME = "__no_scenario__"
FALLBACK_PREFIX = "[claude-simulator] No scenario matched this request."


@dataclass(frozen=True)
class Turn:
    """One scripted assistant response: content blocks (without ids) and its stop reason."""

    content: tuple[dict[str, Any], ...]
    stop_reason: str

    @classmethod
    def text(cls, text: str) -> Turn:
        """A turn answering only ``text``, ending the turn."""
        return cls(content=({"type": "text", "text": text},), stop_reason="end_turn")

    def render(self, variables: Mapping[str, str]) -> Turn:
        """This turn with ``${name}`` replaced by the match's named groups in every string."""
        if not variables:
            return self
        return replace(self, content=tuple(_substitute(b, variables) for b in self.content))


def _substitute(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        # safe_substitute leaves other $-words alone: shell commands keep their $HOME.
        return Template(value).safe_substitute(variables)
    if isinstance(value, dict):
        return {key: _substitute(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, variables) for item in value]
    return value


@dataclass(frozen=True)
class Condition:
    """When a branch applies, tested against the user message that precedes the turn."""

    tool_result_matches: re.Pattern[str] | None = None
    user_matches: re.Pattern[str] | None = None
    is_error: bool | None = None

    def holds(self, message: Mapping[str, Any]) -> bool:
        """True when every given test passes on ``message``."""
        if self.tool_result_matches is not None and not (
            tool_results(dict(message))
            and self.tool_result_matches.search(tool_result_text(dict(message)))
        ):
            return False
        if self.user_matches is not None and not self.user_matches.search(
            text_of(message.get("content"))
        ):
            return False
        if self.is_error is not None:
            errored = any(block.get("is_error") is True for block in tool_results(dict(message)))
            if errored != self.is_error:
                return False
        return True


@dataclass(frozen=True)
class Branch:
    """A conditional sequence of turns; ``when`` None is the default branch."""

    when: Condition | None
    turns: tuple[Turn | Choice, ...]


@dataclass(frozen=True)
class Choice:
    """A point in the script where the first branch whose condition holds is taken."""

    branches: tuple[Branch, ...]

    def choose(self, message: Mapping[str, Any]) -> Branch | None:
        """The first matching conditional branch, else the default one, else None (skipped)."""
        for branch in self.branches:
            if branch.when is not None and branch.when.holds(message):
                return branch
        return next((b for b in self.branches if b.when is None), None)


@dataclass(frozen=True)
class Match:
    """Which requests a scenario answers; every given test must pass (none: all requests)."""

    system: re.Pattern[str] | None = None
    first_user: re.Pattern[str] | None = None
    prompt: re.Pattern[str] | None = None
    model: re.Pattern[str] | None = None
    tools: tuple[str, ...] = ()

    def matches(self, body: dict[str, Any]) -> bool:
        """True when ``body`` passes every test of this match."""
        return self.captures(body) is not None

    def captures(self, body: dict[str, Any]) -> dict[str, str] | None:
        """The named groups the regexes captured, or None when ``body`` does not match."""
        system, user = system_text(body), first_user_text(body)
        if not set(self.tools) <= set(tool_names(body)):
            return None
        variables: dict[str, str] = {}
        checks = (
            (self.system, (system,)),
            (self.first_user, (user,)),
            (self.model, (str(body.get("model", "")),)),
            (self.prompt, (system, user)),  # either one may hold the prompt
        )
        for pattern, texts in checks:
            if pattern is None:
                continue
            found = next((m for m in map(pattern.search, texts) if m), None)
            if found is None:
                return None
            variables.update({k: v for k, v in found.groupdict().items() if v is not None})
        return variables


@dataclass(frozen=True)
class Scenario:
    """A named scripted conversation."""

    name: str
    match: Match = field(default_factory=Match)
    steps: tuple[Turn | Choice, ...] = ()
    final_text: str = DEFAULT_FINAL_TEXT
    priority: int = 0
    source: str | None = None

    def turn_for(self, body: dict[str, Any]) -> tuple[Turn | None, int]:
        """The scripted turn answering ``body`` and its number; None once the script is done."""
        messages = conversation(body)
        if messages and messages[-1].get("role") == "assistant":
            messages = messages[:-1]  # a prefill continues the turn it starts
        users = [m for m in messages if m.get("role") == "user"]
        number = sum(1 for m in messages if m.get("role") == "assistant")
        pending: list[Turn | Choice] = list(self.steps)
        for index in range(number + 1):
            context = users[index] if index < len(users) else {}
            turn = _next_turn(pending, context)
            if turn is None:
                return None, number
            if index == number:
                return turn, number
        return None, number  # pragma: no cover - the loop always returns


def _next_turn(pending: list[Turn | Choice], context: Mapping[str, Any]) -> Turn | None:
    """Pop steps until a turn comes up, splicing in the branch each choice takes."""
    while pending:
        step = pending.pop(0)
        if isinstance(step, Turn):
            return step
        branch = step.choose(context)
        if branch is not None:
            pending[0:0] = branch.turns
    return None


def fallback_turn(body: dict[str, Any]) -> Turn:
    """The answer when no scenario matches: an end_turn text that says so."""
    prompt = " ".join(first_user_text(body).split())[:200]
    return Turn.text(f"{FALLBACK_PREFIX} First user message: {prompt!r}")


def select(scenarios: Iterable[Scenario], body: dict[str, Any]) -> Scenario | None:
    """The first scenario (highest priority, then load order) whose match passes."""
    ordered = sorted(enumerate(scenarios), key=lambda item: (-item[1].priority, item[0]))
    return next((scenario for _, scenario in ordered if scenario.match.matches(body)), None)


# --- loading ---------------------------------------------------------------------------------


def load_scenarios(source: str | Path | Iterable[Mapping[str, Any] | Scenario]) -> list[Scenario]:
    """Scenarios from a directory or file of YAML, or from dicts / Scenario objects."""
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            return [scenario for file in files for scenario in load_file(file)]
        return load_file(path)
    return [
        item if isinstance(item, Scenario) else parse_scenario(item, f"scenarios[{index}]")
        for index, item in enumerate(source)
    ]


def load_file(path: Path) -> list[Scenario]:
    """Scenarios of one YAML file: one mapping, a list, or ``{scenarios: [...]}``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ScenarioError(f"{path}: cannot read scenario file: {error}") from error
    items = data.get("scenarios", [data]) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ScenarioError(f"{path}: expected a scenario mapping or a list of them")
    scenarios = []
    for index, item in enumerate(items):
        data = item
        if isinstance(item, dict) and "name" not in item:
            data = {**item, "name": path.stem if len(items) == 1 else f"{path.stem}-{index}"}
        scenarios.append(parse_scenario(data, f"{path}[{index}]", source=str(path)))
    logger.info("Scenarios: loaded %d from %s", len(scenarios), path)
    return scenarios


def parse_scenario(data: Mapping[str, Any], where: str, source: str | None = None) -> Scenario:
    """One scenario from its dict form; ScenarioError names the faulty place."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: a scenario must be a mapping")
    unknown = set(data) - {"name", "description", "match", "turns", "final", "priority"}
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}: 'name' is required")
    where = f"{where} ({name})"
    turns = data.get("turns", [])
    if not isinstance(turns, list):
        raise ScenarioError(f"{where}.turns: must be a list")
    final = data.get("final", DEFAULT_FINAL_TEXT)
    if not isinstance(final, str):
        raise ScenarioError(f"{where}.final: must be a string")
    return Scenario(
        name=name,
        match=_parse_match(data.get("match") or {}, f"{where}.match"),
        steps=tuple(_parse_step(t, f"{where}.turns[{i}]") for i, t in enumerate(turns)),
        final_text=final,
        priority=int(data.get("priority", 0)),
        source=source,
    )


def _regex(value: object, where: str) -> re.Pattern[str] | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: must be a regular expression string")
    try:
        return re.compile(value)
    except re.error as error:
        raise ScenarioError(f"{where}: invalid regular expression: {error}") from error


def _parse_match(data: object, where: str) -> Match:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: must be a mapping")
    unknown = set(data) - {"system", "first_user", "prompt", "model", "tools"}
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    tools = data.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        raise ScenarioError(f"{where}.tools: must be a list of tool names")
    return Match(
        **{key: _regex(data.get(key), f"{where}.{key}") for key in ("system", "first_user")},
        prompt=_regex(data.get("prompt"), f"{where}.prompt"),
        model=_regex(data.get("model"), f"{where}.model"),
        tools=tuple(tools),
    )


def _parse_step(data: object, where: str) -> Turn | Choice:
    if isinstance(data, Mapping) and "alternatives" in data:
        branches = data["alternatives"]
        if not isinstance(branches, list) or not branches:
            raise ScenarioError(f"{where}.alternatives: must be a non-empty list")
        return Choice(
            tuple(_parse_branch(b, f"{where}.alternatives[{i}]") for i, b in enumerate(branches))
        )
    return _parse_turn(data, where)


def _parse_branch(data: object, where: str) -> Branch:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: must be a mapping")
    when = data.get("when")
    condition = None if when is None else _parse_condition(when, f"{where}.when")
    if "turns" in data:
        turns = data["turns"]
        if not isinstance(turns, list) or not turns:
            raise ScenarioError(f"{where}.turns: must be a non-empty list")
        steps = tuple(_parse_step(t, f"{where}.turns[{i}]") for i, t in enumerate(turns))
    else:
        steps = (_parse_turn({k: v for k, v in data.items() if k != "when"}, where),)
    return Branch(when=condition, turns=steps)


def _parse_condition(data: object, where: str) -> Condition:
    if not isinstance(data, Mapping) or not data:
        raise ScenarioError(f"{where}: must be a non-empty mapping")
    unknown = set(data) - {"tool_result_matches", "user_matches", "is_error"}
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    is_error = data.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise ScenarioError(f"{where}.is_error: must be true or false")
    return Condition(
        tool_result_matches=_regex(data.get("tool_result_matches"), f"{where}.tool_result_matches"),
        user_matches=_regex(data.get("user_matches"), f"{where}.user_matches"),
        is_error=is_error,
    )


def _parse_turn(data: object, where: str) -> Turn:
    stop_reason = None
    if isinstance(data, str):
        content: object = [data]
    elif isinstance(data, list):
        content = data
    elif isinstance(data, Mapping):
        unknown = set(data) - {"content", "stop_reason"}
        if unknown:
            raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
        content = data.get("content")
        content = [content] if isinstance(content, str) else content
        stop_reason = data.get("stop_reason")
    else:
        raise ScenarioError(f"{where}: a turn is a list of blocks, a string or a mapping")
    if not isinstance(content, list) or not content:
        raise ScenarioError(f"{where}.content: must be a non-empty list of blocks")
    blocks = tuple(_parse_block(b, f"{where}.content[{i}]") for i, b in enumerate(content))
    if stop_reason is None:
        has_tool = any(b["type"] == "tool_use" for b in blocks)
        stop_reason = "tool_use" if has_tool else "end_turn"
    if stop_reason not in STOP_REASONS:
        raise ScenarioError(f"{where}.stop_reason: must be one of {', '.join(STOP_REASONS)}")
    return Turn(content=blocks, stop_reason=stop_reason)


def _parse_block(data: object, where: str) -> dict[str, Any]:
    if isinstance(data, str):
        return {"type": "text", "text": data}
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: a block is a string or a mapping")
    if "tool_use" in data and "type" not in data:
        data = (
            {"type": "tool_use", **data["tool_use"]}
            if isinstance(data["tool_use"], Mapping)
            else {}
        )
    elif "text" in data and "type" not in data:
        data = {"type": "text", **data}
    kind = data.get("type")
    if kind == "text":
        if not isinstance(data.get("text"), str) or not data["text"]:
            raise ScenarioError(f"{where}.text: must be a non-empty string")
        return {"type": "text", "text": data["text"]}
    if kind == "tool_use":
        name, tool_input = data.get("name"), data.get("input", {})
        if not isinstance(name, str) or not name:
            raise ScenarioError(f"{where}.name: a tool_use needs the tool's name")
        if not isinstance(tool_input, Mapping):
            raise ScenarioError(f"{where}.input: must be a mapping")
        block: dict[str, Any] = {"type": "tool_use", "name": name, "input": dict(tool_input)}
        if "id" in data:
            block["id"] = str(data["id"])
        return block
    raise ScenarioError(f"{where}: expected a text or tool_use block")
