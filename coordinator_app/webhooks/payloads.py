"""What the intake reads of each event's payload, as JSON Schema.

A signed delivery that breaks the schema of its event is refused with 400 before it is stored:
the processor could only fail on it. Only what the intake and the served-repository rules read
is declared, with the types and sizes their columns take; the rest of a payload is GitHub's
business and passes unchecked.
"""

from __future__ import annotations

from coordinator_app.db import BIGINT_MAX, INT_MAX
from coordinator_app.json_input import nullable, object_of, string, validator
from coordinator_app.models import PullRequest, Task, WebhookDelivery

TEXT = nullable(string())  # titles and bodies: GitHub sends null for an empty one
NUMBER = {"type": "integer", "minimum": 1, "maximum": INT_MAX}  # of an issue or pull request
GITHUB_ID = {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX}
REPOSITORY = object_of(full_name=nullable(string(Task.repository)))
REPOSITORIES = nullable({"type": "array", "items": REPOSITORY})
ISSUE = object_of("number", number=NUMBER, title=TEXT, body=TEXT)
PULL_REQUEST = object_of("number", number=NUMBER)
TIME = nullable(string())  # ISO 8601; an unreadable one counts as absent
# The user who acted: who asked for the work, and whether it was the cluster itself.
SENDER = object_of(
    "login", login=string(Task.requested_by), id=nullable(GITHUB_ID), type=nullable(string())
)


def _event(*required: str, **properties: dict) -> dict:
    """An event's payload: the fields every event may carry, then its own."""
    return object_of(
        *required,
        action=nullable(string(WebhookDelivery.action)),
        repository=nullable(REPOSITORY),
        installation=nullable(object_of(id=GITHUB_ID)),
        **properties,
    )


# The events the intake acts on; others are acknowledged (202) and not stored.
PAYLOADS = {
    "ping": _event(),
    # The App's installations: which repositories the cluster serves.
    "installation": _event(repositories=REPOSITORIES),
    "installation_repositories": _event(
        repositories_added=REPOSITORIES, repositories_removed=REPOSITORIES
    ),
    "issues": _event(
        "issue", "sender", issue=ISSUE, label=nullable(object_of(name=TEXT)), sender=SENDER
    ),
    "issue_comment": _event(
        "issue", "comment", "sender", issue=ISSUE, comment=object_of(body=TEXT), sender=SENDER
    ),
    # The cluster's pull requests: GitHub's decision, pushes by people, their activity.
    "pull_request": _event(
        "pull_request",
        "sender",
        pull_request=object_of(
            "number",
            number=NUMBER,
            merged=nullable({"type": "boolean"}),
            merged_at=TIME,
            closed_at=TIME,
        ),
        after=nullable(string(PullRequest.head_sha)),
        before=nullable(string()),
        sender=SENDER,
    ),
    "pull_request_review": _event(
        "review",
        "pull_request",
        "sender",
        review=object_of(state=TEXT, body=TEXT),
        pull_request=PULL_REQUEST,
        sender=SENDER,
    ),
    "pull_request_review_comment": _event(
        "comment",
        "pull_request",
        "sender",
        comment=object_of("path", body=TEXT, path=string()),
        pull_request=PULL_REQUEST,
        sender=SENDER,
    ),
}
VALIDATORS = {event: validator(schema) for event, schema in PAYLOADS.items()}
