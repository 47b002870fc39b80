"""The simulator's state object: configuration, scenarios, prompt cache, faults, request log."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.claude.faults import Fault, FaultKind, FaultQueue
from simulators.claude.models import DEFAULT_MODELS
from simulators.claude.scenarios import Scenario, load_scenarios
from simulators.claude.usage import PromptCache

logger = logging.getLogger(__name__)

ScenarioSource = str | Path | Iterable[Mapping[str, Any] | Scenario]


@dataclass
class SimulatorConfig:
    """Settings of one simulator instance; every field has a working default."""

    # Accepted API keys (x-api-key or Bearer); None accepts any non-empty key.
    api_keys: frozenset[str] | None = None
    # Model aliases accepted (dated variants alias-YYYYMMDD are accepted too).
    models: tuple[str, ...] = DEFAULT_MODELS
    # Prompts shorter than this at a cache breakpoint are not cached (the real API's minimum).
    min_cacheable_tokens: int = 1024
    # Characters per token when estimating usage.
    chars_per_token: float = 4.0
    # The models' context window: a larger prompt (after context editing) is refused.
    context_window_tokens: int = 200_000
    # Characters per text_delta / input_json_delta chunk when streaming.
    stream_chunk_chars: int = 24
    # Pause between streamed events, in seconds (0 for tests; a little for live demos).
    stream_delay: float = 0.0
    # Reject requests without the anthropic-version header, as the real API does.
    require_version_header: bool = True
    # How many received requests GET /_sim/requests remembers.
    request_log_size: int = 10_000


@dataclass
class RequestRecord:
    """What the simulator saw of one request and what it answered."""

    request_id: str
    path: str
    time: float = field(default_factory=time.time)
    model: str | None = None
    stream: bool = False
    messages: int = 0
    tools: list[str] = field(default_factory=list)
    scenario: str | None = None
    turn: int | None = None
    status: int = 200
    error_type: str | None = None
    fault: str | None = None
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None
    # The prompt's size as the model saw it (after context editing), and what was cleared.
    prompt_tokens: int | None = None
    applied_edits: list[dict[str, Any]] | None = None
    user_agent: str | None = None
    # The request body as received (tests check what reached the model: no secret may).
    body: dict[str, Any] | None = None


class ClaudeSimulator:
    """Everything a running simulator holds; ``app.extensions["claude_sim"]`` is one of these."""

    def __init__(
        self, scenarios: ScenarioSource | None = None, config: SimulatorConfig | None = None
    ) -> None:
        self.config = config or SimulatorConfig()
        self.cache = PromptCache(self.config.min_cacheable_tokens)
        self.faults = FaultQueue()
        self._scenarios: list[Scenario] = []
        self._log: deque[RequestRecord] = deque(maxlen=self.config.request_log_size)
        self._lock = threading.Lock()
        if scenarios is not None:
            self.add_scenarios(scenarios)

    # --- scenarios ---
    @property
    def scenarios(self) -> list[Scenario]:
        """The loaded scenarios, in load order."""
        with self._lock:
            return list(self._scenarios)

    def add_scenarios(self, source: ScenarioSource, *, replace: bool = False) -> list[Scenario]:
        """Load scenarios from a directory, a file or dicts, after (or instead of) the others."""
        loaded = load_scenarios(source)
        with self._lock:
            if replace:
                self._scenarios.clear()
            self._scenarios.extend(loaded)
        logger.info("Simulator: %d scenarios loaded (%d in all)", len(loaded), len(self._scenarios))
        return loaded

    # --- faults ---
    def inject(self, kind: FaultKind | str, count: int = 1, **options: float) -> Fault:
        """Make the next ``count`` requests fail (or slow down) with ``kind``."""
        fault = Fault.from_dict({"kind": FaultKind(kind).value, "count": count, **options})
        self.faults.add(fault)
        logger.info("Simulator: fault %s queued for %d requests", fault.kind.value, fault.count)
        return fault

    def clear_faults(self) -> None:
        """Cancel every waiting fault."""
        self.faults.clear()

    # --- request log ---
    def record(self, entry: RequestRecord) -> None:
        """Append ``entry`` to the request log."""
        with self._lock:
            self._log.append(entry)

    def requests(self) -> list[RequestRecord]:
        """The logged requests, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            self._log.clear()

    def reset(self) -> None:
        """Forget faults, the request log and the prompt cache (scenarios stay)."""
        self.clear_faults()
        self.clear_requests()
        self.cache.clear()
