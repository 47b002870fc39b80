"""agent error: why an agent reporting the error state takes no work

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("reported_error", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("agents", "reported_error")
