"""Errors both apps raise."""

from __future__ import annotations


class ConfigError(Exception):
    """A setting is missing or has a value the process cannot use."""
