"""The agent's configuration: /etc/claude-agent/agent.toml, then CLAUDE_AGENT_* variables."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from agent_app.context import ContextPolicy
from agent_app.sandbox import MODES
from cluster_core.errors import ConfigError
from cluster_core.settings import load_settings
from cluster_core.specialties import SPECIALTIES

DEFAULT_CONFIG_FILE = "/etc/claude-agent/agent.toml"
ENV_PREFIX = "CLAUDE_AGENT_"


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or "localhost") is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ModelPrice:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


# List prices per model family (USD / MTok); the first key contained in the model id wins.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "opus": {"input": 15.0, "output": 75.0, "cache_write": 18.75, "cache_read": 1.5},
    "sonnet": {"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.3},
    "haiku": {"input": 1.0, "output": 5.0, "cache_write": 1.25, "cache_read": 0.1},
}


@dataclass
class Limits:
    """Ceilings for any task on this agent; a task's own budget may only lower them."""

    max_turns: int = 60
    max_tokens: int = 4_000_000
    max_dollars: float = 10.0
    max_seconds: int = 3600
    command_timeout: int = 300  # one bash command
    test_timeout: int = 900  # the repository's test suite
    output_chars: int = 20_000  # tool output kept for the model (head and tail)
    # Per command (rlimits, inherited by everything it starts): CPU seconds, processes of the
    # agent's user (a fork bomb stops there), the largest file it may write (MiB) and the
    # memory each of its processes may allocate (MiB, RLIMIT_DATA). The unit's MemoryMax
    # (agent_memory_max) caps the service with all its commands.
    command_cpu_seconds: int = 1800
    command_processes: int = 2048
    command_file_mb: int = 2048
    command_memory_mb: int = 4096
    # The private /tmp of a command (MiB, RAM-backed) and the most a task's folders (checkout
    # and its files) may hold on disk (MiB); a command that goes past it is killed.
    command_tmp_mb: int = 1024
    workspace_mb: int = 10240
    # The repository's setup steps (all of them, seconds), and the largest setup output
    # (.venv, node_modules...) kept for the repository's next task (MiB).
    setup_timeout: int = 900
    setup_cache_mb: int = 4096


