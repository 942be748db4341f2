"""Users, groups and discovery documents behave as RFC 7643 / RFC 7644 specify.

Membership tests run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from scimbridge.domain.lifecycle_schema import LIFECYCLE_SCHEMA
from scimbridge.settings import Settings

from .conftest import ENTERPRISE_SCHEMA
from .conftest import GROUP_SCHEMA
from .conftest import USER_SCHEMA
from .conftest import ScimClient
from .conftest import group_payload
from .conftest import make_settings
from .conftest import patch_payload
from .conftest import user_payload

LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PASSWORD = "Tr0ub4dor&3-never-shown"


def create(scim: ScimClient, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    response = scim.post(f"/{endpoint}", body)
    assert response.status_code == 201, response.get_data(as_text=True)
    created: dict[str, Any] = response.get_json()
    return created


def create_user(scim: ScimClient, user_name: str = "bjensen", **attributes: Any) -> dict[str, Any]:
    return create(scim, "Users", user_payload(user_name, **attributes))


def create_group(
    scim: ScimClient, display_name: str = "Staff", members: list[str] | None = None
) -> dict[str, Any]:
    return create(scim, "Groups", group_payload(display_name, members))


def fetch(scim: ScimClient, path: str, **query: str) -> dict[str, Any]:
    response = scim.get(path, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def patch(scim: ScimClient, path: str, *operations: dict[str, Any], **query: str) -> Any:
    response = scim.patch(path, patch_payload(*operations), query_string=query)
    assert response.status_code in {200, 204}, response.get_data(as_text=True)
    return response


def member_ids(scim: ScimClient, group_id: str) -> set[str]:
    return {member["value"] for member in fetch(scim, f"/Groups/{group_id}").get("members", [])}


def group_ids_of(scim: ScimClient, user_id: str) -> set[str]:
    return {group["value"] for group in fetch(scim, f"/Users/{user_id}").get("groups", [])}


# -- users -----------------------------------------------------------------------------------


def test_create_user_gets_201_with_location_and_etag_matching_meta(scim: ScimClient) -> None:
    """POST /Users answers 201; Location is meta.location and ETag is meta.version."""
    response = scim.post("/Users", user_payload("bjensen", displayName="Babs"))
    assert response.status_code == 201
    assert response.mimetype == "application/scim+json"
    body = response.get_json()
    assert body["schemas"] == [USER_SCHEMA]
    assert body["userName"] == "bjensen"
    assert body["active"] is True
    assert body["id"]
    meta = body["meta"]
    assert meta["resourceType"] == "User"
    assert meta["location"] == f"http://scim.test/scim/v2/Users/{body['id']}"
    assert response.headers["Location"] == meta["location"]
    assert response.headers["ETag"] == meta["version"]
    assert meta["created"] == meta["lastModified"]
    assert meta["created"].endswith("Z")


def test_get_user_returns_what_create_returned(scim: ScimClient) -> None:
    """GET /Users/<id> returns the user as created, with its ETag header."""
    user = create_user(
        scim,
        name={"givenName": "Barbara", "familyName": "Jensen"},
        emails=[{"value": "bjensen@example.com", "type": "work", "primary": True}],
        **{ENTERPRISE_SCHEMA: {"employeeNumber": "701984"}},
    )
    response = scim.get(f"/Users/{user['id']}")
    assert response.status_code == 200
    assert response.headers["ETag"] == user["meta"]["version"]
    body = response.get_json()
    assert body == user
    assert set(body["schemas"]) == {USER_SCHEMA, ENTERPRISE_SCHEMA}
    assert body[ENTERPRISE_SCHEMA]["employeeNumber"] == "701984"
    assert body["name"]["familyName"] == "Jensen"


def test_list_users_returns_a_list_response(scim: ScimClient) -> None:
    """GET /Users returns every user in a ListResponse, in creation order."""
    ids = [create_user(scim, name)["id"] for name in ("alice", "bob", "carol")]
    body = fetch(scim, "/Users")
    assert body["schemas"] == [LIST_SCHEMA]
    assert body["totalResults"] == 3
    assert body["startIndex"] == 1
    assert body["itemsPerPage"] == 3
    assert [user["id"] for user in body["Resources"]] == ids


def test_list_pagination_follows_start_index_and_count(scim: ScimClient) -> None:
    """StartIndex is 1-based; count caps a page; count=0 returns only totalResults."""
    names = [f"user{i}" for i in range(5)]
    for name in names:
        create_user(scim, name)
    page = fetch(scim, "/Users", startIndex="2", count="2")
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (5, 2, 2)
    assert [user["userName"] for user in page["Resources"]] == names[1:3]
    empty = fetch(scim, "/Users", count="0")
    assert (empty["totalResults"], empty["itemsPerPage"], empty["Resources"]) == (5, 0, [])
    # RFC 7644 §3.4.2.4: startIndex < 1 is read as 1, a negative count as 0.
    assert fetch(scim, "/Users", startIndex="0")["startIndex"] == 1
    assert fetch(scim, "/Users", count="-3")["Resources"] == []
    assert fetch(scim, "/Users", startIndex="9")["Resources"] == []


def test_put_replaces_attributes_and_ignores_read_only_ones(scim: ScimClient) -> None:
    """PUT replaces every writable attribute; id, meta and groups in the body are ignored."""
    user = create_user(scim, displayName="Babs", nickName="bj", title="Tour Guide")
    group = create_group(scim, "Staff")
    body = {
        **user_payload("bjensen", displayName="Barbara"),
        "id": "not-the-id",
        "meta": {"resourceType": "User", "created": "2000-01-01T00:00:00Z"},
        "groups": [{"value": group["id"]}],
    }
    response = scim.put(f"/Users/{user['id']}", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    replaced = response.get_json()
    assert replaced["id"] == user["id"]
    assert replaced["displayName"] == "Barbara"
    assert "nickName" not in replaced
    assert "title" not in replaced
    assert replaced.get("groups", []) == []
    assert replaced["meta"]["created"] == user["meta"]["created"]
    assert replaced["meta"]["version"] != user["meta"]["version"]
    assert response.headers["ETag"] == replaced["meta"]["version"]
    assert fetch(scim, f"/Users/{user['id']}") == replaced
    assert fetch(scim, f"/Groups/{group['id']}").get("members", []) == []


def test_put_can_change_the_case_of_its_own_user_name(scim: ScimClient) -> None:
    """Renaming bjensen to BJensen is no conflict with itself."""
    user = create_user(scim, "bjensen")
    response = scim.put(f"/Users/{user['id']}", user_payload("BJensen"))
    assert response.status_code == 200
    assert response.get_json()["userName"] == "BJensen"


def test_password_is_never_returned(scim: ScimClient) -> None:
    """A user's password is write-only: no response ever contains it (RFC 7643 §4.1.1)."""
    responses = [scim.post("/Users", user_payload("bjensen", password=PASSWORD))]
    user = responses[0].get_json()
    path = f"/Users/{user['id']}"
    responses += [
        scim.get(path),
        scim.get(path, query_string={"attributes": "password"}),
        scim.get(path, query_string={"attributes": "userName,password"}),
        scim.get("/Users"),
        scim.get("/Users", query_string={"attributes": "password"}),
        scim.get("/Users", query_string={"filter": 'userName eq "bjensen"'}),
        scim.post("/Users/.search", {"schemas": [SEARCH_SCHEMA], "attributes": ["password"]}),
        scim.post("/.search", {"schemas": [SEARCH_SCHEMA]}),
        scim.put(path, user_payload("bjensen", password=PASSWORD, displayName="B")),
        scim.patch(
            path, patch_payload({"op": "replace", "path": "password", "value": PASSWORD + "2"})
        ),
        scim.patch(path, patch_payload({"op": "replace", "value": {"password": PASSWORD}})),
        scim.post("/Users", user_payload("bjensen", password=PASSWORD)),  # 409
    ]
    for response in responses:
        assert response.status_code < 500
        text = response.get_data(as_text=True)
        assert PASSWORD not in text
        assert '"password"' not in text


