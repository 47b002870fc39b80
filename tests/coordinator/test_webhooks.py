"""``POST /webhooks/github``: signatures, malformed input, size, dedupe, concurrent duplicates."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from coordinator_app.models import WebhookDelivery
from lab.services import free_port
from tests.coordinator.conftest import signed_delivery

FIXTURES = [
    "ping/payload.json",
    "issues/opened.json",
    "issues/labeled.json",
    "issue_comment/created.json",
    "pull_request_review_comment/created.json",
    "pull_request/closed.json",
]


def _load(folder, name) -> tuple[str, bytes]:
    return name.split("/")[0], (folder / name).read_bytes()


def _stored(ccc) -> int:
    with ccc.database.session() as session:
        return session.scalar(select(func.count()).select_from(WebhookDelivery))


@pytest.mark.parametrize("name", FIXTURES)
def test_real_payloads_are_accepted_and_stored(client, ccc, webhook_fixtures, name):
    event, raw = _load(webhook_fixtures, name)
    body, headers = signed_delivery(raw, event)
    answer = client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status_code == 202, answer.json
    assert answer.json == {"status": "accepted", "delivery": headers["X-GitHub-Delivery"]}
    with ccc.database.session() as session:
        stored = session.get(WebhookDelivery, headers["X-GitHub-Delivery"])
        assert stored.event == event and stored.status == "received"
        assert stored.payload == json.loads(raw)  # byte-exact body, parsed once


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.pop("X-Hub-Signature-256"), "missing or invalid"),
        (lambda h: h.update({"X-Hub-Signature-256": "sha256=" + "0" * 64}), "missing or invalid"),
        (lambda h: h.update({"X-Hub-Signature-256": "sha1=abc"}), "missing or invalid"),
    ],
    ids=["missing", "wrong", "sha1 only"],
)
def test_bad_signature_is_refused_and_nothing_stored(
    client, ccc, webhook_fixtures, mutate, message
):
    body, headers = signed_delivery(*reversed(_load(webhook_fixtures, "issues/labeled.json")))
    mutate(headers)
    answer = client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status_code == 401 and message in answer.json["error"]["message"]
    assert _stored(ccc) == 0


def test_signature_with_another_secret_is_refused(client, ccc):
    body, headers = signed_delivery({"zen": "hi"}, "ping", secret="not-the-secret")
    assert client.post("/webhooks/github", data=body, headers=headers).status_code == 401


def test_body_changed_after_signing_is_refused(client, ccc):
    body, headers = signed_delivery({"action": "labeled"}, "issues")
    answer = client.post(
        "/webhooks/github", data=body.replace(b"labeled", b"closed"), headers=headers
    )
    assert answer.status_code == 401


def test_malformed_json_is_400(client, ccc):
    body, headers = signed_delivery(b'{"action": "labeled",', "issues")
    answer = client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status_code == 400 and "malformed JSON" in answer.json["error"]["message"]
    assert _stored(ccc) == 0


def test_non_object_json_is_400(client):
    body, headers = signed_delivery(b"[1, 2]", "issues")
    assert client.post("/webhooks/github", data=body, headers=headers).status_code == 400


def test_missing_event_header_is_400(client):
    body, headers = signed_delivery({"zen": "x"}, "ping")
    del headers["X-GitHub-Event"]
    assert client.post("/webhooks/github", data=body, headers=headers).status_code == 400


def test_oversized_body_is_413(client, ccc):
    padding = "x" * (ccc.config.max_webhook_bytes + 1)
    body, headers = signed_delivery({"pad": padding}, "issues")
    answer = client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status_code == 413 and answer.json["error"]["code"] == "too_large"
    assert _stored(ccc) == 0


def test_a_form_encoded_delivery_is_accepted_like_json(client, ccc, webhook_fixtures):
    # GitHub's webhook form defaults to application/x-www-form-urlencoded: payload=<JSON>.
    event, raw = _load(webhook_fixtures, "issues/labeled.json")
    form = urlencode({"payload": raw.decode()}).encode()
    body, headers = signed_delivery(form, event)  # signed over the body as sent
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    answer = client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status_code == 202, answer.json
    with ccc.database.session() as session:
        stored = session.get(WebhookDelivery, headers["X-GitHub-Delivery"])
        assert stored.payload == json.loads(raw)
    without = signed_delivery(b"zen=nothing", event)
    without[1]["Content-Type"] = "application/x-www-form-urlencoded"
    refused = client.post("/webhooks/github", data=without[0], headers=without[1])
    assert refused.status_code == 400 and "payload field" in refused.json["error"]["message"]


@pytest.fixture
def gunicorn(config, tmp_path):
    """The coordinator under gunicorn, as the role runs it: (host, port)."""
    names = ("database_url", "redis_url", "secret_key", "webhook_secret", "repositories")
    values = {name: getattr(config, name) for name in names}
    values |= {"max_webhook_bytes": 64 * 1024}
    toml = tmp_path / "coordinator.toml"
    toml.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--threads", "2",
         "--bind", f"127.0.0.1:{port}", "coordinator_app.wsgi:app"],
        env={**os.environ, "CCC_CONFIG": str(toml)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(10)


def test_a_body_over_the_limit_gets_a_readable_413_without_100_continue(gunicorn, ccc):
    """A client that sends the whole body at once (no `Expect: 100-continue`) reads the 413
    instead of a reset connection."""
    body, headers = signed_delivery({"pad": "x" * 4 * 2**20}, "issues")
    connection = http.client.HTTPConnection(*gunicorn, timeout=30)
    connection.request("POST", "/webhooks/github", body=body, headers=headers)
    answer = connection.getresponse()
    assert answer.status == 413
    assert json.loads(answer.read())["error"]["code"] == "too_large"
    connection.close()
    assert _stored(ccc) == 0


def test_unhandled_event_is_acknowledged_not_stored(client, ccc):
    body, headers = signed_delivery({"ref": "refs/heads/main"}, "push")
    answer = client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status_code == 202 and answer.json["status"] == "ignored"
    assert _stored(ccc) == 0


def test_redelivery_creates_nothing_new(client, ccc, webhook_fixtures):
    event, raw = _load(webhook_fixtures, "issues/labeled.json")
    body, headers = signed_delivery(raw, event, delivery="d0d0-1")
    assert client.post("/webhooks/github", data=body, headers=headers).status_code == 202
    again = client.post("/webhooks/github", data=body, headers=headers)
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    assert _stored(ccc) == 1


def test_concurrent_duplicates_store_one_delivery(app, ccc, webhook_fixtures):
    event, raw = _load(webhook_fixtures, "issues/labeled.json")
    body, headers = signed_delivery(raw, event, delivery="same-delivery")
    barrier = threading.Barrier(8)
    codes: list[int] = []

    def send() -> None:
        client = app.test_client()
        barrier.wait()
        codes.append(client.post("/webhooks/github", data=body, headers=headers).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] * 7 + [202]
    assert _stored(ccc) == 1


# Deliveries the fuzzer (tests/coordinator/test_fuzzing.py) found answered with a 500, or
# accepted and then failing in the processor.


def test_what_postgresql_cannot_store_is_replaced_not_refused(client, ccc, webhook_fixtures):
    """A signed delivery is GitHub's: a NUL or an unpaired surrogate in it must not lose it."""
    event, raw = _load(webhook_fixtures, "issues/labeled.json")
    payload = json.loads(raw)
    payload["issue"]["body"] = "before\x00after \ud800"
    payload["label"]["description"] = "\x00"
    body, headers = signed_delivery(payload, event)
    answer = client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status_code == 202, answer.json
    with ccc.database.session() as session:
        stored = session.get(WebhookDelivery, headers["X-GitHub-Delivery"]).payload
    assert stored["issue"]["body"] == "before\ufffdafter \ufffd"
    assert stored["label"]["description"] == "\ufffd"


