"""A group's members written as JSON by the database answer exactly as the ones built in Python.

``GET /Groups/{id}`` has the database write the ``members`` array (store/member_json.py) and
splices that text into the response. These tests read the same random groups both ways, on
SQLite and PostgreSQL, and compare the encoded responses byte for byte: shape, key order,
escapes, member order, and which display name each member shows.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from scim2_models import ResponseParameters

from scimbridge.domain.resources import GroupResource
from scimbridge.scim.responses import member_refs
from scimbridge.scim.responses import resource_body
from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.service.directory.mapping import group_name_key
from scimbridge.service.directory.mapping import user_name_key
from scimbridge.service.directory.provisioning import ProvisioningService
from scimbridge.service.directory.roles import load_roles
from scimbridge.settings import Settings
from scimbridge.store import resources as store
from scimbridge.store.database import Database

from .conftest import make_settings

BOUNDED = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
BASES = ["http://scim.test/scim/v2", 'https://h.example/a"b\\c/é/scim/v2']
AWKWARD = ['"', "\\", 'a"b\\c', "\n\t\r\b\f", "\x01\x1f\x7f", "é😀", "\u2028\u2029", " ", "/"]


def _names(database: Database) -> st.SearchStrategy[str]:
    """Display names and userNames, with the characters JSON must escape or may not."""
    # PostgreSQL text holds no NUL; SQLite text does, and SCIM JSON may carry "\u0000".
    banned = "\x00" if database.dialect == "postgresql" else ""
    letters = st.characters(exclude_categories=("Cs",), exclude_characters=banned)
    free = st.text(letters, max_size=12)
    return st.one_of(free, st.sampled_from(AWKWARD))


@dataclass
class Member:
    """One member to store: a user, a group, or an id that names nothing (a ghost)."""

    kind: str
    sent_display: str | None
    """What the client sent as the member's display (group_members.display)."""
    name: str
    """The user's userName or the group's displayName."""
    user_display: str | None


def _members(database: Database) -> st.SearchStrategy[list[Member]]:
    names = _names(database)
    member = st.builds(
        Member,
        kind=st.sampled_from(["User", "User", "Group", "ghost"]),
        sent_display=st.none() | st.just("") | names,
        name=names,
        user_display=st.none() | st.just("") | names,
    )
    return st.lists(member, max_size=12)


_serial = itertools.count()


def _unique(name: str) -> str:
    """Make a name unique (userNames and group names are), keeping its awkward part first."""
    return f"{name}#{next(_serial)}"


def _id(name: str) -> str:
    """Return a member id: mostly a UUID, sometimes one with characters to escape.

    Never a NUL: ids are the ones scimbridge issues, and SQLite's JSON functions, through
    which members are added, end a string at a NUL.
    """
    if len(name) % 2:
        return str(uuid.uuid4())
    return f"{name.replace(chr(0), '')[:20]}~{next(_serial)}"


def _store_group(database: Database, members: list[Member]) -> str:
    """Store a group with these members; return its id."""
    now = datetime.now(UTC)
    with database.write() as conn:
        name = _unique("group")
        group = store.insert_group(
            conn,
            str(uuid.uuid4()),
            store.GroupColumns(name, group_name_key(name), None),
            {"schemas": [GROUP_SCHEMA], "displayName": name},
            now,
        )
        kinds: dict[str, str] = {}
        displays: dict[str, str] = {}
        for member in members:
            member_id = _id(member.name)
            if member.kind == "User":
                user_name = _unique(member.name)
                columns = store.UserColumns(
                    user_name,
                    user_name_key(user_name),
                    None,
                    member.user_display,
                    member.user_display.lower() if member.user_display else None,
                    True,
                    [],
                )
                store.insert_user(conn, member_id, columns, {"userName": user_name}, None, now)
            elif member.kind == "Group":
                group_name = _unique(member.name)
                store.insert_group(
                    conn,
                    member_id,
                    store.GroupColumns(group_name, group_name_key(group_name), None),
                    {"displayName": group_name},
                    now,
                )
            kinds[member_id] = "Group" if member.kind == "Group" else "User"
            if member.sent_display is not None:
                displays[member_id] = member.sent_display
        store.add_members(conn, group.pk, kinds, displays)
    return group.id


