"""The claude-agent daemon: claims tasks, works on them with Claude, opens pull requests."""
