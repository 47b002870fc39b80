"""Configuration: defaults, file, environment and overrides, and errors that name the field."""

from __future__ import annotations

import pytest

from cluster_core.errors import ConfigError
from coordinator_app.config import CoordinatorConfig


def test_layers_apply_in_order(tmp_path):
    file = tmp_path / "coordinator.toml"
    file.write_text('trigger_label = "ai"\nlease_seconds = 120\n[budget]\nmax_turns = 7\n')
    config = CoordinatorConfig.load(
        file, environ={"CCC_LEASE_SECONDS": "200", "CCC_TRIGGER_ALLOWLIST": "ann, ben"},
        heartbeat_seconds=20,
    )  # fmt: skip
    assert config.trigger_label == "ai"  # file
    assert config.lease_seconds == 200  # environment beats file
    assert config.trigger_allowlist == ["ann", "ben"]
    assert config.heartbeat_seconds == 20  # override
    assert config.budget.max_turns == 7 and config.budget.max_seconds == 3600


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lease_seconds": "soon"}, "setting lease_seconds"),
        ({"budget": {"max_turns": "many"}}, "setting budget.max_turns"),
        ({"budget": {"max_tokes": 1}}, "unknown setting(s): budget.max_tokes"),
        ({"lease_secs": 3}, "unknown setting(s): lease_secs"),
        ({"lease_seconds": 20, "heartbeat_seconds": 15}, "at least twice heartbeat_seconds"),
        ({"database_url": "sqlite://"}, "must be a PostgreSQL URL"),
        ({"secure_cookies": "maybe"}, "not a boolean"),
    ],
)
def test_bad_values_fail_naming_the_field(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CoordinatorConfig.from_mapping(values)


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        CoordinatorConfig.load(tmp_path / "absent.toml", environ={})


def test_broken_toml_is_an_error(tmp_path):
    file = tmp_path / "bad.toml"
    file.write_text("lease_seconds = = 3")
    with pytest.raises(ConfigError, match="cannot read config file"):
        CoordinatorConfig.load(file, environ={})
