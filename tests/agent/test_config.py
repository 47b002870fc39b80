"""The agent's configuration: a bad value fails at start, naming the field."""

from __future__ import annotations

import pytest

from agent_app.config import AgentConfig
from cluster_core.errors import ConfigError

REQUIRED = {"agent_key": "ccca_k", "anthropic_api_key": "sk-ant-k"}


def test_file_then_environment(tmp_path):
    file = tmp_path / "agent.toml"
    file.write_text(
        'name = "lab2"\nspecialties = ["backend", "general"]\nmax_tasks = 2\n'
        'agent_key = "ccca_k"\nanthropic_api_key = "sk-ant-k"\n'
        "[limits]\nmax_turns = 9\n"
    )
    config = AgentConfig.load(file, environ={"CLAUDE_AGENT_MAX_TASKS": "4"})
    assert (config.name, config.max_tasks, config.limits.max_turns) == ("lab2", 4, 9)
    assert config.specialties == ["backend", "general"]
    assert set(config.secrets) == set(REQUIRED.values())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"specialties": ["astrology"]}, "specialties"),
        ({"agent_key": ""}, "agent_key is required"),
        ({"max_tasks": 0}, "max_tasks must be between"),
        ({"sandbox": "docker"}, "sandbox must be"),
        ({"sandbox": "auto"}, 'sandbox = "auto" is gone'),
        ({"coordinator_url": "ftp://x"}, "coordinator_url must be"),
        ({"limits": {"max_turns": "lots"}}, "setting limits.max_turns"),
        ({"prices": {"opus": {"input": 1}}}, "prices.opus"),
        ({"heartbeat_secs": 3}, "unknown setting(s): heartbeat_secs"),
        # An agent holds no GitHub credential: the coordinator grants one per task.
        ({"github_token": "ghp_k"}, "unknown setting(s): github_token"),
        # The API's token never crosses the network in the clear.
        ({"api_token": "t", "api_host": "10.0.0.5"}, "api_tls_cert_file and api_tls_key_file"),
        ({"api_token": "t", "api_host": "0.0.0.0"}, "api_tls_cert_file and api_tls_key_file"),  # noqa: S104
        (
            {"api_token": "t", "api_host": "agent1.example"},
            "api_tls_cert_file and api_tls_key_file",
        ),
        ({"api_token": "t", "api_host": "::"}, "api_tls_cert_file and api_tls_key_file"),
        (
            {"api_tls_cert_file": "/etc/a.crt"},
            "api_tls_key_file is required with api_tls_cert_file",
        ),
        ({"api_tls_key_file": "/etc/a.key"}, "api_tls_cert_file is required with api_tls_key_file"),
        (
            {"api_token": "t", "api_host": "10.0.0.5", "api_tls_cert_file": "/etc/a.crt"},
            "api_tls_key_file is required",
        ),
    ],
)
def test_bad_settings_name_the_field(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AgentConfig.load(None, environ={}, **{**REQUIRED, **values})


def test_prices_by_model_family():
    config = AgentConfig.load(None, environ={}, **REQUIRED)
    assert config.price("claude-sonnet-4-6").output == 15.0
    assert config.price("claude-haiku-4-5").input == 1.0
    assert config.price("some-new-model").output == 75.0  # unknown: the dearest, not free


@pytest.mark.parametrize(
    "values",
    [
        {
            "api_token": "t",
            "api_host": "10.0.0.5",
            "api_tls_cert_file": "a",
            "api_tls_key_file": "b",
        },
        {"api_token": "t", "api_host": "127.0.0.1"},  # loopback: nothing crosses the network
        {"api_token": "t", "api_host": "::1"},
        {"api_token": "t", "api_host": "localhost"},
        {"api_token": "", "api_host": "10.0.0.5"},  # no token: the API is off
    ],
)
def test_api_settings_that_keep_the_token_off_the_wire_are_accepted(values):
    config = AgentConfig.load(None, environ={}, **{**REQUIRED, **values})
    assert config.api_host == values["api_host"]
