"""LDAP sync: DNs sent as an entry's new name before the outcome is recorded.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ldap_unconfirmed_dns",
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("dn_key", sa.String(length=1024), nullable=False),
        sa.Column("resource_type", sa.String(length=16), nullable=False),
        sa.Column("dn", sa.Text(), nullable=False),
        sa.Column("sent", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resource_id", "dn_key", name=op.f("pk_ldap_unconfirmed_dns")),
    )


def downgrade() -> None:
    op.drop_table("ldap_unconfirmed_dns")