@pytest.mark.parametrize(
    ("place", "value", "where"),
    [
        (("issue", "number"), 2**31, "payload.issue.number"),
        (("issue", "number"), "1", "payload.issue.number"),
        (("issue", "title"), {"a": 1}, "payload.issue.title"),
        (("sender", "login"), ["octocat"], "payload.sender.login"),
        (("repository", "full_name"), 7, "payload.repository.full_name"),
        (("action",), "x" * 61, "payload.action"),
        (("action",), {"a": 1}, "payload.action"),
    ],
)
def test_a_payload_the_intake_cannot_read_is_400_and_not_stored(
    client, ccc, webhook_fixtures, place, value, where
):
    event, raw = _load(webhook_fixtures, "issues/labeled.json")
    payload = json.loads(raw)
    holder = payload
    for key in place[:-1]:
        holder = holder[key]
    holder[place[-1]] = value
    body, headers = signed_delivery(payload, event)
    answer = client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status_code == 400 and answer.json["error"]["message"].startswith(where)
    assert _stored(ccc) == 0


def test_a_payload_without_what_the_intake_reads_is_400(client, ccc, webhook_fixtures):
    event, raw = _load(webhook_fixtures, "pull_request_review_comment/created.json")
    payload = json.loads(raw)
    del payload["comment"]["path"]
    body, headers = signed_delivery(payload, event)
    answer = client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status_code == 400
    assert "'path' is a required property" in answer.json["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"zen": Infinity}', "application/json"),
        (b"payload", "application/x-www-form-urlencoded"),
        (b"&".join([b"a=1"] * 20), "application/x-www-form-urlencoded"),
    ],
    ids=["too deep", "Infinity", "form without pairs", "too many form fields"],
)
def test_json_or_forms_python_reads_but_json_has_not_are_400(client, ccc, raw, content_type):
    body, headers = signed_delivery(raw, "ping")
    headers["Content-Type"] = content_type
    answer = client.post("/webhooks/github", data=body, headers=headers)
    assert answer.status_code == 400, answer.json
    assert _stored(ccc) == 0


def test_a_delivery_id_that_is_no_guid_is_400(client, ccc):
    for delivery in ("a" * 65, "with space", "tab\there"):
        body, headers = signed_delivery({"zen": "x"}, "ping", delivery=delivery)
        assert client.post("/webhooks/github", data=body, headers=headers).status_code == 400
    assert _stored(ccc) == 0