def test_patch_user_adds_replaces_and_removes_attributes(scim: ScimClient) -> None:
    """PATCH add, replace and remove change exactly the attributes they name."""
    user = create_user(scim, displayName="Babs", title="Tour Guide")
    response = patch(
        scim,
        f"/Users/{user['id']}",
        {"op": "add", "path": "nickName", "value": "bj"},
        {"op": "replace", "path": "displayName", "value": "Barbara"},
        {"op": "remove", "path": "title"},
        {"op": "replace", "path": "name.givenName", "value": "Barbara"},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["nickName"], body["displayName"]) == ("bj", "Barbara")
    assert "title" not in body
    assert body["name"] == {"givenName": "Barbara"}
    assert response.headers["ETag"] == body["meta"]["version"]
    assert fetch(scim, f"/Users/{user['id']}") == body


def test_patch_user_without_path_merges_the_value(scim: ScimClient) -> None:
    """A path-less PATCH replace sets each attribute of its value and keeps the others."""
    user = create_user(scim, displayName="Babs", title="Tour Guide")
    body = patch(
        scim,
        f"/Users/{user['id']}",
        {"op": "replace", "value": {"displayName": "Barbara", "active": False}},
    ).get_json()
    assert (body["displayName"], body["active"], body["title"]) == ("Barbara", False, "Tour Guide")


