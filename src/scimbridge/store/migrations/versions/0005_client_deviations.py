"""Deviations each SCIM token's client sent, by kind; audit events found by target name.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_deviations",
        sa.Column("token_name", sa.String(length=128), nullable=False),
        sa.Column("deviation", sa.String(length=64), nullable=False),
        sa.Column("tolerated", sa.Integer(), server_default="0", nullable=False),
        sa.Column("refused", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_name", "deviation", name=op.f("pk_client_deviations")),
    )
    with op.batch_alter_table("client_deviations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_client_deviations_last_seen"), ["last_seen"], unique=False
        )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_events_target_name"), ["target_name"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_target_name"))
    with op.batch_alter_table("client_deviations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_deviations_last_seen"))

    op.drop_table("client_deviations")
