"""Fixed-window rate limits per client address, counted in Redis so every worker shares them."""

from __future__ import annotations

import logging
import time

import redis
from flask import request

from coordinator_app.exceptions import RateLimited

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60


def check(client: redis.Redis, scope: str, per_minute: int, subject: str | None = None) -> None:
    """Count this request; raise RateLimited over ``per_minute`` in the current window.

    ``subject``: what is counted (default the client address), e.g. a user name.
    When Redis is unreachable the request is let through: losing a webhook because the limiter
    cannot count would be worse than serving a burst.
    """
    window = int(time.time()) // WINDOW_SECONDS
    subject = subject if subject is not None else str(request.remote_addr)
    key = f"ccc:ratelimit:{scope}:{subject}:{window}"
    try:
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS * 2)
        count, _ = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("Rate limiter unavailable, letting request through: %s", exc)
        return
    if count > per_minute:
        raise RateLimited(retry_after=WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS)
