"""The Flask coordinator: webhooks, analysis, dispatch, agent registry, API and admin pages."""
