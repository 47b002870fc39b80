"""What an agent gets to act on GitHub for one task, handed over with the claim (over TLS).

In App mode a fresh installation token for the task's repository alone, with contents,
pull_requests and issues write and nothing else, expiring within the hour; the agent asks for
a new one (naming the ref it will push) when it runs low. In token mode the one token. Never
stored by the coordinator, never written to disk by the agent.
"""

from __future__ import annotations

from coordinator_app.github_auth import noreply_email
from coordinator_app.github_gateway import GitHubGateway
from coordinator_app.models import Task


def for_task(task: Task, gateway: GitHubGateway, api_url: str) -> dict:
    """The task's GitHub grant, with the identity its commits carry."""
    grant = gateway.auth.grant(task.repository)
    name, email = gateway.auth.identity(task.repository).commit_author(api_url)
    co_authors = []
    if task.requested_by_id:  # a GitHub user asked for it (not an admin through the API)
        address = noreply_email(api_url, task.requested_by, task.requested_by_id)
        co_authors.append(f"{task.requested_by} <{address}>")
    return {
        "token": grant.token,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        "repository": task.repository,
        "permissions": grant.permissions,
        "api_url": api_url,
        "branch": task.branch,
        "author": {"name": name, "email": email},
        "co_authors": co_authors,
        "requester": task.requested_by if task.requested_by_id else None,
    }
