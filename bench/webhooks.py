"""Signed GitHub ``issues.labeled`` deliveries, cheaply and in bulk, from one payload: a real one
recorded from GitHub when you give it, else the one the project's GitHub simulator sends."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import tempfile
import uuid
from pathlib import Path

from simulators.github.config import SimulatorConfig
from simulators.github.simulator import GitHubSimulator
from simulators.github.testing import sample_seed

REPOSITORY = "acme/widgets"  # in the simulator's sample seed
SENDER = "bob"  # has write access to acme/widgets in the sample seed
# Placeholders replaced per delivery; chosen so they occur nowhere else in the JSON text.
_NUMBER = "918273645"
_ISSUE_ID = "8172635490"


def simulated_payload() -> dict:
    """The ``issues.labeled`` payload the GitHub simulator sends (its shape is compared with
    GitHub's recorded payloads in tests/test_github_simulator_webhooks.py)."""
    with tempfile.TemporaryDirectory(prefix="ccc-bench-payload-") as data_dir:
        config = SimulatorConfig(seed=sample_seed(), data_dir=Path(data_dir))
        with GitHubSimulator(config) as sim:
            issue = sim.create_issue(REPOSITORY, SENDER, "Bench issue", "A body.", labels=["bug"])
            repo = sim.repo(REPOSITORY)
            return sim.payloads.issues("labeled", repo, issue, SENDER, label=repo.label("bug"))


def load_payload(fixture: Path | None) -> dict:
    """The payload in ``fixture`` (a recorded delivery's JSON body), else the simulator's."""
    if fixture is None:
        return simulated_payload()
    try:
        return json.loads(fixture.read_text())
    except FileNotFoundError:
        raise SystemExit(f"--fixture {fixture}: no such file") from None
    except ValueError as exc:
        raise SystemExit(f"--fixture {fixture}: not a JSON payload ({exc})") from None


class LabeledPayloads:
    """Bodies of ``issues.labeled`` deliveries for many issues, from one payload.

    The payload is re-pointed at ``repository`` and ``sender`` (so the coordinator's permission
    check finds them on the simulator); the issue number, id and title vary per delivery.
    """

    def __init__(
        self,
        payload: dict,
        *,
        label: str,
        repository: str = REPOSITORY,
        sender: str = SENDER,
    ) -> None:
        payload = copy.deepcopy(payload)
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