def test_patch_user_value_path_changes_only_the_selected_email(scim: ScimClient) -> None:
    """A path emails[type eq "work"].value replaces the work email and leaves the home one."""
    user = create_user(
        scim,
        emails=[
            {"value": "bjensen@work.example", "type": "work", "primary": True},
            {"value": "babs@home.example", "type": "home"},
        ],
    )
    body = patch(
        scim,
        f"/Users/{user['id']}",
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "barbara@work.example"},
    ).get_json()
    assert {(email["type"], email["value"]) for email in body["emails"]} == {
        ("work", "barbara@work.example"),
        ("home", "babs@home.example"),
    }
    # The new value is what filters see.
    found = fetch(scim, "/Users", filter='emails.value eq "barbara@work.example"')
    assert [each["id"] for each in found["Resources"]] == [user["id"]]
    body = patch(
        scim, f"/Users/{user['id']}", {"op": "remove", "path": 'emails[type eq "home"]'}
    ).get_json()
    assert [email["value"] for email in body["emails"]] == ["barbara@work.example"]
    body = patch(
        scim,
        f"/Users/{user['id']}",
        {"op": "add", "path": "emails", "value": [{"value": "b@other.example", "type": "other"}]},
    ).get_json()
    assert len(body["emails"]) == 2


def test_delete_user_gets_204_then_404(scim: ScimClient) -> None:
    """DELETE answers 204 without a body; the user is then gone from reads and lists."""
    user = create_user(scim)
    other = create_user(scim, "alice")
    response = scim.delete(f"/Users/{user['id']}")
    assert response.status_code == 204
    assert response.get_data() == b""
    assert scim.get(f"/Users/{user['id']}").status_code == 404
    assert scim.delete(f"/Users/{user['id']}").status_code == 404
    assert [each["id"] for each in fetch(scim, "/Users")["Resources"]] == [other["id"]]
    # The userName is free again.
    create_user(scim, "bjensen")


