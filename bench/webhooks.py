"""Signed GitHub ``issues.labeled`` deliveries built from a real payload, cheaply and in bulk."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from pathlib import Path

# Where the repository's shared fixtures live (../shared beside the checkout).
FIXTURE = (
    Path(__file__).resolve().parents[2] / "shared/fixtures/github-webhooks/issues/labeled.json"
)
REPOSITORY = "acme/widgets"  # in the simulator's sample seed
SENDER = "bob"  # has write access to acme/widgets in the sample seed
# Placeholders replaced per delivery; chosen so they occur nowhere else in the JSON text.
_NUMBER = "918273645"
_ISSUE_ID = "8172635490"


class LabeledPayloads:
    """Bodies of ``issues.labeled`` deliveries for many issues, from one fixture.

    The fixture is re-pointed at ``repository`` and ``sender`` (so the coordinator's permission
    check finds them on the simulator); the issue number, id and title vary per delivery.
    """

    def __init__(
        self,
        fixture: Path = FIXTURE,
        *,
        label: str,
        repository: str = REPOSITORY,
        sender: str = SENDER,
    ) -> None:
        payload = json.loads(fixture.read_text())
        owner, name = repository.split("/")
        repo = payload["repository"]
        repo.update(full_name=repository, name=name, private=True)
        repo["owner"]["login"] = owner
        payload["sender"]["login"] = sender
        payload["label"]["name"] = label
        issue = payload["issue"]
        issue.update(number=int(_NUMBER), id=int(_ISSUE_ID), title=f"Bench issue #{_NUMBER}")
        issue["user"]["login"] = sender
        issue["labels"] = [copy.deepcopy(payload["label"])]
        self._template = json.dumps(payload)
        if self._template.count(_NUMBER) != 2 or self._template.count(_ISSUE_ID) != 1:
            raise ValueError("placeholder collides with fixture content")

    def body(self, number: int, title: str | None = None) -> bytes:
        """The JSON body for issue ``number``."""
        text = self._template.replace(_ISSUE_ID, str(10_000_000_000 + number))
        if title is not None:
            text = text.replace(f"Bench issue #{_NUMBER}", title.replace('"', "'"))
        return text.replace(_NUMBER, str(number)).encode()


def signed_headers(secret: bytes, body: bytes, delivery: str | None = None) -> dict[str, str]:
    """The headers GitHub sends with ``body``: event, delivery id and HMAC-SHA256 signature."""
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={signature}",
    }
