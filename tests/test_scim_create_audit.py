"""The audit event of a SCIM create: the whole new document, without secrets, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from scimbridge.app import create_app
from scimbridge.service.directory import audit
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .conftest import ENTERPRISE_SCHEMA
from .conftest import PATCH_SCHEMA
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


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["value", "Password", "secret", "type", "token_hash", "x"]),
            children,
            max_size=3,
        ),
    ),
    max_leaves=8,
)


def _stripped(value: Any) -> Any:
    """Remove secret keys at any depth, as every audit event must."""
    if isinstance(value, dict):
        return {
            key: _stripped(item)
            for key, item in value.items()
            if key.lower() not in {"password", "password_hash", "token", "token_hash", "secret"}
        }
    if isinstance(value, list):
        return [_stripped(item) for item in value]
    return value


@settings(max_examples=300, deadline=None)
@given(
    doc=st.dictionaries(
        st.sampled_from(["schemas", "userName", "password", "emails", "name", "Secret", "x"]),
        JSON_VALUES,
        max_size=5,
    )
)
def test_creation_changes_are_the_document_diff_without_secrets(doc: dict[str, Any]) -> None:
    """A create's changes: the diff from nothing to the document, stripped of secrets."""
    expected = _stripped({"status": "active", **audit.document_changes({}, doc)})
    assert audit.creation_changes("active", doc) == expected


_DOCS = st.dictionaries(
    st.sampled_from(["schemas", "userName", "password", "emails", "name", "Secret", "x"]),
    JSON_VALUES,
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(before=_DOCS, after=_DOCS)
def test_update_changes_are_the_document_diff_without_secrets(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    """An update's changes, computed before the writer lock: the diff, stripped of secrets."""
    changes = audit.update_changes(before, after)
    assert isinstance(changes, audit.SanitizedChanges)
    assert changes == _stripped(audit.document_changes(before, after))


@pytest.mark.parametrize("with_password", [False, True])
def test_a_scim_suspension_is_audited_with_the_other_changes_of_its_patch(
    store: tuple[ScimClient, Database], with_password: bool
) -> None:
    """One user.suspended event: what else changed, the status, sessions and links; no secret.

    Without a password the PATCH takes the fast path (changes compared before the writer
    lock); with one, scim2-models' path.
    """
    scim, database = store
    created = scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": "ada", "title": "Eng"})
    assert created.status_code == 201, created.get_data(as_text=True)
    value: dict[str, Any] = {"active": False, "title": "Countess"}
    if with_password:
        value["password"] = "correct horse battery staple 7!"
    patched = scim.patch(
        f"/Users/{created.get_json()['id']}",
        {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "value": value}]},
    )
    assert patched.status_code == 200, patched.get_data(as_text=True)
    (event,) = audit_rows(database, "user.suspended")
    expected: dict[str, Any] = {
        "active": {"before": True, "after": False},
        "title": {"before": "Eng", "after": "Countess"},
        "status": {"before": "active", "after": "suspended"},
        "sessions_ended": 0,
        "links_voided": 0,
    }
    if with_password:
        expected["password"] = "set"
    assert event.changes == expected
    assert "correct horse" not in str(event.changes)