def test_attributes_parameter_selects_what_get_and_list_return(scim: ScimClient) -> None:
    """With attributes=..., only those plus id and schemas come back, on GET and on lists."""
    user = create_user(scim, displayName="Babs", emails=[{"value": "b@example.com"}])
    path = f"/Users/{user['id']}"
    body = fetch(scim, path, attributes="userName,emails.value")
    assert body == {
        "schemas": [USER_SCHEMA],
        "id": user["id"],
        "userName": "bjensen",
        "emails": [{"value": "b@example.com"}],
    }
    listed = fetch(scim, "/Users", attributes="displayName")["Resources"]
    assert listed == [{"schemas": [USER_SCHEMA], "id": user["id"], "displayName": "Babs"}]
    searched = scim.post(
        "/Users/.search", {"schemas": [SEARCH_SCHEMA], "attributes": ["displayName"]}
    ).get_json()
    assert searched["Resources"] == listed


def test_excluded_attributes_parameter_drops_them_from_get_and_list(scim: ScimClient) -> None:
    """With excludedAttributes=..., those are left out; id and schemas always stay."""
    user = create_user(scim, displayName="Babs", emails=[{"value": "b@example.com"}])
    body = fetch(scim, f"/Users/{user['id']}", excludedAttributes="emails,displayName,id")
    assert "emails" not in body
    assert "displayName" not in body
    assert body["id"] == user["id"]
    assert body["userName"] == "bjensen"
    listed = fetch(scim, "/Users", excludedAttributes="emails")["Resources"]
    assert len(listed) == 1
    assert "emails" not in listed[0]
    assert listed[0]["displayName"] == "Babs"


def test_etag_changes_on_every_write_and_not_on_a_no_op_patch(scim: ScimClient) -> None:
    """Each PUT or PATCH that changes the user gives a new version; a no-op PATCH keeps it."""
    user = create_user(scim, displayName="Babs")
    path = f"/Users/{user['id']}"
    versions = [user["meta"]["version"]]
    response = scim.put(path, user_payload("bjensen", displayName="Barbara"))
    versions.append(response.headers["ETag"])
    response = patch(scim, path, {"op": "replace", "path": "displayName", "value": "B"})
    versions.append(response.headers["ETag"])
    assert len(set(versions)) == 3
    same = patch(scim, path, {"op": "replace", "path": "displayName", "value": "B"})
    assert same.headers["ETag"] == versions[-1]
    assert same.get_json()["meta"]["lastModified"] == fetch(scim, path)["meta"]["lastModified"]
    assert fetch(scim, path)["meta"]["version"] == versions[-1]


# -- groups and membership (SQLite and PostgreSQL) ------------------------------------------------


