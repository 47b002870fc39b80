"""``POST /webhooks/github``: verify, store, answer, and let the processor act after the commit."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from flask import Blueprint, request
from sqlalchemy.dialects.postgresql import insert

from coordinator_app import ratelimit
from coordinator_app.db import get_session
from coordinator_app.errors import error_response
from coordinator_app.models import WebhookDelivery
from coordinator_app.services import services

logger = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# Events the intake acts on; others are acknowledged (202) and not stored.
HANDLED_EVENTS = {
    "ping",
    "issues",
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    # The App's installations: which repositories the cluster serves.
    "installation",
    "installation_repositories",
}


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=<HMAC-SHA256 of body>`` (compared in constant time)."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


@bp.post("/webhooks/github")
def github_webhook():
    """Receive one GitHub delivery."""
    ccc = services()
    ratelimit.check(ccc.redis, "webhook", ccc.config.webhook_rate_per_minute)
    body = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH Flask answers 413 first
    if not signature_valid(
        ccc.config.webhook_secret, body, request.headers.get("X-Hub-Signature-256")
    ):
        logger.warning("Webhook with a missing or wrong signature from %s", request.remote_addr)
        return error_response(401, "missing or invalid X-Hub-Signature-256")
    event = request.headers.get("X-GitHub-Event", "")
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    if not event or not delivery_id or len(delivery_id) > 64:
        return error_response(400, "X-GitHub-Event and X-GitHub-Delivery headers are required")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error_response(400, f"malformed JSON: {exc}")
    if not isinstance(payload, dict):
        return error_response(400, "malformed payload: expected a JSON object")
    if event not in HANDLED_EVENTS:
        return {"status": "ignored", "event": event}, 202

    session = get_session()
    # Dedupe on the delivery id in the insert itself: a redelivery (or the same delivery
    # arriving twice at once) inserts nothing and is answered like the first.
    stored = session.execute(
        insert(WebhookDelivery)
        .values(id=delivery_id, event=event, action=payload.get("action"), payload=payload)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(WebhookDelivery.id)
    ).scalar()
    session.commit()
    if stored is None:
        return {"status": "duplicate", "delivery": delivery_id}, 200
    ccc.processor.notify()
    return {"status": "accepted", "delivery": delivery_id}, 202
