"""Okta provisioning, replayed request for request from its SCIM 2.0 reference.

Each test replays ``data/okta_*.json`` from its start up to the step it is about, with an
``okta`` token (and a ``generic`` one), then reads the stored state back with GET using the
same token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .replay import GROUP_SCHEMA
from .replay import USER_SCHEMA
from .replay import Replay
from .replay import assert_error
from .replay import assert_list_response
from .replay import member_ids
from .replay import no_password_anywhere

PROFILES = ["okta", "generic"]
USERS = "okta_user_lifecycle"
GROUPS = "okta_group_lifecycle"

pytestmark = pytest.mark.parametrize("profile", PROFILES)

Start = Callable[..., Replay]


def read(replay: Replay, path: str) -> dict[str, Any]:
    exchange = replay.get(path)
    assert exchange.status == 200, exchange.describe()
    body: dict[str, Any] = exchange.json
    return body


# -- users ---------------------------------------------------------------------------------------


def test_import_page_has_integer_counters(replay: Start, profile: str) -> None:
    """``GET /Users?startIndex=1&count=100``: a page of at most 100, counters as integers."""
    run = replay(USERS, profile).run(through="Create the User")
    page = assert_list_response(run.get("/Users?startIndex=1&count=100"))
    assert page["startIndex"] == 1
    assert 1 <= page["itemsPerPage"] <= 100
    assert page["totalResults"] >= page["itemsPerPage"]
    first = assert_list_response(run["Retrieve Users"])
    assert first["startIndex"] == 1


def test_unknown_user_name_is_an_empty_list(replay: Start, profile: str) -> None:
    run = replay(USERS, profile).run(through="Determine if the User already exists")
    body = assert_list_response(run["Determine if the User already exists"])
    assert (body["totalResults"], body.get("Resources", [])) == (0, [])


def test_create_user_answers_201_without_the_password(replay: Start, profile: str) -> None:
    run = replay(USERS, profile).run(through="Create the User")
    created = run["Create the User"]
    body = created.json
    assert body["schemas"] == [USER_SCHEMA]
    assert body["id"]
    assert created.headers["Location"] == body["meta"]["location"]
    assert "password" not in body
    stored = read(run, "/Users/{user_id}")
    assert "password" not in stored
    assert stored == body
    assert stored.get("groups", []) == []


def test_create_user_twice_is_a_409_conflict(replay: Start, profile: str) -> None:
    run = replay(USERS, profile).run(through="Create the User again")
    assert_error(run["Create the User again"], 409, "uniqueness")
    found = read(run, '/Users?filter=userName eq "{user_name}"')
    assert found["totalResults"] == 1


def test_user_name_filter_ignores_case(replay: Start, profile: str) -> None:
    run = replay(USERS, profile).run(through="Username Case Sensitivity Check")
    found = assert_list_response(run["Username Case Sensitivity Check"])
    assert [user["id"] for user in found["Resources"]] == [run.vars["user_id"]]


def test_put_replaces_the_user(replay: Start, profile: str) -> None:
    run = replay(USERS, profile).run(through="Update the User")
    user = read(run, "/Users/{user_id}")
    assert user["id"] == run.vars["user_id"]
    assert user["name"] == {"givenName": "Another", "middleName": "Excited", "familyName": "User"}
    assert user["active"] is True
    assert user == run["Update the User"].json
    assert "password" not in user


def test_patch_without_path_deactivates_the_user(replay: Start, profile: str) -> None:
    """``{"op": "replace", "value": {"active": false}}``: only ``active`` changes."""
    run = replay(USERS, profile).run(through="Retrieve the deactivated User")
    user = read(run, "/Users/{user_id}")
    assert user["active"] is False
    before = run["Update the User"].json
    assert {key: value for key, value in user.items() if key not in ("active", "meta")} == {
        key: value for key, value in before.items() if key not in ("active", "meta")
    }


def test_patch_without_path_reactivates_the_user(replay: Start, profile: str) -> None:
    run = replay(USERS, profile).run(through="Reactivate the User")
    assert read(run, "/Users/{user_id}")["active"] is True


def test_password_sync_is_never_returned(replay: Start, profile: str) -> None:
    run = replay(USERS, profile).run(through="Sync the user password")
    user = read(run, "/Users/{user_id}")
    assert "password" not in user
    assert user["name"]["middleName"] == "Excited"


def test_put_with_active_false_deactivates_the_user(replay: Start, profile: str) -> None:
    run = replay(USERS, profile).run(through="Deactivate the User (PUT)")
    user = read(run, "/Users/{user_id}")
    assert user["active"] is False
    assert user["userName"] == run.vars["user_name"]
    found = read(run, '/Users?filter=userName eq "{user_name}" and active eq false')
    assert [each["id"] for each in found["Resources"]] == [run.vars["user_id"]]


def test_unknown_user_id_is_a_scim_404(replay: Start, profile: str) -> None:
    run = replay(USERS, profile).run()
    missing = run["Retrieve a User that does not exist"]
    body = assert_error(missing, 404)
    assert set(body) <= {"schemas", "status", "detail", "scimType"}
    assert missing.headers["Content-Type"].startswith("application/scim+json")


def test_no_response_ever_carries_a_password(replay: Start, profile: str) -> None:
    run = replay(USERS, profile).run()
    assert no_password_anywhere(run.exchanges.values()) == []
    assert no_password_anywhere([run.get('/Users?filter=userName eq "{user_name}"')]) == []


def test_reference_create_user_sample_verbatim(replay: Start, profile: str) -> None:
    """The reference's Create the User request as printed: email on the .local domain."""
    run = replay("okta_reference_create_user", profile).run()
    assert "password" not in run["Create the User"].json
    assert run["Retrieve a specific User"].json == run["Create the User"].json


