"""PyGithub clients for the cluster's own calls, configured the same way everywhere."""

from __future__ import annotations

from github import Auth, Github


def client_with_auth(api_url: str, auth: Auth.Auth | None, timeout: int) -> Github:
    """A PyGithub client for the cluster's own calls (coordinator and agents).

    PyGithub's pacing and retries are off: callers sort GitHub's answers into permanent and
    temporary failures (cluster_core.github_errors) and keep the work for later, instead
    of sleeping inside a request while database locks are held.
    """
    return Github(
        base_url=api_url.rstrip("/"),
        auth=auth,
        timeout=timeout,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        # Objects are fetched when an attribute is read, not when they are named: calls on a
        # repository or issue need only its URL.
        lazy=True,
    )


def github_client(api_url: str, token: str, timeout: int = 15) -> Github:
    """A client acting with ``token`` (a task's grant, or the token of token mode)."""
    return client_with_auth(api_url, Auth.Token(token) if token else None, timeout)
