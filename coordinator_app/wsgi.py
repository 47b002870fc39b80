"""The WSGI entry point for gunicorn: ``gunicorn coordinator_app.wsgi:app``.

The web workers only serve requests: the background work is the processor's, a service of its
own (``ccc process``, the ``claude-coordinator-processor`` unit).
"""

from __future__ import annotations

from coordinator_app.app import create_app

app = create_app()
