"""GitHub App identity: served repositories, the requester's id, permanent outbox failures

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "served_repositories",
        sa.Column("full_name", sa.String(200), primary_key=True),
        sa.Column("installation_id", sa.BigInteger(), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("tasks", sa.Column("requested_by_id", sa.BigInteger(), nullable=True))
    op.add_column("outbox", sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "failed_at")
    op.drop_column("tasks", "requested_by_id")
    op.drop_table("served_repositories")
