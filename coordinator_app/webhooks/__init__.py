"""``POST /webhooks/github``: verify, store, answer, and let the processor act after the commit.

A signed delivery is GitHub's own, so what PostgreSQL cannot store in it (a NUL, an unpaired
surrogate) is replaced by U+FFFD rather than refused: a refusal would lose the event for good,
and no rule of the intake reads those characters. Malformed JSON, or a payload that lacks or
mistypes what the intake reads (``payloads.py``), is refused with 400.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from urllib.parse import parse_qs

from flask import Blueprint, request
from sqlalchemy.dialects.postgresql import insert

from cluster_core import storable
from coordinator_app import json_input, ratelimit
from coordinator_app.db import get_session
from coordinator_app.errors import error_response
from coordinator_app.exceptions import InvalidRequest
from coordinator_app.models import WebhookDelivery
from coordinator_app.services import services
from coordinator_app.webhooks.payloads import VALIDATORS

logger = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# GitHub's own cap on webhook payloads: more than this of a body too large is not even read.
DRAIN_BYTES = 25 * 2**20
# GitHub's delivery ids are GUIDs; the column holds 64 characters.
DELIVERY_ID = re.compile(r"[\x21-\x7e]{1,64}")


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=<HMAC-SHA256 of body>`` (compared in constant time)."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


def _json_of(body: bytes) -> bytes | str:
    """The delivery's JSON: the body itself, or its ``payload`` field when the webhook's
    content type is ``application/x-www-form-urlencoded`` (the default of GitHub's form).
    The signature covers the body as sent, so it is checked before this."""
    if request.mimetype != "application/x-www-form-urlencoded":
        return body
    try:
        fields = parse_qs(body.decode(), strict_parsing=True, max_num_fields=10)
    except ValueError as exc:  # undecodable, or not name=value pairs
        raise InvalidRequest(f"malformed form body: {exc}") from exc
    if "payload" not in fields:
        raise InvalidRequest("a form-encoded delivery needs its payload field")
    return fields["payload"][0]


def _too_large(limit: int):
    """413, readable: the body is read (up to ``DRAIN_BYTES``) and dropped first, since a
    client that does not wait for `100 Continue` is still sending, and closing on it would
    reset the connection before it reads the answer."""
    stream = request.environ["wsgi.input"]
    left = min(request.content_length or 0, DRAIN_BYTES)
    while left > 0:
        chunk = stream.read(min(left, 64 * 1024))
        if not chunk:
            break
        left -= len(chunk)
    return error_response(413, f"payload larger than {limit} bytes", code="too_large")


@bp.post("/webhooks/github")
def github_webhook():
    """Receive one GitHub delivery."""
    ccc = services()
    ratelimit.check(ccc.redis, "webhook", ccc.config.webhook_rate_per_minute)
    limit = ccc.config.max_webhook_bytes
    if (request.content_length or 0) > limit:
        return _too_large(limit)
    body = request.get_data(cache=False)  # a chunked body over the limit: Flask answers 413
    if not signature_valid(
        ccc.config.webhook_secret, body, request.headers.get("X-Hub-Signature-256")
    ):
        logger.warning("Webhook with a missing or wrong signature from %s", request.remote_addr)
        return error_response(401, "missing or invalid X-Hub-Signature-256")
    event = request.headers.get("X-GitHub-Event", "")
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    if not event or not DELIVERY_ID.fullmatch(delivery_id):
        return error_response(400, "X-GitHub-Event and X-GitHub-Delivery headers are required")
    payload = json_input.parse(_json_of(body))
    if not isinstance(payload, dict):
        return error_response(400, "malformed payload: expected a JSON object")
    if event not in VALIDATORS:
        return {"status": "ignored", "event": event}, 202
    payload = storable.storable(payload)
    json_input.check(payload, VALIDATORS[event], "payload")

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