def _service(database: Database, settings: Settings, *, json_members: bool) -> ProvisioningService:
    directory = UserDirectory(database, settings, load_roles(settings.roles.file))
    return ProvisioningService(database, directory, json_members=json_members)


SELECTIONS: list[dict[str, Any]] = [
    {"attributes": ["members"]},
    {"attributes": ["members.display", "displayName"]},
    {"excludedAttributes": ["members.value"]},
]


@pytest.fixture
def services(db: Database, database_url: str) -> tuple[ProvisioningService, ProvisioningService]:
    """Two services on one store: members read as JSON text, and as objects."""
    settings = make_settings(database_url)
    return _service(db, settings, json_members=True), _service(db, settings, json_members=False)


def test_members_written_by_the_database_match_the_python_ones(
    db: Database, services: tuple[ProvisioningService, ProvisioningService]
) -> None:
    """Random groups answer the same bytes, and the same selected attributes, both ways."""
    as_json, as_objects = services

    @BOUNDED
    @given(members=_members(db), base=st.sampled_from(BASES))
    def check(members: list[Member], base: str) -> None:
        group_id = _store_group(db, members)
        refs = member_refs(base)
        written = as_json.get("Group", group_id, member_refs=refs)
        built = as_objects.get("Group", group_id, member_refs=refs)
        assert written.memberships is None
        assert built.members_json is None
        assert (written.members_json is None) == (not members)
        sent = orjson.dumps(resource_body(written, base))
        assert sent == orjson.dumps(resource_body(built, base))
        assert len(orjson.loads(sent).get("members", [])) == len(members)
        for selection in SELECTIONS:
            params = ResponseParameters[GroupResource].model_validate(selection)
            assert resource_body(written, base, params) == resource_body(built, base, params)

    check()


def test_members_of_a_group_keep_their_order_and_display_precedence(
    db: Database, services: tuple[ProvisioningService, ProvisioningService]
) -> None:
    """The sent display wins over the user's displayName, which wins over its userName."""
    as_json, _ = services
    members = [
        Member("User", "Sent", "alice", "Alice A."),
        Member("User", None, "bob", "Bob B."),
        Member("User", None, "carol", None),
        Member("User", "", "dave", ""),
        Member("Group", None, "admins", None),
    ]
    group_id = _store_group(db, members)
    record = as_json.get("Group", group_id, member_refs=member_refs(BASES[0]))
    assert record.members_json is not None
    entries = orjson.loads(record.members_json)
    assert [entry["value"] for entry in entries] == sorted(entry["value"] for entry in entries)
    displays = []
    for entry in entries:
        assert list(entry)[:3] == ["value", "$ref", "type"]
        endpoint = "Users" if entry["type"] == "User" else "Groups"
        assert entry["$ref"] == f"{BASES[0]}/{endpoint}/{entry['value']}"
        displays.append((entry["type"], entry.get("display", "").split("#")[0]))
    assert sorted(displays) == [
        ("Group", "admins"),
        ("User", ""),
        ("User", "Bob B."),
        ("User", "Sent"),
        ("User", "carol"),
    ]


def test_a_large_group_answers_the_same_bytes_both_ways(
    db: Database, services: tuple[ProvisioningService, ProvisioningService]
) -> None:
    """Hundreds of members, ids in random order of insertion: same order, same bytes."""
    as_json, as_objects = services
    members = [
        Member("Group" if n % 50 == 0 else "User", None, f"member {n}", None) for n in range(400)
    ]
    group_id = _store_group(db, members)
    refs = member_refs(BASES[0])
    written = as_json.get("Group", group_id, member_refs=refs)
    built = as_objects.get("Group", group_id, member_refs=refs)
    assert orjson.dumps(resource_body(written, BASES[0])) == orjson.dumps(
        resource_body(built, BASES[0])
    )
    assert written.members_json is not None
    assert len(orjson.loads(written.members_json)) == 400
