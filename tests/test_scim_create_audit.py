"""The audit event of a SCIM create: the whole new document, without secrets, on both stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scimbridge.app import create_app
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .conftest import ENTERPRISE_SCHEMA
from .conftest import USER_SCHEMA
from .conftest import ScimClient
from .conftest import make_settings
from .lifecycle_support import audit_rows
from .lifecycle_support import use_fast_password_hashing


@pytest.fixture
def store(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ScimClient, Database]]:
    """A SCIM client on a fresh store, SQLite and PostgreSQL, and that store."""
    use_fast_password_hashing(monkeypatch)
    database = Database(database_url)
    upgrade(database)
    app = create_app(make_settings(database_url), database)
    yield ScimClient(app.test_client(), app.extensions["scimbridge"].tokens.create("idp")), database
    database.dispose()


def test_a_created_user_is_audited_whole_and_without_its_password(
    store: tuple[ScimClient, Database],
) -> None:
    """Every attribute stored is in the event as after/None before; the password is not."""
    scim, database = store
    body = {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        "userName": "ada",
        "password": "correct horse battery staple 7!",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
        ENTERPRISE_SCHEMA: {"employeeNumber": "42", "manager": {"value": "boss"}},
    }
    created = scim.post("/Users", body)
    assert created.status_code == 201, created.get_data(as_text=True)
    (event,) = audit_rows(database, "user.created")
    expected = {
        "status": "active",
        "userName": {"before": None, "after": "ada"},
        "active": {"before": None, "after": True},
        "name": {"before": None, "after": {"givenName": "Ada", "familyName": "Lovelace"}},
        "emails": {
            "before": None,
            "after": [{"value": "ada@example.com", "type": "work", "primary": True}],
        },
        ENTERPRISE_SCHEMA: {
            "before": None,
            "after": {"employeeNumber": "42", "manager": {"value": "boss"}},
        },
    }
    assert event.changes == expected
    assert "correct horse" not in str(event.changes)
