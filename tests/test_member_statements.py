"""What a group member PATCH does under the writer lock, and the order of its errors.

The store statements run on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from scimbridge.domain.resources import GroupResource
from scimbridge.service.directory.mapping import document
from scimbridge.service.directory.mapping import group_columns
from scimbridge.store import resources as store
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade
from scimbridge.store.resources import ConcurrentUpdate

from .conftest import ScimClient
from .conftest import created
from .conftest import group_payload
from .conftest import patch_payload
from .store_support import sequential_ids
from .store_support import store_users

_NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
USERS = 1200
"""More ids than one ``IN`` chunk (500) held before, so one parameter carries them all."""


@pytest.fixture
def seeded(database_url: str) -> Iterator[tuple[Database, list[str], str, int]]:
    """A store with USERS users and one group: (database, user ids, group id, group pk)."""
    database = Database(database_url)
    upgrade(database)
    names = [f"member.{index}" for index in range(USERS)]
    with database.write() as conn:
        ids = store_users(conn, names, _NOW, ids=sequential_ids(USERS))
        group = GroupResource(display_name="Staff")
        created = store.insert_group(
            conn,
            "10000000-0000-4000-8000-000000000001",
            group_columns(group),
            document(group),
            _NOW,
        )
    yield database, ids, created.id, created.pk
    database.dispose()


def test_resource_types_name_users_and_groups_and_skip_unknown_ids(
    seeded: tuple[Database, list[str], str, int],
) -> None:
    """Every existing id maps to its type, repeated ids once, unknown ones not at all."""
    database, ids, group_id, _ = seeded
    asked = [*ids, ids[0], group_id, "no-such-id", "", 'quote"and\\backslash']
    with database.read() as conn:
        found = store.resource_types_of(conn, asked)
        empty = store.resource_types_of(conn, [])
    assert found == {**dict.fromkeys(ids, "User"), group_id: "Group"}
    assert empty == {}


def test_add_members_counts_only_the_rows_it_added(
    seeded: tuple[Database, list[str], str, int],
) -> None:
    """Members already present are left alone and not counted; the display is stored."""
    database, ids, _, group_pk = seeded
    with database.write() as conn:
        first = store.add_members(conn, group_pk, {ids[0]: "User", ids[1]: "User"}, {ids[0]: "A"})
    with database.write() as conn:
        again = store.add_members(conn, group_pk, {member: "User" for member in ids[:5]})
        nothing = store.add_members(conn, group_pk, {})
    with database.read() as conn:
        record = store.get(conn, "Group", "10000000-0000-4000-8000-000000000001")
        assert record is not None
        store.load_members(conn, [record])
    assert (first, again, nothing) == (2, 3, 0)
    assert record.memberships is not None
    members = {membership.id: membership.display for membership in record.memberships}
    assert set(members) == set(ids[:5])
    assert members[ids[0]] == "A"


def test_a_member_change_bumps_the_version_once_and_refuses_a_stale_one(
    seeded: tuple[Database, list[str], str, int],
) -> None:
    """A member change moves version and lastModified only; a stale version is refused."""
    database, _, group_id, _ = seeded
    later = _NOW + timedelta(minutes=5)
    with database.write() as conn:
        record = store.get(conn, "Group", group_id)
        assert record is not None
        bumped = store.update_group(conn, record, None, None, later)
    with database.read() as conn:
        stored = store.get(conn, "Group", group_id)
    assert stored is not None
    assert (bumped.version, stored.version) == (record.version + 1, record.version + 1)
    assert stored.last_modified == bumped.last_modified == later
    assert stored.created == record.created
    assert stored.doc == record.doc
    with pytest.raises(ConcurrentUpdate), database.write() as conn:
        store.update_group(conn, record, None, None, later)


def test_a_read_with_memberships_lists_direct_and_nested_groups_and_none_for_others(
    seeded: tuple[Database, list[str], str, int],
) -> None:
    """A member of a group nested in another has both; a user in no group has none."""
    database, ids, staff_id, staff_pk = seeded
    with database.write() as conn:
        outer = GroupResource(display_name="Everyone")
        everyone = store.insert_group(
            conn,
            "10000000-0000-4000-8000-000000000002",
            group_columns(outer),
            document(outer),
            _NOW,
        )
        store.add_members(conn, staff_pk, {ids[0]: "User"})
        store.add_members(conn, everyone.pk, {staff_id: "Group"})
    with database.read() as conn:
        member = store.get_with_memberships(conn, "User", ids[0])
        loner = store.get_with_memberships(conn, "User", ids[1])
        group = store.get_with_memberships(conn, "Group", everyone.id)
        missing = store.get_with_memberships(conn, "User", "no-such-id")
    assert member is not None and loner is not None and group is not None
    assert member.memberships is not None
    groups = {(membership.id, membership.kind) for membership in member.memberships}
    assert groups == {(staff_id, "direct"), (everyone.id, "indirect")}
    assert loner.memberships == []
    assert loner.doc["userName"] == "member.1"
    assert group.memberships is not None
    assert [(membership.id, membership.type) for membership in group.memberships] == [
        (staff_id, "Group")
    ]
    assert missing is None


def test_a_member_operation_error_comes_after_the_group_and_its_etag_are_checked(
    scim: ScimClient,
) -> None:
    """Split before the write, raised where it ran before: 404 and 412 still come first."""
    bad = patch_payload({"op": "replace", "path": "members.value", "value": "x"})
    unknown = scim.patch("/Groups/10000000-0000-4000-8000-00000000dead", bad)
    group_id = created(scim.post("/Groups", group_payload("Staff")))
    stale = scim.patch(f"/Groups/{group_id}", bad, headers={"If-Match": 'W/"41"'})
    refused = scim.patch(f"/Groups/{group_id}", bad)
    later = scim.patch(
        f"/Groups/{group_id}",
        patch_payload(
            {"op": "add", "path": "members", "value": [{"value": "no-such-member"}]},
            {"op": "replace", "path": "members.value", "value": "x"},
        ),
    )
    assert (unknown.status_code, stale.status_code, refused.status_code) == (404, 412, 400)
    assert refused.get_json()["scimType"] == "mutability"
    # The first operation fails first (an unknown member), as when each ran in turn.
    assert (later.status_code, later.get_json()["scimType"]) == (400, "invalidValue")
