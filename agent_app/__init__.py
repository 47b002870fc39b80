"""The claude-agent daemon: claims tasks, works on them with Claude, opens pull requests."""

__version__ = "0.1.0"
