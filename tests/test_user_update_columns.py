"""A user write SETs only the indexed columns whose attribute changed, and they stay right.

SQLite rewrites the index entries of every column an UPDATE names, even to the same value,
and each dirtied index page is written to the log and synced at commit: a deactivation that
named every column wrote four index pages for nothing. The store statements run on both
databases; the statement text is read from SQLite's trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from scimbridge.service.directory.mapping import user_columns
from scimbridge.store import resources as store
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade
from scimbridge.store.resources import StoredResource
from scimbridge.store.tables import users

_NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
_USER_ID = "20000000-0000-4000-8000-000000000001"
_DOC: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "Ada.Lovelace",
    "externalId": "ext-1",
    "displayName": "Ada Lovelace",
    "active": True,
    "emails": [{"value": "Ada@Example.org", "type": "work", "primary": True}],
}
_INDEXED = ("user_name", "user_name_key", "external_id", "display_name", "display_name_key")
_INDEXED += ("primary_email_key", "active")

# Each change, and the indexed columns it must SET (besides last_modified, version, doc).
_CHANGES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "active": ({"active": False}, {"active"}),
    "title": ({"title": "Countess"}, set()),
    "userName": ({"userName": "ada"}, {"user_name", "user_name_key"}),
    "externalId": ({"externalId": None}, {"external_id"}),
    "displayName": ({"displayName": "Ada King"}, {"display_name", "display_name_key"}),
    "emails": (
        {"emails": [{"value": "ada@king.example", "type": "home", "primary": True}]},
        {"primary_email_key"},
    ),
}


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A fresh store holding one user (``_DOC``)."""
    database = Database(database_url)
    upgrade(database)
    with database.write() as conn:
        store.insert_user(conn, _USER_ID, user_columns(_DOC), _DOC, None, _NOW)
    yield database
    database.dispose()


def _changed(doc: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    new = {**doc, **change}
    return {key: value for key, value in new.items() if value is not None}


def _update(database: Database, doc: dict[str, Any], statements: list[str] | None = None) -> None:
    with database.write() as conn:
        record = store.get(conn, "User", _USER_ID)
        assert record is not None
        driver: Any = conn.connection.dbapi_connection
        if statements is not None:
            driver.set_trace_callback(statements.append)
        try:
            store.update_user(
                conn, record, user_columns(doc), doc, None, _NOW + timedelta(seconds=1)
            )
        finally:
            if statements is not None:
                driver.set_trace_callback(None)


def _indexed_columns(database: Database) -> dict[str, Any]:
    with database.read() as conn:
        row = conn.execute(
            select(*(users.c[name] for name in _INDEXED)).where(users.c.id == _USER_ID)
        ).one()
    return dict(zip(_INDEXED, row, strict=True))


def _expected_columns(doc: dict[str, Any]) -> dict[str, Any]:
    columns = user_columns(doc)
    return {name: getattr(columns, name) for name in _INDEXED}


@pytest.mark.parametrize("change", list(_CHANGES))
def test_every_indexed_column_follows_the_document(database: Database, change: str) -> None:
    """After a write, each indexed column holds what the new document gives, changed or not."""
    doc = _changed(_DOC, _CHANGES[change][0])
    _update(database, doc)
    assert _indexed_columns(database) == _expected_columns(doc)
    with database.read() as conn:
        record: StoredResource | None = store.get(conn, "User", _USER_ID)
    assert record is not None
    assert record.doc == doc
    assert record.version == 2


@pytest.mark.parametrize("change", list(_CHANGES))
def test_the_update_sets_only_what_changed(sqlite_url: str, change: str) -> None:
    """The UPDATE names the columns of the changed attribute, and never the others."""
    database = Database(sqlite_url)
    upgrade(database)
    with database.write() as conn:
        store.insert_user(conn, _USER_ID, user_columns(_DOC), _DOC, None, _NOW)
    statements: list[str] = []
    _update(database, _changed(_DOC, _CHANGES[change][0]), statements)
    database.dispose()
    updates = [sql for sql in statements if sql.startswith("UPDATE users SET")]
    assert len(updates) == 1, statements
    # The trace shows the values bound: the test documents hold no "=" after a word.
    named = set(re.findall(r"(?:SET|,) (\w+)=", updates[0].split(" WHERE users.pk")[0]))
    assert named == _CHANGES[change][1] | {"last_modified", "version", "doc"}
