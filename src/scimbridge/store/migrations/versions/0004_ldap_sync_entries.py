"""LDAP sync: the entry last written for each user and group.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 00:44:18.088239
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ldap_entries",
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("dn", sa.Text(), nullable=False),
        sa.Column("dn_key", sa.String(length=1024), nullable=False),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("password_digest", sa.String(length=64), nullable=True),
        sa.Column("placeholder", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("members_as_of", sa.Integer(), server_default="0", nullable=False),
        sa.Column("members_written", sa.DateTime(timezone=True), nullable=True),
        sa.Column("written", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "resource_id", name=op.f("pk_ldap_entries")),
    )
    with op.batch_alter_table("ldap_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ldap_entries_dn_key"), ["dn_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ldap_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ldap_entries_dn_key"))

    op.drop_table("ldap_entries")
