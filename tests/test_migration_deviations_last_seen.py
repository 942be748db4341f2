"""Migration 0009 drops the index on the deviation counts' last_seen; downgrade restores it.

The store statements run on both databases; the most recent counts still come first.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from alembic import command
from sqlalchemy import inspect

from scimbridge.store.database import Database
from scimbridge.store.deviations import count_deviations
from scimbridge.store.deviations import recent_deviations
from scimbridge.store.migrations import alembic_config
from scimbridge.store.migrations import upgrade

_NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _indexes(database: Database) -> set[str]:
    with database.read() as conn:
        return {str(index["name"]) for index in inspect(conn).get_indexes("client_deviations")}


def test_counts_keep_their_order_without_the_index_and_downgrade_restores_it(
    database_url: str,
) -> None:
    """No last_seen index after upgrade; counts listed newest first; the index comes back."""
    database = Database(database_url)
    upgrade(database, "0008_members_without_rowid")
    assert "ix_client_deviations_last_seen" in _indexes(database)
    upgrade(database)
    assert "ix_client_deviations_last_seen" not in _indexes(database)
    with database.write() as conn:
        count_deviations(conn, "entra", ["a", "b"], [], _NOW)
        count_deviations(conn, "okta", [], ["c"], _NOW + timedelta(seconds=2))
        count_deviations(conn, "entra", ["a"], [], _NOW + timedelta(seconds=1))
    with database.read() as conn:
        counts = recent_deviations(conn)
    assert [(c.token_name, c.deviation, c.tolerated, c.refused) for c in counts] == [
        ("okta", "c", 0, 1),
        ("entra", "a", 2, 0),
        ("entra", "b", 1, 0),
    ]
    command.downgrade(alembic_config(database), "0008_members_without_rowid")
    assert "ix_client_deviations_last_seen" in _indexes(database)
    database.dispose()
