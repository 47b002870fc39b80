"""a failed task awaiting its retry holds its issue: no second task for it

Before, re-triggering such an issue made a second task, and the first's retry then clashed
with it on every pass. Existing clashes are settled first: the task that already runs wins,
and of several waiting retries the newest stays.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LIVE = "'analyzing', 'assigned', 'in_progress', 'pending', 'queued', 'review', 'testing'"


def upgrade() -> None:
    op.execute(
        """
        UPDATE tasks f SET retry_at = NULL
        WHERE f.state = 'failed' AND f.retry_at IS NOT NULL AND EXISTS (
            SELECT 1 FROM tasks o
            WHERE o.repository = f.repository AND o.issue_number = f.issue_number
              AND (o.state IN ('analyzing', 'assigned', 'in_progress', 'pending', 'queued',
                               'review', 'testing')
                   OR (o.state = 'failed' AND o.retry_at IS NOT NULL AND o.id > f.id)))
        """
    )
    op.drop_index("uq_tasks_one_live_per_issue", table_name="tasks")
    op.create_index(
        "uq_tasks_one_live_per_issue",
        "tasks",
        ["repository", "issue_number"],
        unique=True,
        postgresql_where=sa.text(
            f"state IN ({LIVE}) OR (state = 'failed' AND retry_at IS NOT NULL)"
        ),
    )


def downgrade() -> None:
    op.drop_index("uq_tasks_one_live_per_issue", table_name="tasks")
    op.create_index(
        "uq_tasks_one_live_per_issue",
        "tasks",
        ["repository", "issue_number"],
        unique=True,
        postgresql_where=sa.text(f"state IN ({LIVE})"),
    )
