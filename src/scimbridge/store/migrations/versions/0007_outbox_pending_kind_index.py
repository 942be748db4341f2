"""Outbox lanes: a partial index of pending jobs by kind, in primary-key order.

Revision ID: 0007_outbox
Revises: 0006
Create Date: 2026-12-06 10:45:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_outbox"
down_revision = "0006"
branch_labels = None
depends_on = None

_PENDING = "status IN ('queued', 'running', 'retrying')"


def upgrade() -> None:
    op.create_index(
        "ix_jobs_pending_kind_pk",
        "jobs",
        ["kind", "pk"],
        sqlite_where=sa.text(_PENDING),
        postgresql_where=sa.text(_PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_pending_kind_pk", table_name="jobs")