@dataclass
class AgentConfig:
    """Every agent setting; each can be set in the file or as CLAUDE_AGENT_<FIELD>."""

    name: str = field(default_factory=socket.gethostname)
    specialties: list[str] = field(default_factory=lambda: ["general"])
    max_tasks: int = 1
    clearance: str = "standard"
    # The coordinator: its URL, the CA that signed its certificate, this agent's key.
    coordinator_url: str = "http://127.0.0.1:8000"
    coordinator_ca_file: str = ""
    agent_key: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Workspaces: one folder per task plus a mirror per repository.
    workspace_root: str = "/var/lib/claude-agent"
    retention_days: int = 7
    # Claude.
    model: str = "claude-sonnet-4-6"
    max_output_tokens: int = 8192
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: str = ""
    prices: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    # Long tasks stay within the model's context window (agent_app.context): past the trigger,
    # old tool output is cleared by the Messages API's context editing ("api", a beta) or by
    # the agent itself ("client": for gateways or models without it); the newest results are
    # always kept.
    context_editing: str = "api"
    context_window_tokens: int = 200_000
    context_trigger_tokens: int = 100_000
    context_keep_tool_results: int = 5
    # No GitHub setting: the coordinator hands each task its GitHub access (API URL, a token
    # for that repository, the identity commits carry) with the claim.
    # Commands run inside bubblewrap ("bwrap"); an agent whose sandbox fails its start-up probe
    # takes no work. "none" runs them unsandboxed: development only, never with real secrets.
    sandbox: str = "bwrap"
    # Commands have no network but this unix socket to the allowlisting egress proxy (the
    # agent role's tinyproxy); empty: no network at all. A repository listed in
    # egress_repository_sockets ("owner/name" -> socket) gets its own proxy instead, which
    # also allows that repository's hosts.
    egress_proxy_socket: str = ""
    egress_repository_sockets: dict[str, str] = field(default_factory=dict)
    # PATH of the model's commands and the test runs (the toolchains the repositories need).
    command_path: str = "/usr/local/bin:/usr/bin:/bin"
    # The agent's own HTTP API; empty api_token disables it. Served over HTTPS with this
    # certificate (chain) and private key (PEM files); both are required unless api_host is a
    # loopback address.
    api_host: str = "127.0.0.1"
    api_port: int = 8081
    api_token: str = ""
    api_tls_cert_file: str = ""
    api_tls_key_file: str = ""
    # Timing.
    # Until the coordinator's first answer, which says what the leases need.
    heartbeat_seconds: int = 5
    claim_block_seconds: int = 5
    stop_timeout_seconds: int = 90  # warm stop: time to finish or checkpoint before handing back
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, environ=None, **overrides) -> AgentConfig:
        """Defaults, then the TOML file, then CLAUDE_AGENT_* variables, then ``overrides``."""
        return load_settings(
            cls,
            path=path,
            default_path=DEFAULT_CONFIG_FILE,
            env_prefix=ENV_PREFIX,
            environ=environ,
            overrides=overrides,
        )

    def validate(self) -> None:
        """Refuse settings the agent cannot run with, naming the field."""
        unknown = sorted(set(self.specialties) - set(SPECIALTIES))
        if unknown or not self.specialties:
            raise ConfigError(f"specialties: unknown {unknown}; choose from {list(SPECIALTIES)}")
        for name in ("agent_key", "anthropic_api_key"):
            if not getattr(self, name):
                raise ConfigError(f"{name} is required")
        if not 1 <= self.max_tasks <= 64:
            raise ConfigError("max_tasks must be between 1 and 64")
        if self.sandbox == "auto":
            raise ConfigError(
                'sandbox = "auto" is gone (it ran commands unsandboxed where bubblewrap failed): '
                'use "bwrap" (the default) or, for development only, "none"'
            )
        if self.sandbox not in MODES:
            raise ConfigError(f"sandbox must be one of {', '.join(MODES)}")
        if not self.coordinator_url.startswith(("http://", "https://")):
            raise ConfigError(f"coordinator_url must be an http(s) URL: {self.coordinator_url!r}")
        self._validate_api()
        try:
            self.context_policy()
        except ValueError as exc:
            raise ConfigError(f"context_*: {exc}") from exc
        for model, price in self.prices.items():
            try:
                ModelPrice(**price)
            except TypeError as exc:
                raise ConfigError(f"prices.{model}: {exc}") from exc

    def _validate_api(self) -> None:
        """The API's bearer token never crosses the network in the clear."""
        files = {
            "api_tls_cert_file": self.api_tls_cert_file,
            "api_tls_key_file": self.api_tls_key_file,
        }
        given = [name for name, path in files.items() if path]
        if len(given) == 1:
            missing = next(name for name in files if name not in given)
            raise ConfigError(f"{missing} is required with {given[0]}")
        if self.api_token and not given and not _is_loopback(self.api_host):
            raise ConfigError(
                f"api_tls_cert_file and api_tls_key_file are required: the API (api_token set) "
                f"listens on {self.api_host!r}, not a loopback address"
            )

    def context_policy(self) -> ContextPolicy:
        """How conversations are kept within the context window."""
        return ContextPolicy(
            editing=self.context_editing,
            window=self.context_window_tokens,
            trigger=self.context_trigger_tokens,
            keep=self.context_keep_tool_results,
        )

    def price(self, model: str) -> ModelPrice:
        """The price of ``model``; an unknown model is priced like the most expensive one."""
        for family, price in self.prices.items():
            if family in model:
                return ModelPrice(**price)
        return max((ModelPrice(**p) for p in self.prices.values()), key=lambda p: p.output)

    @property
    def secrets(self) -> list[str]:
        """Values that must never reach a log, a transcript, a model or a tool."""
        return [s for s in (self.agent_key, self.anthropic_api_key, self.api_token) if s]
