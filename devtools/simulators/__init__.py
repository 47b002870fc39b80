"""Offline stand-ins for GitHub and the Claude API that speak their wire protocols."""
