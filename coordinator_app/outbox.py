"""Side effects on GitHub, recorded in the same transaction as the change that causes them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from coordinator_app.models import OutboxMessage

STATE_LABEL_PREFIX = "claude:"


def set_state_label(session: Session, repository: str, issue_number: int, label: str | None):
    """Make ``label`` the issue's only ``claude:*`` label (None removes them all)."""
    session.add(
        OutboxMessage(
            kind="state_label",
            payload={"repository": repository, "issue": issue_number, "label": label},
        )
    )


def comment(session: Session, repository: str, issue_number: int, body: str) -> None:
    """Post a comment on an issue or pull request."""
    session.add(
        OutboxMessage(
            kind="comment", payload={"repository": repository, "issue": issue_number, "body": body}
        )
    )
