"""the processor's schedules live in PostgreSQL

One row per periodic duty of the processor (repository sync, polling, review read-back,
autoscaling): when it last ran, last succeeded, its last error and which processor ran it. A
processor that takes over from another keeps the same rhythm, and the admin pages read them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processor_schedules",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("run_by", sa.String(200), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("processor_schedules")
