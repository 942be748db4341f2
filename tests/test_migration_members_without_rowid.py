"""Migration 0008 moves SQLite's group memberships into a WITHOUT ROWID table, keeping them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import text

from scimbridge.store.database import Database
from scimbridge.store.migrations import alembic_config
from scimbridge.store.migrations import upgrade

MEMBERS = [
    (1, "b-user", "User", None),
    (1, "a-group", "Group", 'Sent "name"'),
    (2, "c", "User", ""),
]


def _table_sql(database: Database) -> str:
    with database.read() as conn:
        found = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'group_members'")
        ).scalar_one()
    return str(found)


def _members(database: Database) -> list[tuple[object, ...]]:
    with database.read() as conn:
        rows = conn.execute(text("SELECT * FROM group_members ORDER BY group_pk, member_id"))
        return [tuple(row) for row in rows]


def test_memberships_survive_the_move_to_without_rowid_and_back(tmp_path: Path) -> None:
    """Upgrade keeps every row, the index and the cascade; downgrade restores a rowid table."""
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(database, "0007_outbox")
    with database.write() as conn:
        for pk in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO groups (pk, id, display_name, display_name_key, created, "
                    "last_modified, version, doc) VALUES (:pk, :id, :name, :name, "
                    "'2026-01-01', '2026-01-01', 1, '{}')"
                ),
                {"pk": pk, "id": f"group-{pk}", "name": f"g{pk}"},
            )
        conn.execute(
            text("INSERT INTO group_members VALUES (:g, :m, :t, :d)"),
            [dict(zip("gmtd", row, strict=True)) for row in MEMBERS],
        )
    upgrade(database)
    assert "WITHOUT ROWID" in _table_sql(database)
    assert _members(database) == sorted(MEMBERS)
    with database.read() as conn:
        plan = conn.execute(
            text("EXPLAIN QUERY PLAN SELECT group_pk FROM group_members WHERE member_id = 'c'")
        ).all()
    assert "ix_group_members_member_id" in str(plan)
    with database.write() as conn:
        conn.execute(text("DELETE FROM groups WHERE pk = 1"))
    assert _members(database) == [(2, "c", "User", "")]
    command.downgrade(alembic_config(database), "0007_outbox")
    assert "WITHOUT ROWID" not in _table_sql(database)
    assert _members(database) == [(2, "c", "User", "")]
    database.dispose()