# -- groups --------------------------------------------------------------------------------------


def test_create_group_answers_201_with_the_group(replay: Start, profile: str) -> None:
    run = replay(GROUPS, profile).run(through="Create Groups")
    created = run["Create Groups"]
    body = created.json
    assert body["schemas"] == [GROUP_SCHEMA]
    assert body["id"]
    assert created.headers["Location"] == body["meta"]["location"]
    assert body.get("members", []) == []
    assert read(run, "/Groups/{group_id}")["displayName"] == run.vars["group_name"]


def test_rename_with_the_same_name_after_create_keeps_the_group(
    replay: Start, profile: str
) -> None:
    """``value: {id, displayName}`` right after the create: the group is unchanged."""
    run = replay(GROUPS, profile).run(through="Update a specific Group name (after create)")
    group = read(run, "/Groups/{group_id}")
    assert group["id"] == run.vars["group_id"]
    assert group["displayName"] == run.vars["group_name"]


def test_add_members(replay: Start, profile: str) -> None:
    run = replay(GROUPS, profile).run(through="Update specific Group membership (add)")
    group = read(run, "/Groups/{group_id}")
    assert member_ids(group) == {run.vars["member_1_id"], run.vars["member_2_id"]}


def test_rename_keeps_id_and_members(replay: Start, profile: str) -> None:
    run = replay(GROUPS, profile).run(through="Update a specific Group name")
    group = read(run, "/Groups/{group_id}")
    assert group["id"] == run.vars["group_id"]
    assert group["displayName"] == run.vars["new_group_name"]
    assert member_ids(group) == {run.vars["member_1_id"], run.vars["member_2_id"]}
    old = read(run, '/Groups?filter=displayName eq "{group_name}"&startIndex=1&count=100')
    assert old["totalResults"] == 0


def test_remove_and_add_members_in_one_patch(replay: Start, profile: str) -> None:
    run = replay(GROUPS, profile).run(through="Retrieve specific Groups")
    group = read(run, "/Groups/{group_id}")
    assert member_ids(group) == {run.vars["member_2_id"], run.vars["member_3_id"]}
    assert group["displayName"] == run.vars["new_group_name"]
    assert read(run, "/Users/{member_1_id}").get("groups", []) == []
    assert member_ids(run["Retrieve specific Groups"].json) == member_ids(group)


def test_full_push_replaces_the_members(replay: Start, profile: str) -> None:
    run = replay(GROUPS, profile).run(through="Update specific Group membership (full push)")
    group = read(run, "/Groups/{group_id}")
    assert member_ids(group) == {run.vars["member_1_id"], run.vars["member_2_id"]}
    assert read(run, "/Users/{member_3_id}").get("groups", []) == []


def test_group_patches_are_answered_without_members(replay: Start, profile: str) -> None:
    """Okta needs no member list back: 204, or 200 with the group."""
    run = replay(GROUPS, profile).run(through="Update specific Group membership (full push)")
    for exchange in run.exchanges.values():
        if exchange.method == "PATCH":
            assert exchange.status in (200, 204), exchange.describe()


def test_group_search_and_paging(replay: Start, profile: str) -> None:
    run = replay(GROUPS, profile).run(through="Retrieve Groups by displayName")
    page = assert_list_response(run["Retrieve Groups"])
    assert page["startIndex"] == 1 and page["itemsPerPage"] <= 100
    found = assert_list_response(run["Retrieve Groups by displayName"])
    assert [group["id"] for group in found["Resources"]] == [run.vars["group_id"]]
    assert assert_list_response(run["Determine if the Group already exists"])["totalResults"] == 0


def test_delete_group(replay: Start, profile: str) -> None:
    run = replay(GROUPS, profile).run()
    assert_error(run["Retrieve the deleted Group"], 404)
    for member in ("member_1_id", "member_2_id"):
        assert read(run, f"/Users/{{{member}}}").get("groups", []) == []


def test_create_group_twice_is_a_409_conflict(replay: Start, profile: str) -> None:
    run = replay(GROUPS, profile).run(through="Create Groups")
    assert_error(run.resend("Create Groups", 409), 409, "uniqueness")
