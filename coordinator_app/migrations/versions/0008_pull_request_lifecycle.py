"""a task waits in review until GitHub merges or closes its pull request

``pull_requests``: each pull request the cluster opened, from opening to GitHub's decision (the
acceptance figures); ``tasks.executor``: what ran the model loop. A task in review no longer
holds its issue (its run is over; a follow-up may start beside it), so the one-live-task index
leaves review out. Pull requests of tasks completed before this change are recorded as open,
active now (no reminder for them before GitHub was asked): the processor reads their state back.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

LIVE_BEFORE = "'analyzing', 'assigned', 'in_progress', 'pending', 'queued', 'review', 'testing'"
LIVE_NOW = "'analyzing', 'assigned', 'in_progress', 'pending', 'queued', 'testing'"


def _live_index(states: str) -> None:
    op.drop_index("uq_tasks_one_live_per_issue", table_name="tasks")
    op.create_index(
        "uq_tasks_one_live_per_issue",
        "tasks",
        ["repository", "issue_number"],
        unique=True,
        postgresql_where=sa.text(
            f"state IN ({states}) OR (state = 'failed' AND retry_at IS NOT NULL)"
        ),
    )


def upgrade() -> None:
    op.add_column("tasks", sa.Column("executor", sa.String(40), nullable=True))
    op.create_table(
        "pull_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("branch", sa.String(200)),
        sa.Column("issue_number", sa.Integer, nullable=False),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.id", ondelete="SET NULL")),
        sa.Column("specialty", sa.String(20)),
        sa.Column("agent", sa.String(100)),
        sa.Column("executor", sa.String(40)),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("head_sha", sa.String(64)),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decided_by", sa.String(100)),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True)),
        sa.Column("reminded_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "uq_pull_requests_repository_number",
        "pull_requests",
        ["repository", "number"],
        unique=True,
    )
    op.create_index("ix_pull_requests_state", "pull_requests", ["state"])
    # The first task with a pull request number opened it.
    op.execute(
        """
        INSERT INTO pull_requests (repository, number, url, branch, issue_number, task_id,
            specialty, agent, state, opened_at, last_activity_at)
        SELECT DISTINCT ON (t.repository, t.pr_number) t.repository, t.pr_number, t.pr_url,
            t.branch, t.issue_number, t.id, t.specialty, a.name, 'open', t.updated_at, now()
        FROM tasks t LEFT JOIN agents a ON a.id = t.agent_id
        WHERE t.pr_number IS NOT NULL AND t.pr_url IS NOT NULL
        ORDER BY t.repository, t.pr_number, t.id
        """
    )
    _live_index(LIVE_NOW)


def downgrade() -> None:
    # Tasks waiting in review become completed, as they were before.
    op.execute("UPDATE tasks SET state = 'completed' WHERE state = 'review'")
    _live_index(LIVE_BEFORE)
    op.drop_table("pull_requests")
    op.drop_column("tasks", "executor")
