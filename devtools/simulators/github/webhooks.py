"""Webhook delivery: signed POSTs from a background worker, every attempt recorded."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import queue
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from simulators.github.models import App, Delivery, Hook, Repo, utcnow
from simulators.github.store import Store

logger = logging.getLogger(__name__)

USER_AGENT = "GitHub-Hookshot/simulator"
TARGET_TYPE = "X-GitHub-Hook-Installation-Target-Type"
TARGET_ID = "X-GitHub-Hook-Installation-Target-ID"
# Every App with a webhook gets these, whatever events it subscribes to.
APP_LIFECYCLE_EVENTS = ("installation", "installation_repositories")
# The response body GitHub keeps is truncated; so is ours, to keep memory bounded.
MAX_RESPONSE_BODY = 64 * 1024


def wire_body(content_type: str, payload: bytes) -> bytes:
    """The bytes POSTed: the JSON itself, or `payload=<json>` for form hooks (GitHub's default)."""
    if content_type == "json":
        return payload
    return urlencode({"payload": payload.decode()}).encode()


def sign(secret: str, body: bytes) -> tuple[str, str]:
    """The X-Hub-Signature (sha1) and X-Hub-Signature-256 header values for ``body``."""
    key = secret.encode()
    sha1 = hmac.new(key, body, hashlib.sha1).hexdigest()
    sha256 = hmac.new(key, body, hashlib.sha256).hexdigest()
    return f"sha1={sha1}", f"sha256={sha256}"


@dataclass
class _Job:
    """One delivery to attempt."""

    delivery: Delivery
    secret: str | None
    insecure_ssl: bool


class WebhookDispatcher:
    """Queues events for repository hooks and the App's webhook; delivers them from one thread.

    API calls only enqueue, so they answer as fast as GitHub's do; ``wait_idle`` lets tests wait
    for the queue to drain. Failed deliveries stay recorded and can be sent again with
    ``redeliver``.
    """

    def __init__(
        self, store: Store, *, timeout: float = 10.0, ca_file: str | os.PathLike | None = None
    ) -> None:
        self.store = store
        self.timeout = timeout
        # Extra CAs trusted for https:// hooks besides the system's (a cluster's private CA).
        self.ca_file = ca_file
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ghsim-webhooks", daemon=True)
        self._thread.start()

    def enqueue(self, repo: Repo, event: str, payload: dict, *, hook: Hook | None = None) -> list:
        """Queue ``event`` for every hook of ``repo`` that wants it (or only ``hook``)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        with self.store.lock:
            hooks = [hook] if hook else [h for h in repo.hooks.values() if h.wants(event)]
            deliveries = [
                self._record(
                    h,
                    event,
                    payload.get("action"),
                    body,
                    guid=str(uuid.uuid4()),
                    target=("repository", repo.id),
                    repo=repo.full_name,
                )
                for h in hooks
            ]
        for delivery, target in zip(deliveries, hooks, strict=True):
            self._submit(delivery, target)
        return deliveries

    def enqueue_app(
        self, app: App, event: str, payload: dict, *, installation_id: int, repo: Repo | None
    ) -> Delivery | None:
        """Queue ``event`` for the App's webhook, if it has one that wants it."""
        hook = app.hook
        if hook is None or not hook.active:
            return None
        if event not in APP_LIFECYCLE_EVENTS and not hook.wants(event):
            return None
        body = json.dumps(payload, separators=(",", ":")).encode()
        with self.store.lock:
            delivery = self._record(
                hook,
                event,
                payload.get("action"),
                body,
                guid=str(uuid.uuid4()),
                target=("integration", app.id),
                repo=repo.full_name if repo else None,
                installation_id=installation_id,
            )
        self._submit(delivery, hook)
        return delivery

    def redeliver(self, delivery_id: int) -> Delivery:
        """Send a recorded delivery again (same GUID and body, `redelivery` set)."""
        original = self.store.delivery(delivery_id)
        hook = self._hook_of(original)
        if hook is None:
            raise LookupError(f"hook {original.hook_id} of delivery {delivery_id} is gone")
        headers = original.request_headers
        with self.store.lock:
            delivery = self._record(
                hook,
                original.event,
                original.action,
                original.body,
                guid=original.guid,
                target=(headers[TARGET_TYPE], int(headers[TARGET_ID])),
                repo=original.repo,
                installation_id=original.installation_id,
            )
            delivery.redelivery = True
        self._submit(delivery, hook)
        return delivery

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every queued delivery has been attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self) -> None:
        """Stop the worker after the queued deliveries."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(self.timeout + 5)

    def _hook_of(self, delivery: Delivery) -> Hook | None:
        """The hook ``delivery`` went to: the App's, or one of its repository's (None: gone)."""
        app = self.store.app
        if app is not None and app.hook is not None and app.hook.id == delivery.hook_id:
            return app.hook
        repo = self.store.find_repo(delivery.repo) if delivery.repo else None
        return repo.hooks.get(delivery.hook_id) if repo else None

    def _record(
        self,
        hook: Hook,
        event: str,
        action: str | None,
        body: bytes,
        *,
        guid: str,
        target: tuple[str, int],
        repo: str | None,
        installation_id: int | None = None,
    ) -> Delivery:
        headers = {
            "Accept": "*/*",
            "Content-Type": "application/json"
            if hook.content_type == "json"
            else "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Event": event,
            "X-GitHub-Hook-ID": str(hook.id),
            TARGET_ID: str(target[1]),
            TARGET_TYPE: target[0],
        }
        if hook.secret:
            # Signed over the exact bytes sent, which differ from the JSON for form hooks.
            signed = wire_body(hook.content_type, body)
            headers["X-Hub-Signature"], headers["X-Hub-Signature-256"] = sign(hook.secret, signed)
        delivery = Delivery(
            id=self.store.next_id(),
            guid=guid,
            hook_id=hook.id,
            repo=repo,
            event=event,
            action=action,
            request_headers=headers,
            body=body,
            url=hook.url,
            installation_id=installation_id,
        )
        self.store.add_delivery(delivery)
        return delivery

    def _submit(self, delivery: Delivery, hook: Hook) -> None:
        self._queue.put(_Job(delivery, hook.secret, hook.insecure_ssl == "1"))

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._deliver(job)
            except Exception:  # the worker must survive any one bad delivery
                logger.exception("Webhook worker: delivery failed unexpectedly")
            finally:
                self._queue.task_done()

    def _deliver(self, job: _Job) -> None:
        delivery = job.delivery
        json_body = delivery.request_headers["Content-Type"] == "application/json"
        body = wire_body("json" if json_body else "form", delivery.body)
        started = time.monotonic()
        status, headers, text, outcome = 0, {}, "", ""
        try:
            status, headers, text = self._post(delivery.url, body, delivery.request_headers, job)
            outcome = "OK" if 200 <= status < 300 else f"Invalid HTTP Response: {status}"
        except (OSError, http.client.HTTPException) as exc:
            outcome = f"failed to connect to host: {exc}"
        with self.store.lock:  # readers see a delivery either pending or complete
            delivery.status_code, delivery.response_headers = status, headers
            delivery.response_body, delivery.status = text, outcome
            delivery.duration = time.monotonic() - started
            delivery.delivered_at = utcnow()
            self._remember_last_response(delivery)
        logger.info(
            "Webhook %s (%s) to %s: %s",
            delivery.event,
            delivery.guid,
            delivery.url,
            delivery.status,
        )

    def _post(
        self, url: str, body: bytes, headers: dict[str, str], job: _Job
    ) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(url)
        if parts.scheme == "https":
            context = ssl.create_default_context()
            if self.ca_file:
                context.load_verify_locations(cafile=self.ca_file)
            if job.insecure_ssl:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout, context=context
            )
        else:
            conn = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=self.timeout
            )
        try:
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read(MAX_RESPONSE_BODY).decode(errors="replace")
            return response.status, dict(response.getheaders()), text
        finally:
            conn.close()

    def _remember_last_response(self, delivery: Delivery) -> None:
        hook = self._hook_of(delivery)
        if hook is not None:
            hook.last_response = {
                "code": delivery.status_code or None,
                "status": "active" if delivery.success else "failed",
                "message": delivery.status,
            }
