"""Client deviation counts: no index on last_seen.

Every request of a client that deviates from RFC 7644 (Entra's every PATCH) moves its
counts' ``last_seen``, and with an index on it each such request dirtied one more page,
written to the log and synced at commit. The table holds a row per token and deviation met:
the one query ordering by ``last_seen`` sorts those few rows faster than any index saves.

Revision ID: 0009_deviations_last_seen
Revises: 0008_members_without_rowid
Create Date: 2026-12-06 20:00:00.000000
"""

from alembic import op

revision = "0009_deviations_last_seen"
down_revision = "0008_members_without_rowid"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_client_deviations_last_seen", table_name="client_deviations")


def downgrade() -> None:
    op.create_index(
        "ix_client_deviations_last_seen", "client_deviations", ["last_seen"], unique=False
    )
