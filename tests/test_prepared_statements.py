"""Prepared statements behave as ``conn.execute`` does, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import bindparam
from sqlalchemy import insert
from sqlalchemy import literal
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from scimbridge.store.database import Database
from scimbridge.store.prepared import PreparedStatement
from scimbridge.store.tables import users

_NOW = datetime(2026, 1, 2, 3, 4, 5, 678901)
_INSERT = insert(users).returning(users.c.pk)
_SELECT = select(users.c.pk, users.c.doc, users.c.created, users.c.active, literal("x")).where(
    users.c.user_name_key == bindparam("key")
)
_RENAME = update(users).where(users.c.pk == bindparam("at_pk")).values(user_name=bindparam("name"))


def _row(name: str) -> dict[str, Any]:
    return {
        "id": f"id-{name}",
        "user_name": name,
        "user_name_key": name.lower(),
        "active": True,
        "status": "active",
        "password_change_required": False,
        "created": _NOW,
        "last_modified": _NOW,
        "version": 1,
        "doc": {"userName": name, "emails": [{"value": f"{name}@example.com"}]},
    }


def test_rows_read_back_as_sqlalchemy_reads_them(db: Database) -> None:
    """Same values, same Python types (JSON, timestamps, booleans, constants) as conn.execute."""
    with db.write() as conn:
        PreparedStatement(_INSERT).scalar(conn, _row("Ann"))
    with db.read() as conn:
        prepared = PreparedStatement(_SELECT).first(conn, {"key": "ann"})
        plain = conn.execute(_SELECT, {"key": "ann"}).first()
    assert plain is not None and prepared == tuple(plain)
    assert prepared[1]["emails"] == [{"value": "Ann@example.com"}]
    assert prepared[2].replace(tzinfo=UTC) == _NOW.replace(tzinfo=UTC)
    assert prepared[3] is True and prepared[4] == "x"


def test_a_unique_violation_raises_integrity_error_and_rolls_back(db: Database) -> None:
    """The driver's error arrives as SQLAlchemy's IntegrityError; the transaction is undone."""
    with db.write() as conn:
        PreparedStatement(_INSERT).scalar(conn, _row("Bob"))
    with pytest.raises(IntegrityError), db.write() as conn:
        PreparedStatement(_INSERT).scalar(conn, {**_row("Other"), "id": "id-other"})
        PreparedStatement(_INSERT).scalar(conn, {**_row("BOB"), "id": "id-bob-2"})
    with db.read() as conn:
        assert [row[0] for row in PreparedStatement(select(users.c.id)).all(conn)] == ["id-Bob"]


def test_execute_returns_the_rows_changed(db: Database) -> None:
    """An UPDATE tells how many rows it changed: the optimistic version checks rely on it."""
    with db.write() as conn:
        pk = PreparedStatement(_INSERT).scalar(conn, _row("Cy"))
        rename = PreparedStatement(_RENAME)
        assert rename.execute(conn, {"at_pk": pk, "name": "Cyd"}) == 1
        assert rename.execute(conn, {"at_pk": pk + 1000, "name": "nobody"}) == 0


def test_a_sqlite_read_sees_one_snapshot(database: Database) -> None:
    """On SQLite, prepared statements of one read share its snapshot, as conn.execute's do.

    (PostgreSQL reads at READ COMMITTED either way: each statement sees what has committed.)
    """
    count = PreparedStatement(select(users.c.pk))
    with database.read() as conn:
        before = count.all(conn)
        with database.write() as writer:
            PreparedStatement(_INSERT).scalar(writer, _row("Dee"))
        assert count.all(conn) == before
    with database.read() as conn:
        assert len(count.all(conn)) == len(before) + 1
