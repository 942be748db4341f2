"""Transactions on SQLite: the connections a thread keeps, nesting, and threads that end."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import insert
from sqlalchemy import select

from scimbridge.store.database import Database
from scimbridge.store.database import DatabaseError
from scimbridge.store.migrations import upgrade
from scimbridge.store.prepared import PreparedStatement
from scimbridge.store.tables import users

_INSERT_USER = PreparedStatement(insert(users).returning(users.c.pk))


def _user(name: str) -> dict[str, Any]:
    now = datetime.now(UTC).replace(tzinfo=None)
    return {
        "id": f"id-{name}",
        "user_name": name,
        "user_name_key": name,
        "active": True,
        "status": "active",
        "password_change_required": False,
        "created": now,
        "last_modified": now,
        "version": 1,
        "doc": {"userName": name},
    }


def _user_names(database: Database) -> list[str]:
    with database.read() as conn:
        return list(conn.execute(select(users.c.user_name).order_by(users.c.pk)).scalars())


def test_a_thread_reuses_its_connections(database: Database) -> None:
    """Two transactions in a row on one thread use the same connection."""
    with database.read() as first:
        pass
    with database.read() as second:
        assert second is first
    with database.write() as writer:
        assert writer is not first


def test_a_transaction_inside_another_gets_a_connection_of_its_own(database: Database) -> None:
    """A read opened within a read (or a write) on the same thread is a separate transaction."""
    with database.read() as outer, database.read() as inner:
        assert inner is not outer
        assert inner.execute(select(users.c.pk)).all() == []
    with database.write() as writer, database.read() as reader:
        assert reader is not writer


def test_a_failed_write_leaves_the_kept_connection_usable(database: Database) -> None:
    """The next transaction on the thread starts clean after one that raised."""
    with pytest.raises(RuntimeError), database.write() as conn:
        conn.execute(select(users.c.pk)).all()
        raise RuntimeError("refused")
    with database.write() as conn:
        assert conn.execute(select(users.c.pk)).all() == []


def test_the_connections_of_a_finished_thread_return_to_the_pool(database: Database) -> None:
    """A thread that ends gives its connections back: the pool holds none checked out."""

    def work() -> None:
        with database.write():
            pass
        with database.read():
            pass

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    del thread
    pool = database.engine.pool
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_write_of_prepared_statements_alone_commits_and_rolls_back(database: Database) -> None:
    """Statements run on the driver only are committed, or all undone when the block raises."""
    with database.write() as conn:
        _INSERT_USER.scalar(conn, _user("kept"))
    with pytest.raises(RuntimeError), database.write() as conn:
        _INSERT_USER.scalar(conn, _user("undone"))
        raise RuntimeError("refused")
    assert _user_names(database) == ["kept"]


def test_a_write_mixing_both_kinds_of_statement_is_one_transaction(database: Database) -> None:
    """A conn.execute() after a prepared statement joins the driver's transaction."""
    with pytest.raises(RuntimeError), database.write() as conn:
        _INSERT_USER.scalar(conn, _user("first"))
        conn.execute(insert(users).values(**_user("second")))
        raise RuntimeError("refused")
    with database.write() as conn:
        _INSERT_USER.scalar(conn, _user("first"))
        conn.execute(insert(users).values(**_user("second")))
    assert _user_names(database) == ["first", "second"]


def test_a_write_that_cannot_begin_raises_a_database_error(tmp_path: Any) -> None:
    """Another process holding SQLite's write lock past the busy timeout: a DatabaseError.

    The caller sees the store's error type (not the driver's), and the thread's next write
    goes through once the lock is free.
    """
    path = tmp_path / "locked.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()

    @event.listens_for(database.engine, "connect")
    def _short_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    # A writer outside scimbridge's writer queue, as another program on the file would be.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseError, match="locked"), database.write() as conn:
            _INSERT_USER.scalar(conn, _user("blocked"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with database.write() as conn:
        _INSERT_USER.scalar(conn, _user("after"))
    assert _user_names(database) == ["after"]
    database.dispose()
