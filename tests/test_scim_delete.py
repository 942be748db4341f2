"""SCIM DELETE: the row, its memberships and its audit tombstone go together, on both stores.

Without ``If-Match`` PostgreSQL deletes in one statement and SQLite in several; with it, the
row is read and compared first. Each way must leave the same tombstone and no membership.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from scimbridge.app import create_app
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade
from scimbridge.store.tables import audit_events
from scimbridge.store.tables import group_members

from .conftest import ScimClient
from .conftest import make_settings
from .lifecycle_support import audit_rows
from .test_resources import create_group
from .test_resources import create_user
from .test_resources import group_ids_of
from .test_resources import member_ids

# What an event says beyond when it happened: compared between the two ways of deleting.
_EVENT_FIELDS = (
    "actor_type",
    "actor_id",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "target_name",
    "changes",
    "request_id",
    "client_address",
)


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[ScimClient, Database]]:
    """A SCIM client on a fresh store, SQLite and PostgreSQL, and that store."""
    database = Database(database_url)
    upgrade(database)
    app = create_app(make_settings(database_url), database)
    yield ScimClient(app.test_client(), app.extensions["scimbridge"].tokens.create("idp")), database
    database.dispose()


def _event(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _EVENT_FIELDS}


def _count(database: Database, table: Any, *where: Any) -> int:
    with database.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


@pytest.mark.parametrize("if_match", [None, "*"], ids=["one-statement", "if-match"])
def test_deleting_a_user_leaves_its_tombstone_and_no_membership(
    store: tuple[ScimClient, Database], if_match: str | None
) -> None:
    """The user leaves every group, and one event keeps its id, name, caller and request."""
    scim, database = store
    alice, bob = create_user(scim, "Alice.Smith"), create_user(scim, "bob")
    staff = create_group(scim, "Staff", [alice["id"], bob["id"]])
    headers = {"X-Request-Id": "delete-alice-1", "User-Agent": "idp-test"}
    if if_match is not None:
        headers["If-Match"] = if_match
    assert scim.delete(f"/Users/{alice['id']}", headers=headers).status_code == 204
    assert member_ids(scim, staff["id"]) == {bob["id"]}
    assert _count(database, group_members, group_members.c.member_id == alice["id"]) == 0
    (tombstone,) = audit_rows(database, "user.deleted")
    assert _event(tombstone) == {
        "actor_type": "scim",
        "actor_id": "idp",
        "actor_name": "idp",
        "action": "user.deleted",
        "target_type": "User",
        "target_id": alice["id"],
        "target_name": "Alice.Smith",
        "changes": {"tombstone": {"id": alice["id"], "name": "Alice.Smith"}},
        "request_id": "delete-alice-1",
        "client_address": "127.0.0.1",
    }
    assert tombstone.at is not None


def test_both_ways_of_deleting_write_the_same_event(store: tuple[ScimClient, Database]) -> None:
    """A delete with and one without If-Match differ only in the resource they name."""
    scim, database = store
    users = [create_user(scim, name) for name in ("first", "second")]
    scim.delete(f"/Users/{users[0]['id']}", headers={"X-Request-Id": "r"})
    scim.delete(f"/Users/{users[1]['id']}", headers={"X-Request-Id": "r", "If-Match": "*"})
    plain, compared = (_event(row) for row in audit_rows(database, "user.deleted"))
    renamed = {
        "target_id": users[0]["id"],
        "target_name": "first",
        "changes": {"tombstone": {"id": users[0]["id"], "name": "first"}},
    }
    assert plain == {**compared, **renamed}


def test_deleting_a_group_leaves_its_tombstone_and_no_membership(
    store: tuple[ScimClient, Database],
) -> None:
    """A nested group leaves its parent; its members keep only their other groups."""
    scim, database = store
    alice = create_user(scim, "alice")
    staff = create_group(scim, "Staff", [alice["id"]])
    everyone = create_group(scim, "Everyone", [staff["id"], alice["id"]])
    assert scim.delete(f"/Groups/{staff['id']}").status_code == 204
    assert member_ids(scim, everyone["id"]) == {alice["id"]}
    assert group_ids_of(scim, alice["id"]) == {everyone["id"]}
    (tombstone,) = audit_rows(database, "group.deleted")
    assert (tombstone.target_type, tombstone.target_name) == ("Group", "Staff")
    assert tombstone.changes == {"tombstone": {"id": staff["id"], "name": "Staff"}}


def test_deleting_what_does_not_exist_writes_nothing(store: tuple[ScimClient, Database]) -> None:
    """404 for an unknown id, a deleted user's id, or a user's id under /Groups; no event."""
    scim, database = store
    alice = create_user(scim, "alice")
    events_before = _count(database, audit_events)
    assert scim.delete("/Users/00000000-0000-0000-0000-000000000000").status_code == 404
    assert scim.delete(f"/Groups/{alice['id']}").status_code == 404
    assert _count(database, audit_events) == events_before
    assert scim.get(f"/Users/{alice['id']}").status_code == 200
    assert scim.delete(f"/Users/{alice['id']}").status_code == 204
    assert scim.delete(f"/Users/{alice['id']}").status_code == 404
    assert _count(database, audit_events) == events_before + 1
