"""each claim is an attempt with its own id; a queued task remembers the queue it is offered on

``attempt_id``: every agent report names it, and only the current attempt's reports count (a run
whose lease was reaped cannot complete, fail or push the task). ``offered_queue``: the processor
moves an offer from ``general`` to a specialist's queue when that specialist comes up.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("attempt_id", sa.String(32), nullable=True))
    op.add_column("tasks", sa.Column("offered_queue", sa.String(40), nullable=True))
    # Tasks running across the upgrade have no attempt: their agents restart with the upgrade
    # and hand them back; queued offers of unknown queue are offered again.
    op.execute(
        "UPDATE tasks SET queue_entry = NULL WHERE state = 'queued' AND queue_entry IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_column("tasks", "offered_queue")
    op.drop_column("tasks", "attempt_id")
