"""Transactions on SQLite: the connections a thread keeps, nesting, and threads that end."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from scimbridge.store.database import Database
from scimbridge.store.tables import users


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
