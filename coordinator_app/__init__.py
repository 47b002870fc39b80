"""The Flask coordinator: webhooks, analysis, dispatch, agent registry, API and admin pages.

``coordinator_app.app.create_app`` builds the web app; ``coordinator_app.wsgi`` serves it.
"""

__version__ = "0.1.0"
