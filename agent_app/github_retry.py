"""The agent's GitHub calls wait out rate limits and outages, and stop at a refusal.

A temporary failure (429, 5xx, a rate-limit 403, the network) is tried again after the wait
GitHub asks for, within ``MAX_WAIT_SECONDS`` in all; a permanent one (401/403/404/410/422, a
push GitHub rejects) raises :class:`GitHubRefused` at once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TypeVar

from agent_app.exceptions import GitHubRefused, PublishError
from agent_app.gitcmd import GitError
from cluster_core.github_errors import DEFAULT_WAIT_SECONDS, Failure, classify

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_WAIT_SECONDS = 300
# How git reports GitHub's answers over HTTPS.
_HTTP_STATUS = re.compile(r"returned error: (\d{3})")
_REFUSED = (
    "[remote rejected]",
    "[rejected]",
    "Repository not found",
    "denied to",
    "refusing",
    "Authentication failed",
    "could not read Username",  # GitHub refused the token (git asks, and may not)
)


def git_failure(error: GitError) -> Failure:
    """What a failed clone, fetch or push means: GitHub's HTTP answer or a refused ref update
    is permanent (429 and 5xx aside); anything else (the network) is temporary."""
    text = str(error)
    status = _HTTP_STATUS.search(text)
    if status and (status.group(1) == "429" or status.group(1).startswith("5")):
        return Failure(False, text, DEFAULT_WAIT_SECONDS)
    if status or any(sign in text for sign in _REFUSED):
        return Failure(True, text)
    return Failure(False, text, DEFAULT_WAIT_SECONDS)


def patiently(
    what: str,
    call: Callable[[], T],
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_wait: float = MAX_WAIT_SECONDS,
) -> T:
    """``call()``, tried again after temporary failures; GitHubRefused on a permanent one,
    PublishError once ``max_wait`` seconds (tries and waits together) have passed."""
    deadline = time.monotonic() + max_wait
    while True:
        try:
            return call()
        except Exception as exc:
            failure = git_failure(exc) if isinstance(exc, GitError) else classify(exc)
            if failure is None:
                raise
            if failure.permanent:
                raise GitHubRefused(f"{what}: {failure.reason}") from exc
            if time.monotonic() + failure.wait_seconds > deadline:
                raise PublishError(f"{what}: {failure}; gave up after {max_wait:.0f}s") from exc
            logger.warning("%s: %s", what, failure)
            sleep(failure.wait_seconds)
