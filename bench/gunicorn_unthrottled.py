"""Gunicorn hooks for the what-if run of bench.webhook_ingest (``--github-throttle off``).

PyGithub (2.x) waits 0.25 s between any two requests and 1 s between writes of one client by
default; the coordinator's gateway keeps those defaults. This hook switches them off in each
worker, to show what the throttle costs. It changes nothing on disk.
"""

from __future__ import annotations


def post_worker_init(worker) -> None:
    """Drop the throttle of the worker's GitHub client (before any delivery is processed)."""
    requester = worker.wsgi.extensions["ccc"].gateway.client._Github__requester
    requester._Requester__seconds_between_requests = None
    requester._Requester__seconds_between_writes = None
