"""The audit log: every admin or agent action that changes state, with who, when and from where."""

from __future__ import annotations

from flask import has_request_context, request
from sqlalchemy.orm import Session

from coordinator_app.models import AuditEntry


def record(session: Session, actor: str, action: str, target: str = "", **details) -> None:
    """Add an audit entry to the session (committed with the change it describes)."""
    remote = request.remote_addr if has_request_context() else None
    session.add(
        AuditEntry(actor=actor, action=action, target=target, details=details, remote_addr=remote)
    )
