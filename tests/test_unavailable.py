"""A database that cannot answer now gets 503 with Retry-After on every surface, not a 500.

Another program holding SQLite's write lock past the busy timeout stands in for any
"not now" of the store; the request changes nothing and succeeds when retried.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event
from sqlalchemy import text

from scimbridge.store.database import Database
from scimbridge.store.database import DatabaseError
from scimbridge.store.database import is_unavailable

from .admin_support import PageClient
from .api_support import ApiClient
from .api_support import api_app
from .api_support import api_token
from .api_support import database_of
from .api_support import problem_type
from .conftest import ScimClient
from .conftest import created
from .conftest import user_payload

__all__ = ["api_app"]

Locked = Callable[[], AbstractContextManager[None]]


@pytest.fixture
def locked(api_app: Flask) -> Locked:
    """Hold the database's write lock from outside scimbridge while the block runs."""
    database = database_of(api_app)
    database.dispose()

    @event.listens_for(database.engine, "connect")
    def _short_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    @contextmanager
    def hold() -> Iterator[None]:
        other = sqlite3.connect(str(database.url.database), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()

    return hold


def test_a_scim_write_gets_503_and_writes_nothing(api_app: Flask, locked: Locked) -> None:
    scim = ScimClient(api_app.test_client(), api_app.extensions["scimbridge"].tokens.create("idp"))
    with locked():
        response = scim.post("/Users", user_payload("while.locked"))
        # Reads go on beside the lock (WAL).
        assert scim.get('/Users?filter=userName eq "while.locked"').json["totalResults"] == 0
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.content_type == "application/scim+json"
    assert response.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert response.json["status"] == "503"
    assert scim.get('/Users?filter=userName eq "while.locked"').json["totalResults"] == 0
    created(scim.post("/Users", user_payload("while.locked")))


def test_a_system_api_write_gets_a_503_problem(api_app: Flask, locked: Locked) -> None:
    api = ApiClient(api_app.test_client(), api_token(api_app, "hr-script"))
    with locked():
        response = api.post("/users", {"email": "locked.out@example.com"})
    assert response.status_code == 503
    assert problem_type(response) == "service-unavailable"
    assert response.headers["Retry-After"] == "5"
    assert api.get("/users").get_json()["total"] == 0
    assert api.post("/users", {"email": "locked.out@example.com"}).status_code == 201


def test_a_page_gets_a_readable_503(api_app: Flask, locked: Locked) -> None:
    browser = PageClient(api_app)
    browser.token()
    with locked():
        response = browser.post("/password/forgot", {"email": "someone@example.com"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "Busy right now" in response.text
    assert "Traceback" not in response.text


def test_an_unreachable_postgresql_is_unavailable() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    database = Database("postgresql+psycopg://postgres@127.0.0.1:1/scimbridge")
    with pytest.raises(DatabaseError) as caught, database.read():
        pass
    assert is_unavailable(caught.value)
    database.dispose()


def test_a_faulty_statement_is_not_unavailable(database: Database) -> None:
    """A bug stays a 500: only "not now" errors are told to retry."""
    with pytest.raises(DatabaseError) as caught, database.read() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not is_unavailable(caught.value)
