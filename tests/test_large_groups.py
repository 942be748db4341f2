"""Membership changes of a thousand values in one request, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from datetime import datetime

import pytest
from flask import Flask

from scimbridge.app import create_app
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .conftest import ScimClient
from .conftest import group_payload
from .conftest import make_settings
from .conftest import patch_payload
from .store_support import sequential_ids
from .store_support import store_users

MEMBERS = 1000


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def seeded(settings: Settings) -> Iterator[tuple[Flask, list[str]]]:
    """An app whose store already holds 2 × MEMBERS users (written in one transaction)."""
    database = Database(settings.database_url)
    upgrade(database)
    names = [f"member.{index}" for index in range(2 * MEMBERS)]
    with database.write() as conn:
        ids = store_users(conn, names, datetime.now(UTC), ids=sequential_ids(len(names)))
    yield create_app(settings, database), ids
    database.dispose()


def _members(scim: ScimClient, group_id: str) -> set[str]:
    body = scim.get(f"/Groups/{group_id}").get_json()
    return {member["value"] for member in body.get("members", [])}


def test_a_thousand_members_are_added_then_replaced_in_single_patches(
    seeded: tuple[Flask, list[str]],
) -> None:
    """One PATCH adds 1,000 members; one replaces them with 1,000 others; one removes all."""
    app, ids = seeded
    scim = ScimClient(app.test_client(), app.extensions["scimbridge"].tokens.create("t"))
    group = scim.post("/Groups", group_payload("big")).get_json()
    first, second = ids[:MEMBERS], ids[MEMBERS:]

    added = scim.patch(
        f"/Groups/{group['id']}",
        patch_payload({"op": "add", "path": "members", "value": [{"value": i} for i in first]}),
    )
    assert added.status_code == 204, added.get_data(as_text=True)
    assert _members(scim, group["id"]) == set(first)

    replaced = scim.patch(
        f"/Groups/{group['id']}",
        patch_payload(
            {"op": "replace", "path": "members", "value": [{"value": i} for i in second]}
        ),
    )
    assert replaced.status_code == 204
    assert _members(scim, group["id"]) == set(second)

    removed = scim.patch(
        f"/Groups/{group['id']}", patch_payload({"op": "remove", "path": "members"})
    )
    assert removed.status_code == 204
    assert _members(scim, group["id"]) == set()


def test_a_thousand_member_patch_naming_one_unknown_id_changes_nothing(
    seeded: tuple[Flask, list[str]],
) -> None:
    """A single unknown id refuses the whole PATCH: no member of it is added."""
    app, ids = seeded
    scim = ScimClient(app.test_client(), app.extensions["scimbridge"].tokens.create("t"))
    group = scim.post("/Groups", group_payload("big")).get_json()
    values = [{"value": i} for i in ids[: MEMBERS - 1]] + [{"value": "no-such-user"}]

    refused = scim.patch(
        f"/Groups/{group['id']}", patch_payload({"op": "add", "path": "members", "value": values})
    )

    assert refused.status_code == 400
    assert refused.get_json()["scimType"] == "invalidValue"
    assert _members(scim, group["id"]) == set()