class TestMembership:
    """Group members and the groups of users, on both databases."""

    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return make_settings(database_url)

    def test_create_group_with_users_and_a_nested_group(self, scim: ScimClient) -> None:
        """Members may be users and groups; each shows its type, $ref and display name."""
        alice = create_user(scim, "alice", displayName="Alice Smith")
        bob = create_user(scim, "bob")
        admins = create_group(scim, "Admins")
        response = scim.post(
            "/Groups", group_payload("Staff", [alice["id"], bob["id"], admins["id"]])
        )
        assert response.status_code == 201
        group = response.get_json()
        assert group["schemas"] == [GROUP_SCHEMA]
        assert response.headers["Location"] == group["meta"]["location"]
        assert response.headers["ETag"] == group["meta"]["version"]
        base = "http://scim.test/scim/v2"
        expected = {
            alice["id"]: ("User", "Alice Smith", f"{base}/Users/{alice['id']}"),
            bob["id"]: ("User", "bob", f"{base}/Users/{bob['id']}"),
            admins["id"]: ("Group", "Admins", f"{base}/Groups/{admins['id']}"),
        }
        for body in (group, fetch(scim, f"/Groups/{group['id']}")):
            assert {
                member["value"]: (member["type"], member["display"], member["$ref"])
                for member in body["members"]
            } == expected

    def test_user_groups_attribute_follows_membership(self, scim: ScimClient) -> None:
        """A user's groups are computed from membership: direct ones and those through nesting."""
        alice = create_user(scim, "alice")
        staff = create_group(scim, "Staff", [alice["id"]])
        admins = create_group(scim, "Admins", [alice["id"]])
        everyone = create_group(scim, "Everyone", [staff["id"]])
        groups = fetch(scim, f"/Users/{alice['id']}")["groups"]
        assert {(group["value"], group["display"], group["type"]) for group in groups} == {
            (staff["id"], "Staff", "direct"),
            (admins["id"], "Admins", "direct"),
            (everyone["id"], "Everyone", "indirect"),
        }
        assert all(group["$ref"].endswith(f"/Groups/{group['value']}") for group in groups)
        listed = fetch(scim, "/Users", filter='userName eq "alice"')["Resources"][0]
        assert {group["value"] for group in listed["groups"]} == {
            staff["id"],
            admins["id"],
            everyone["id"],
        }
        # Leaving the nested group ends the indirect membership too.
        patch(scim, f"/Groups/{everyone['id']}", {"op": "remove", "path": "members"})
        assert group_ids_of(scim, alice["id"]) == {staff["id"], admins["id"]}

    def test_user_groups_cannot_be_written_through_the_user(self, scim: ScimClient) -> None:
        """Groups is readOnly on a user: PUT ignores it and PATCH is refused with mutability."""
        alice = create_user(scim, "alice")
        staff = create_group(scim, "Staff")
        body = {**user_payload("alice"), "groups": [{"value": staff["id"]}]}
        assert scim.put(f"/Users/{alice['id']}", body).status_code == 200
        response = scim.patch(
            f"/Users/{alice['id']}",
            patch_payload({"op": "add", "path": "groups", "value": [{"value": staff["id"]}]}),
        )
        assert response.status_code == 400
        assert response.get_json()["scimType"] == "mutability"
        assert group_ids_of(scim, alice["id"]) == set()
        assert member_ids(scim, staff["id"]) == set()

    def test_patch_adds_members(self, scim: ScimClient) -> None:
        """PATCH add on members adds them; members already there are not duplicated."""
        alice, bob, carol = (create_user(scim, name) for name in ("alice", "bob", "carol"))
        group = create_group(scim, "Staff", [alice["id"]])
        path = f"/Groups/{group['id']}"
        patch(scim, path, {"op": "add", "path": "members", "value": [{"value": bob["id"]}]})
        patch(
            scim,
            path,
            {"op": "add", "value": {"members": [{"value": carol["id"]}, {"value": bob["id"]}]}},
        )
        assert member_ids(scim, group["id"]) == {alice["id"], bob["id"], carol["id"]}
        assert len(fetch(scim, path)["members"]) == 3
        assert group_ids_of(scim, carol["id"]) == {group["id"]}

    def test_patch_removes_one_member_by_value_filter(self, scim: ScimClient) -> None:
        """PATCH remove with path members[value eq "id"] removes just that member."""
        alice, bob = create_user(scim, "alice"), create_user(scim, "bob")
        group = create_group(scim, "Staff", [alice["id"], bob["id"]])
        patch(
            scim,
            f"/Groups/{group['id']}",
            {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'},
        )
        assert member_ids(scim, group["id"]) == {bob["id"]}
        assert group_ids_of(scim, alice["id"]) == set()

    def test_patch_remove_members_path_removes_every_member(self, scim: ScimClient) -> None:
        """PATCH remove with path "members" empties the group."""
        alice, bob = create_user(scim, "alice"), create_user(scim, "bob")
        group = create_group(scim, "Staff", [alice["id"], bob["id"]])
        patch(scim, f"/Groups/{group['id']}", {"op": "remove", "path": "members"})
        body = fetch(scim, f"/Groups/{group['id']}")
        assert body.get("members", []) == []
        assert body["displayName"] == "Staff"

    def test_patch_replace_members_sets_exactly_the_new_list(self, scim: ScimClient) -> None:
        """PATCH replace of members, with or without a path, leaves exactly the given members."""
        alice, bob, carol = (create_user(scim, name) for name in ("alice", "bob", "carol"))
        group = create_group(scim, "Staff", [alice["id"], bob["id"]])
        path = f"/Groups/{group['id']}"
        patch(
            scim,
            path,
            {
                "op": "replace",
                "path": "members",
                "value": [{"value": bob["id"]}, {"value": carol["id"]}],
            },
        )
        assert member_ids(scim, group["id"]) == {bob["id"], carol["id"]}
        patch(scim, path, {"op": "replace", "value": {"members": [{"value": alice["id"]}]}})
        assert member_ids(scim, group["id"]) == {alice["id"]}

    def test_patch_answers_204_unless_attributes_are_asked_for(self, scim: ScimClient) -> None:
        """A group PATCH answers 204 with an ETag; with ?attributes=members, 200 and the members."""
        alice, bob = create_user(scim, "alice"), create_user(scim, "bob")
        group = create_group(scim, "Staff", [alice["id"]])
        path = f"/Groups/{group['id']}"
        operation = {"op": "add", "path": "members", "value": [{"value": bob["id"]}]}
        response = patch(scim, path, operation)
        assert response.status_code == 204
        assert response.get_data() == b""
        assert response.headers["ETag"] == fetch(scim, path)["meta"]["version"]
        response = patch(
            scim,
            path,
            {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'},
            attributes="members",
        )
        assert response.status_code == 200
        body = response.get_json()
        assert {member["value"] for member in body["members"]} == {bob["id"]}
        assert "displayName" not in body
        assert response.headers["ETag"] != group["meta"]["version"]

    def test_member_changes_move_the_group_version(self, scim: ScimClient) -> None:
        """Adding or removing members gives the group a new version; re-adding one does not."""
        alice = create_user(scim, "alice")
        group = create_group(scim, "Staff")
        path = f"/Groups/{group['id']}"
        operation = {"op": "add", "path": "members", "value": [{"value": alice["id"]}]}
        added = patch(scim, path, operation).headers["ETag"]
        assert added != group["meta"]["version"]
        assert patch(scim, path, operation).headers["ETag"] == added
        removed = patch(scim, path, {"op": "remove", "path": "members"}).headers["ETag"]
        assert removed != added

    def test_excluded_members_are_left_out_of_get_and_list(self, scim: ScimClient) -> None:
        """ExcludedAttributes=members drops members on GET, list and search."""
        alice = create_user(scim, "alice")
        group = create_group(scim, "Staff", [alice["id"]])
        body = fetch(scim, f"/Groups/{group['id']}", excludedAttributes="members")
        assert "members" not in body
        assert body["displayName"] == "Staff"
        listed = fetch(scim, "/Groups", excludedAttributes="members")["Resources"]
        assert [(each["id"], "members" in each) for each in listed] == [(group["id"], False)]
        searched = scim.post(
            "/Groups/.search", {"schemas": [SEARCH_SCHEMA], "excludedAttributes": ["members"]}
        ).get_json()["Resources"]
        assert "members" not in searched[0]
        selected = fetch(scim, "/Groups", attributes="displayName")["Resources"]
        assert selected == [{"schemas": [GROUP_SCHEMA], "id": group["id"], "displayName": "Staff"}]

    def test_deleting_a_user_removes_it_from_its_groups(self, scim: ScimClient) -> None:
        """A deleted user disappears from every group's members."""
        alice, bob = create_user(scim, "alice"), create_user(scim, "bob")
        staff = create_group(scim, "Staff", [alice["id"], bob["id"]])
        admins = create_group(scim, "Admins", [alice["id"]])
        assert scim.delete(f"/Users/{alice['id']}").status_code == 204
        assert member_ids(scim, staff["id"]) == {bob["id"]}
        assert member_ids(scim, admins["id"]) == set()
        found = fetch(scim, "/Groups", filter=f'members.value eq "{alice["id"]}"')
        assert found["totalResults"] == 0

    def test_deleting_a_group_removes_it_from_users_and_parent_groups(
        self, scim: ScimClient
    ) -> None:
        """A deleted group disappears from its members' groups and from the groups holding it."""
        alice = create_user(scim, "alice")
        staff = create_group(scim, "Staff", [alice["id"]])
        everyone = create_group(scim, "Everyone", [staff["id"], alice["id"]])
        assert scim.delete(f"/Groups/{staff['id']}").status_code == 204
        assert scim.get(f"/Groups/{staff['id']}").status_code == 404
        assert group_ids_of(scim, alice["id"]) == {everyone["id"]}
        assert member_ids(scim, everyone["id"]) == {alice["id"]}

    def test_renaming_a_group_shows_in_its_members_groups(self, scim: ScimClient) -> None:
        """A group renamed by PATCH or PUT keeps its members; users see the new name."""
        alice = create_user(scim, "alice")
        group = create_group(scim, "Staff", [alice["id"]])
        path = f"/Groups/{group['id']}"
        patch(scim, path, {"op": "replace", "path": "displayName", "value": "Employees"})
        body = fetch(scim, path)
        assert body["displayName"] == "Employees"
        assert {member["value"] for member in body["members"]} == {alice["id"]}
        assert fetch(scim, f"/Users/{alice['id']}")["groups"][0]["display"] == "Employees"
        response = scim.put(path, group_payload("People", [alice["id"]]))
        assert response.status_code == 200
        assert response.get_json()["displayName"] == "People"
        assert fetch(scim, f"/Users/{alice['id']}")["groups"][0]["display"] == "People"
        # The old names are free again.
        create_group(scim, "Staff")
        create_group(scim, "employees")

    def test_put_group_replaces_its_member_list(self, scim: ScimClient) -> None:
        """PUT on a group sets its members to exactly those in the body."""
        alice, bob = create_user(scim, "alice"), create_user(scim, "bob")
        group = create_group(scim, "Staff", [alice["id"]])
        response = scim.put(f"/Groups/{group['id']}", group_payload("Staff", [bob["id"]]))
        assert response.status_code == 200
        assert {member["value"] for member in response.get_json()["members"]} == {bob["id"]}
        assert group_ids_of(scim, alice["id"]) == set()
        assert group_ids_of(scim, bob["id"]) == {group["id"]}


# -- discovery and root search -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        f"/Schemas/{USER_SCHEMA}",
        f"/Schemas/{GROUP_SCHEMA}",
        f"/Schemas/{ENTERPRISE_SCHEMA}",
    ],
)
def test_discovery_documents_answer_without_a_token(app: Flask, path: str) -> None:
    """Discovery endpoints (RFC 7644 §4) are readable before any token is configured."""
    response = app.test_client().get(f"/scim/v2{path}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/scim+json"
    assert response.get_json()["schemas"]


def test_service_provider_config_describes_the_features(app: Flask) -> None:
    """ServiceProviderConfig announces PATCH, filter, sort and ETag support."""
    body = app.test_client().get("/scim/v2/ServiceProviderConfig").get_json()
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert body["patch"]["supported"] is True
    assert body["filter"]["supported"] is True
    assert body["filter"]["maxResults"] == 1000
    assert body["etag"]["supported"] is True
    assert body["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_resource_types_and_schemas_list_users_and_groups(app: Flask) -> None:
    """ResourceTypes names User and Group; Schemas holds User, its two extensions and Group."""
    client = app.test_client()
    types = client.get("/scim/v2/ResourceTypes").get_json()
    assert types["schemas"] == [LIST_SCHEMA]
    by_id = {each["id"]: each for each in types["Resources"]}
    assert by_id["User"]["endpoint"] == "/Users"
    assert by_id["User"]["schema"] == USER_SCHEMA
    assert by_id["User"]["schemaExtensions"][0]["schema"] == ENTERPRISE_SCHEMA
    assert by_id["Group"]["endpoint"] == "/Groups"
    schemas = client.get("/scim/v2/Schemas").get_json()
    assert {each["id"] for each in schemas["Resources"]} == {
        USER_SCHEMA,
        ENTERPRISE_SCHEMA,
        LIFECYCLE_SCHEMA,
        GROUP_SCHEMA,
    }
    lifecycle = client.get(f"/scim/v2/Schemas/{LIFECYCLE_SCHEMA}").get_json()
    assert {attr["mutability"] for attr in lifecycle["attributes"]} == {"readOnly"}
    user_schema = client.get(f"/scim/v2/Schemas/{USER_SCHEMA}").get_json()
    attributes = {attr["name"]: attr for attr in user_schema["attributes"]}
    assert attributes["password"]["returned"] == "never"
    assert attributes["groups"]["mutability"] == "readOnly"


def test_lifecycle_state_is_returned_when_asked_for(scim: ScimClient) -> None:
    """The lifecycle extension comes back only when attributes names it, and is read-only."""
    user = create(scim, "Users", user_payload("lifecycle.state"))
    assert LIFECYCLE_SCHEMA not in user
    plain = scim.get(f"/Users/{user['id']}").get_json()
    assert LIFECYCLE_SCHEMA not in plain
    asked = scim.get(
        f"/Users/{user['id']}", query_string={"attributes": f"userName,{LIFECYCLE_SCHEMA}"}
    ).get_json()
    assert asked[LIFECYCLE_SCHEMA]["status"] == "active"
    assert asked[LIFECYCLE_SCHEMA]["passwordChangeRequired"] is False
    refused = scim.patch(
        f"/Users/{user['id']}",
        patch_payload({"op": "replace", "path": f"{LIFECYCLE_SCHEMA}:status", "value": "x"}),
    )
    assert refused.status_code == 400
    deactivated = scim.patch(
        f"/Users/{user['id']}", patch_payload({"op": "replace", "path": "active", "value": False})
    )
    assert deactivated.status_code == 200
    found = scim.get(
        "/Users",
        query_string={
            "filter": f'{LIFECYCLE_SCHEMA}:status eq "suspended"',
            "attributes": f"{LIFECYCLE_SCHEMA}:status",
        },
    ).get_json()
    assert [each["id"] for each in found["Resources"]] == [user["id"]]
    assert found["Resources"][0][LIFECYCLE_SCHEMA] == {"status": "suspended"}


def test_root_search_returns_users_and_groups(scim: ScimClient) -> None:
    """POST /.search searches users and groups at once, users first."""
    alice = create_user(scim, "alice")
    bob = create_user(scim, "bob")
    staff = create_group(scim, "Staff", [alice["id"]])
    body = scim.post("/.search", {"schemas": [SEARCH_SCHEMA]}).get_json()
    assert body["schemas"] == [LIST_SCHEMA]
    assert body["totalResults"] == 3
    assert [(each["meta"]["resourceType"], each["id"]) for each in body["Resources"]] == [
        ("User", alice["id"]),
        ("User", bob["id"]),
        ("Group", staff["id"]),
    ]
    page = scim.post("/.search", {"schemas": [SEARCH_SCHEMA], "startIndex": 2, "count": 2})
    page_body = page.get_json()
    assert page_body["totalResults"] == 3
    assert [each["id"] for each in page_body["Resources"]] == [bob["id"], staff["id"]]
    named = scim.post(
        "/.search", {"schemas": [SEARCH_SCHEMA], "filter": 'displayName eq "Staff"'}
    ).get_json()
    assert [each["id"] for each in named["Resources"]] == [staff["id"]]
