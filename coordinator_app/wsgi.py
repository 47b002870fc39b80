"""The WSGI entry point for gunicorn: ``gunicorn coordinator_app.wsgi:app``.

The background processor starts in each worker (they coordinate through row locks), unless
``background_processing`` is off and ``ccc process`` runs it as a separate service.
"""

from __future__ import annotations

from coordinator_app import create_app

app = create_app()
if app.extensions["ccc"].config.background_processing:
    app.extensions["ccc"].processor.start()
