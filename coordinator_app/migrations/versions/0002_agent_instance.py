"""agent instance

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 16:04:35.475165
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("instance", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("agents", "instance")
