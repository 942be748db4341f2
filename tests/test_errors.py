"""Every malformed or refused SCIM request gets its RFC 7644 status and a SCIM Error body.

Each refused write is also checked to leave the store exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from .conftest import user_payload

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def assert_scim_error(response: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """Check that a response is a SCIM Error with this status (and scimType, when given)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/scim+json"
    body: dict[str, Any] = response.get_json(force=True)
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


def create_user(scim: ScimClient, user_name: str = "bjensen", **attributes: Any) -> dict[str, Any]:
    response = scim.post("/Users", user_payload(user_name, **attributes))
    assert response.status_code == 201, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def create_group(
    scim: ScimClient, display_name: str = "Staff", members: list[str] | None = None
) -> dict[str, Any]:
    response = scim.post("/Groups", group_payload(display_name, members))
    assert response.status_code == 201, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def fetch(scim: ScimClient, path: str) -> dict[str, Any]:
    response = scim.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def total(scim: ScimClient, endpoint: str) -> int:
    count: int = fetch(scim, f"/{endpoint}")["totalResults"]
    return count


def member_ids(scim: ScimClient, group_id: str) -> set[str]:
    return {member["value"] for member in fetch(scim, f"/Groups/{group_id}").get("members", [])}


ScimFactory = Callable[..., ScimClient]


@pytest.fixture
def scim_with(tmp_path: Path) -> Iterator[ScimFactory]:
    """Build a SCIM client on a fresh SQLite app whose ``scim`` settings are overridden."""
    databases: list[Database] = []

    def build(**scim_settings: Any) -> ScimClient:
        settings = make_settings(
            f"sqlite:///{tmp_path / f'custom{len(databases)}.db'}", scim=scim_settings
        )
        database = Database(settings.database_url)
        databases.append(database)
        upgrade(database)
        app = create_app(settings, database)
        token = app.extensions["scimbridge"].tokens.create("tests")
        return ScimClient(app.test_client(), token)

    yield build
    for database in databases:
        database.dispose()


# -- request bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_invalid_json_gets_400_invalid_syntax_and_changes_nothing(
    scim: ScimClient, method: str
) -> None:
    """A body that is not JSON is refused with 400 invalidSyntax, whatever the write method."""
    user = create_user(scim)
    path = "/Users" if method == "POST" else f"/Users/{user['id']}"
    response = scim.request(
        method, path, data=b'{"userName": "x",', headers={"Content-Type": "application/scim+json"}
    )
    assert_scim_error(response, 400, "invalidSyntax")
    assert fetch(scim, f"/Users/{user['id']}")["meta"] == user["meta"]
    assert total(scim, "Users") == 1


@pytest.mark.parametrize("body", [[], ["userName"], "bjensen", 42, None, True])
def test_body_that_is_not_a_json_object_gets_400_invalid_syntax(
    scim: ScimClient, body: Any
) -> None:
    """A JSON body that is an array, string, number, null or boolean is refused."""
    import json

    response = scim.post(
        "/Users", data=json.dumps(body), headers={"Content-Type": "application/scim+json"}
    )
    assert_scim_error(response, 400, "invalidSyntax")
    assert total(scim, "Users") == 0


def test_empty_body_gets_400_invalid_syntax(scim: ScimClient) -> None:
    """A write without a body is refused with 400 invalidSyntax."""
    response = scim.post("/Users", headers={"Content-Type": "application/scim+json"})
    assert_scim_error(response, 400, "invalidSyntax")
    assert total(scim, "Users") == 0


def test_user_without_user_name_gets_400_invalid_value(scim: ScimClient) -> None:
    """A user without its required userName is refused with 400 invalidValue (RFC 7644 §3.12)."""
    response = scim.post("/Users", {"schemas": [user_payload("x")["schemas"][0]], "name": {}})
    assert_scim_error(response, 400, "invalidValue")
    assert total(scim, "Users") == 0


def test_group_without_display_name_gets_400_invalid_value(scim: ScimClient) -> None:
    """A group without its required displayName is refused with 400 invalidValue."""
    response = scim.post("/Groups", {"schemas": group_payload("x")["schemas"]})
    assert_scim_error(response, 400, "invalidValue")
    assert total(scim, "Groups") == 0


@pytest.mark.parametrize(
    "attributes",
    [
        {"userName": 42},
        {"userName": ["bjensen"]},
        {"active": {"yes": True}},
        {"emails": "bjensen@example.com"},
        {"name": "Barbara Jensen"},
        {"emails": [{"value": "bjensen@example.com", "primary": "sometimes"}]},
    ],
    ids=[
        "userName-number",
        "userName-list",
        "active-object",
        "emails-string",
        "name-string",
        "primary-string",
    ],
)
def test_attribute_of_the_wrong_type_gets_400_invalid_value(
    scim: ScimClient, attributes: dict[str, Any]
) -> None:
    """A value that does not fit its attribute's type is refused with 400 invalidValue."""
    response = scim.post("/Users", {**user_payload("bjensen"), **attributes})
    assert_scim_error(response, 400, "invalidValue")
    assert total(scim, "Users") == 0


def test_put_without_user_name_gets_400_and_changes_nothing(scim: ScimClient) -> None:
    """A PUT missing a required attribute is refused and the user keeps its version."""
    user = create_user(scim, displayName="Babs")
    response = scim.put(f"/Users/{user['id']}", {"schemas": user["schemas"], "displayName": "B"})
    assert_scim_error(response, 400, "invalidValue")
    after = fetch(scim, f"/Users/{user['id']}")
    assert after["displayName"] == "Babs"
    assert after["meta"]["version"] == user["meta"]["version"]


def test_patch_without_operations_gets_400(scim: ScimClient) -> None:
    """A PatchOp message without Operations is refused with 400."""
    user = create_user(scim)
    response = scim.patch(f"/Users/{user['id']}", {"schemas": patch_payload()["schemas"]})
    assert_scim_error(response, 400)
    assert fetch(scim, f"/Users/{user['id']}")["meta"] == user["meta"]


def test_patch_with_wrong_message_schema_gets_400(scim: ScimClient) -> None:
    """A PATCH body that is not a PatchOp message is refused with 400."""
    user = create_user(scim)
    response = scim.patch(
        f"/Users/{user['id']}",
        {"schemas": user["schemas"], "Operations": [{"op": "replace", "value": {"nickName": "b"}}]},
    )
    assert_scim_error(response, 400)
    assert "nickName" not in fetch(scim, f"/Users/{user['id']}")


# -- filters and query parameters -----------------------------------------------------------


@pytest.mark.parametrize(
    "scim_filter",
    [
        "userName eq",
        'userName eq "bjensen',
        'userName zz "bjensen"',
        '(userName eq "bjensen"',
        'noSuchAttribute eq "x"',
        'emails[type eq "work"',
        'userName eq "a" and',
    ],
)
def test_bad_filter_on_list_gets_400_invalid_filter(scim: ScimClient, scim_filter: str) -> None:
    """A filter that does not parse, or names an unknown attribute, gets 400 invalidFilter."""
    create_user(scim)
    response = scim.get("/Users", query_string={"filter": scim_filter})
    assert_scim_error(response, 400, "invalidFilter")


@pytest.mark.parametrize("endpoint", ["/Users/.search", "/Groups/.search", "/.search"])
def test_bad_filter_on_search_gets_400_invalid_filter(scim: ScimClient, endpoint: str) -> None:
    """A POST search with a filter that does not parse gets 400 invalidFilter."""
    response = scim.post(
        endpoint,
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "x eq"},
    )
    assert_scim_error(response, 400, "invalidFilter")


@pytest.mark.parametrize(
    "query",
    [{"startIndex": "one"}, {"count": "ten"}, {"count": "1.5"}, {"startIndex": "0x10"}],
)
def test_start_index_or_count_not_an_integer_gets_400(
    scim: ScimClient, query: dict[str, str]
) -> None:
    """A startIndex or count that is not an integer gets 400 invalidValue."""
    response = scim.get("/Users", query_string=query)
    assert_scim_error(response, 400, "invalidValue")


def test_search_with_count_not_an_integer_gets_400(scim: ScimClient) -> None:
    """A POST search whose count is not an integer gets 400."""
    response = scim.post(
        "/Users/.search",
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "count": "many"},
    )
    assert_scim_error(response, 400)


def test_bad_sort_order_gets_400(scim: ScimClient) -> None:
    """A sortOrder other than ascending/descending gets 400."""
    response = scim.get("/Users", query_string={"sortBy": "userName", "sortOrder": "sideways"})
    assert_scim_error(response, 400)


# -- PATCH ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["noSuchAttribute", "name.noSuchSub", 'emails[type eq "work"', "emails[]", "..."]
)
def test_patch_with_bad_path_gets_400_invalid_path(scim: ScimClient, path: str) -> None:
    """A PATCH path that does not parse or names no attribute gets 400 invalidPath."""
    user = create_user(scim)
    response = scim.patch(
        f"/Users/{user['id']}", patch_payload({"op": "replace", "path": path, "value": "x"})
    )
    assert_scim_error(response, 400, "invalidPath")
    assert fetch(scim, f"/Users/{user['id']}")["meta"] == user["meta"]


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "id", "value": "another-id"},
        {"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"},
        {"op": "remove", "path": "meta"},
        {"op": "add", "path": "groups", "value": [{"value": "some-group"}]},
        {"op": "replace", "value": {"id": "another-id"}},
    ],
    ids=["id", "meta.created", "meta", "groups", "id-without-path"],
)
def test_patch_of_read_only_attribute_gets_400_mutability(
    scim: ScimClient, operation: dict[str, Any]
) -> None:
    """PATCHing a readOnly attribute of a user (id, meta, groups) gets 400 mutability."""
    user = create_user(scim)
    response = scim.patch(f"/Users/{user['id']}", patch_payload(operation))
    assert_scim_error(response, 400, "mutability")
    after = fetch(scim, f"/Users/{user['id']}")
    assert after["id"] == user["id"]
    assert after["meta"] == user["meta"]


def test_patch_of_group_id_gets_400_mutability(scim: ScimClient) -> None:
    """PATCHing a group's id gets 400 mutability."""
    group = create_group(scim)
    response = scim.patch(
        f"/Groups/{group['id']}", patch_payload({"op": "replace", "path": "id", "value": "x"})
    )
    assert_scim_error(response, 400, "mutability")
    assert fetch(scim, f"/Groups/{group['id']}")["meta"] == group["meta"]


def test_patch_replace_with_filter_matching_nothing_gets_400_no_target(scim: ScimClient) -> None:
    """Replacing through a value filter that selects no value gets 400 noTarget (§3.5.2.3)."""
    user = create_user(scim, emails=[{"value": "bjensen@example.com", "type": "work"}])
    response = scim.patch(
        f"/Users/{user['id']}",
        patch_payload(
            {"op": "replace", "path": 'emails[type eq "home"].value', "value": "b@home.example"}
        ),
    )
    assert_scim_error(response, 400, "noTarget")
    after = fetch(scim, f"/Users/{user['id']}")
    assert after["emails"] == user["emails"]
    assert after["meta"] == user["meta"]


def test_group_patch_replace_with_member_filter_matching_nothing_gets_400_no_target(
    scim: ScimClient,
) -> None:
    """Replacing members[value eq "x"] when x is no member gets 400 noTarget; nothing changes."""
    alice, bob = create_user(scim, "alice"), create_user(scim, "bob")
    group = create_group(scim, members=[alice["id"]])
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch_payload(
            {
                "op": "replace",
                "path": f'members[value eq "{bob["id"]}"]',
                "value": [{"value": bob["id"]}],
            }
        ),
    )
    assert_scim_error(response, 400, "noTarget")
    assert member_ids(scim, group["id"]) == {alice["id"]}


@pytest.mark.parametrize(
    ("path", "scim_type"),
    [
        ("members.value", "mutability"),
        ("members.type", "mutability"),
        ("members.display", "invalidPath"),
        ('members[value eq "{id}"].value', "mutability"),
        ('members[value eq "{id}"].display', "invalidPath"),
    ],
)
def test_group_patch_of_a_member_sub_attribute_gets_400_and_changes_nothing(
    scim: ScimClient, path: str, scim_type: str
) -> None:
    """A PATCH on a sub-attribute of members is refused rather than silently doing nothing."""
    alice = create_user(scim, "alice")
    group = create_group(scim, members=[alice["id"]])
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch_payload({"op": "replace", "path": path.format(id=alice["id"]), "value": "x"}),
    )
    assert_scim_error(response, 400, scim_type)
    after = fetch(scim, f"/Groups/{group['id']}")
    assert after["members"] == group["members"]
    assert after["meta"] == group["meta"]


@pytest.mark.parametrize("op", ["frobnicate", "", "ADD-ALL", None])
def test_patch_with_unknown_op_gets_400_invalid_value(scim: ScimClient, op: str | None) -> None:
    """An operation whose op is not add, remove or replace gets 400 invalidValue."""
    user = create_user(scim)
    response = scim.patch(
        f"/Users/{user['id']}", patch_payload({"op": op, "path": "nickName", "value": "b"})
    )
    assert_scim_error(response, 400, "invalidValue")
    assert "nickName" not in fetch(scim, f"/Users/{user['id']}")


@pytest.mark.parametrize("form", ["path", "no-path", "replace"])
def test_group_patch_with_more_member_values_than_allowed_gets_400_too_many(
    scim_with: ScimFactory, form: str
) -> None:
    """A group PATCH carrying more than scim.max_patch_members member values gets 400 tooMany."""
    scim = scim_with(max_patch_members=3)
    users = [create_user(scim, f"user{i}")["id"] for i in range(4)]
    group = create_group(scim)
    values = [{"value": user_id} for user_id in users]
    operation: dict[str, Any] = {
        "path": {"op": "add", "path": "members", "value": values},
        "no-path": {"op": "add", "value": {"members": values}},
        "replace": {"op": "replace", "path": "members", "value": values},
    }[form]
    response = scim.patch(f"/Groups/{group['id']}", patch_payload(operation))
    assert_scim_error(response, 400, "tooMany")
    assert member_ids(scim, group["id"]) == set()
    # At the limit the same PATCH goes through.
    operation_at_limit = {"op": "add", "path": "members", "value": values[:3]}
    response = scim.patch(f"/Groups/{group['id']}", patch_payload(operation_at_limit))
    assert response.status_code == 204
    assert member_ids(scim, group["id"]) == set(users[:3])


def test_member_entry_without_value_gets_400(scim: ScimClient) -> None:
    """A member entry without a value id gets 400 invalidValue and adds nothing."""
    group = create_group(scim)
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch_payload({"op": "add", "path": "members", "value": [{"display": "Alice"}]}),
    )
    assert_scim_error(response, 400, "invalidValue")
    assert member_ids(scim, group["id"]) == set()


# -- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "bearer wrong"],
)
def test_request_without_a_valid_token_gets_401_with_www_authenticate(
    app: Flask, authorization: str | None
) -> None:
    """A request without a valid bearer token gets 401, a WWW-Authenticate header, no data."""
    headers = {} if authorization is None else {"Authorization": authorization}
    client = app.test_client()
    for method, path in (
        ("GET", "/Users"),
        ("POST", "/Users"),
        ("GET", "/Users/x"),
        ("DELETE", "/Groups/x"),
        ("GET", "/NoSuchEndpoint"),
    ):
        response = client.open(
            f"/scim/v2{path}",
            method=method,
            headers=headers,
            json=user_payload("mallory") if method == "POST" else None,
        )
        assert_scim_error(response, 401)
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_revoked_token_gets_401(app: Flask, scim: ScimClient) -> None:
    """Once revoked, a token that worked gets 401."""
    assert scim.get("/Users").status_code == 200
    assert app.extensions["scimbridge"].tokens.revoke("tests")
    response = scim.get("/Users")
    assert_scim_error(response, 401)
    assert "WWW-Authenticate" in response.headers
    response = scim.post("/Users", user_payload("mallory"))
    assert_scim_error(response, 401)


def test_write_with_a_bad_token_changes_nothing(app: Flask, scim: ScimClient) -> None:
    """An unauthenticated write is refused before it touches the store."""
    user = create_user(scim)
    client = app.test_client()
    headers = {"Authorization": "Bearer forged"}
    response = client.delete(f"/scim/v2/Users/{user['id']}", headers=headers)
    assert_scim_error(response, 401)
    response = client.post("/scim/v2/Users", json=user_payload("mallory"), headers=headers)
    assert_scim_error(response, 401)
    assert total(scim, "Users") == 1


# -- routing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_unknown_id_gets_404(scim: ScimClient, endpoint: str, method: str) -> None:
    """Any request on an id that names no resource gets 404."""
    body: dict[str, Any] | None = {
        "PUT": user_payload("x") if endpoint == "Users" else group_payload("x"),
        "PATCH": patch_payload({"op": "replace", "path": "displayName", "value": "x"}),
    }.get(method)
    response = scim.request(method, f"/{endpoint}/00000000-0000-0000-0000-000000000000", body)
    assert_scim_error(response, 404)
    assert total(scim, endpoint) == 0


def test_user_id_on_groups_endpoint_gets_404(scim: ScimClient) -> None:
    """A user's id is unknown under /Groups."""
    user = create_user(scim)
    assert_scim_error(scim.get(f"/Groups/{user['id']}"), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/NoSuchEndpoint",
        "/users2",
        "/Users/x/extra",
        "/Schemas/urn:no:such:schema",
        "/ResourceTypes/Nothing",
    ],
)
def test_unknown_endpoint_gets_404(scim: ScimClient, path: str) -> None:
    """A path that names no endpoint gets a 404 SCIM Error."""
    assert_scim_error(scim.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/Users"),
        ("PUT", "/Users"),
        ("PATCH", "/Groups"),
        ("POST", "/Users/some-id"),
        ("GET", "/.search"),
        ("DELETE", "/ServiceProviderConfig"),
        ("POST", "/Schemas"),
    ],
)
def test_wrong_method_on_a_known_endpoint_gets_405(
    scim: ScimClient, method: str, path: str
) -> None:
    """A method a known endpoint does not support gets 405 with an Allow header."""
    body = user_payload("x") if method in {"POST", "PUT", "PATCH"} else None
    response = scim.request(method, path, body)
    assert_scim_error(response, 405)
    assert method not in response.headers.get("Allow", "")
    assert response.headers.get("Allow")
    assert total(scim, "Users") == 0


# -- preconditions -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_write_with_current_if_match_succeeds(scim: ScimClient, method: str) -> None:
    """A write whose If-Match names the current version (weak or not, or *) goes through."""
    user = create_user(scim, "bjensen")
    path = f"/Users/{user['id']}"
    body = {
        "PUT": user_payload("bjensen", displayName="Changed"),
        "PATCH": patch_payload({"op": "replace", "path": "displayName", "value": "Changed"}),
    }.get(method)
    response = scim.request(method, path, body, headers={"If-Match": user["meta"]["version"]})
    assert response.status_code in {200, 204}
    if method != "DELETE":
        version = response.headers["ETag"]
        unquoted = version.removeprefix("W/")
        response = scim.request(method, path, body, headers={"If-Match": unquoted})
        assert response.status_code == 200
        response = scim.request(method, path, body, headers={"If-Match": "*"})
        assert response.status_code == 200


@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
def test_get_with_matching_if_none_match_gets_304(scim: ScimClient, endpoint: str) -> None:
    """A GET whose If-None-Match names the current version gets 304 without a body."""
    resource = create_user(scim) if endpoint == "Users" else create_group(scim)
    path = f"/{endpoint}/{resource['id']}"
    version = resource["meta"]["version"]
    for tag in (version, version.removeprefix("W/"), f'"nope", {version}'):
        response = scim.get(path, headers={"If-None-Match": tag})
        assert response.status_code == 304
        assert response.get_data() == b""
        assert response.headers["ETag"] == version
    response = scim.get(path, headers={"If-None-Match": 'W/"999"'})
    assert response.status_code == 200
    assert response.get_json()["id"] == resource["id"]


# -- media types and sizes -----------------------------------------------------------------------


def test_body_larger_than_max_payload_gets_413_scim_error(scim_with: ScimFactory) -> None:
    """A body over scim.max_payload_bytes gets 413 as a SCIM Error; nothing is created."""
    scim = scim_with(max_payload_bytes=2048)
    response = scim.post("/Users", user_payload("bjensen", nickName="x" * 4096))
    assert_scim_error(response, 413)
    assert total(scim, "Users") == 0
    assert scim.post("/Users", user_payload("bjensen", nickName="x" * 100)).status_code == 201


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"]
)
def test_body_that_is_not_json_media_type_gets_415(scim: ScimClient, content_type: str) -> None:
    """A write whose body is not application/scim+json or application/json gets 415."""
    import json

    response = scim.post(
        "/Users", data=json.dumps(user_payload("bjensen")), headers={"Content-Type": content_type}
    )
    assert_scim_error(response, 415)
    assert total(scim, "Users") == 0


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/scim+json; charset=utf-8"]
)
def test_json_media_types_are_accepted(scim: ScimClient, content_type: str) -> None:
    """Both application/json and application/scim+json (with parameters) are accepted."""
    import json

    response = scim.post(
        "/Users", data=json.dumps(user_payload("bjensen")), headers={"Content-Type": content_type}
    )
    assert response.status_code == 201


@pytest.mark.parametrize("accept", ["text/html", "text/html, application/xhtml+xml", "image/png"])
def test_accept_ruling_out_json_gets_406(scim: ScimClient, accept: str) -> None:
    """A client that accepts only non-JSON media types gets 406."""
    assert_scim_error(scim.get("/Users", headers={"Accept": accept}), 406)
    response = scim.post("/Users", user_payload("bjensen"), headers={"Accept": accept})
    assert_scim_error(response, 406)
    assert total(scim, "Users") == 0


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        ("application/scim+json", "application/scim+json"),
        ("application/json", "application/json"),
        ("*/*", "application/scim+json"),
        ("text/html, */*;q=0.1", "application/scim+json"),
    ],
)
def test_accept_allowing_json_is_served(scim: ScimClient, accept: str, served: str) -> None:
    """Accept headers that allow a JSON media type are served in the type they prefer."""
    response = scim.get("/Users", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.mimetype == served


# -- failed writes on both databases --------------------------------------------------------


class TestFailedWritesChangeNothing:
    """Refused writes leave the store as it was, on SQLite and on PostgreSQL."""

    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return make_settings(database_url)

    def test_patch_whose_last_operation_fails_applies_none_of_them(self, scim: ScimClient) -> None:
        """A user PATCH is all or nothing: when its last operation fails, none is applied."""
        user = create_user(
            scim, displayName="Babs", emails=[{"value": "b@example.com", "type": "work"}]
        )
        response = scim.patch(
            f"/Users/{user['id']}",
            patch_payload(
                {"op": "replace", "path": "displayName", "value": "Barbara"},
                {"op": "add", "path": "nickName", "value": "bj"},
                {
                    "op": "replace",
                    "path": 'emails[type eq "home"].value',
                    "value": "b@home.example",
                },
            ),
        )
        assert_scim_error(response, 400, "noTarget")
        after = fetch(scim, f"/Users/{user['id']}")
        assert after["displayName"] == "Babs"
        assert "nickName" not in after
        assert after["meta"] == user["meta"]

    def test_group_create_naming_an_unknown_member_creates_nothing(self, scim: ScimClient) -> None:
        """A group created with an unknown member id gets 400 and is not created."""
        alice = create_user(scim, "alice")
        response = scim.post("/Groups", group_payload("Staff", [alice["id"], "no-such-id"]))
        assert_scim_error(response, 400, "invalidValue")
        assert total(scim, "Groups") == 0
        assert fetch(scim, f"/Users/{alice['id']}").get("groups", []) == []

    def test_group_patch_whose_last_operation_fails_applies_none_of_them(
        self, scim: ScimClient
    ) -> None:
        """A group PATCH is all or nothing: member and attribute changes are undone on failure."""
        alice, bob = create_user(scim, "alice"), create_user(scim, "bob")
        group = create_group(scim, "Staff", [alice["id"]])
        response = scim.patch(
            f"/Groups/{group['id']}",
            patch_payload(
                {"op": "add", "path": "members", "value": [{"value": bob["id"]}]},
                {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'},
                {"op": "replace", "path": "displayName", "value": "Everyone"},
                {"op": "add", "path": "members", "value": [{"value": "no-such-id"}]},
            ),
        )
        assert_scim_error(response, 400, "invalidValue")
        after = fetch(scim, f"/Groups/{group['id']}")
        assert after["displayName"] == "Staff"
        assert {member["value"] for member in after["members"]} == {alice["id"]}
        assert after["meta"] == group["meta"]

    def test_group_patch_adding_an_unknown_id_adds_no_member(self, scim: ScimClient) -> None:
        """A member add naming an unknown id gets 400 and adds none of the values it carries."""
        alice = create_user(scim, "alice")
        group = create_group(scim)
        response = scim.patch(
            f"/Groups/{group['id']}",
            patch_payload(
                {
                    "op": "add",
                    "path": "members",
                    "value": [
                        {"value": alice["id"]},
                        {"value": "00000000-0000-0000-0000-000000000000"},
                    ],
                }
            ),
        )
        assert_scim_error(response, 400, "invalidValue")
        assert member_ids(scim, group["id"]) == set()
        assert fetch(scim, f"/Groups/{group['id']}")["meta"] == group["meta"]

    def test_group_rename_to_a_taken_display_name_gets_409_and_changes_nothing(
        self,
        scim: ScimClient,
    ) -> None:
        """Renaming a group to another group's name by PATCH or PUT gets 409; nothing changes."""
        alice = create_user(scim, "alice")
        create_group(scim, "Staff")
        other = create_group(scim, "Admins")
        response = scim.patch(
            f"/Groups/{other['id']}",
            patch_payload(
                {"op": "add", "path": "members", "value": [{"value": alice["id"]}]},
                {"op": "replace", "path": "displayName", "value": "staff"},
            ),
        )
        assert_scim_error(response, 409, "uniqueness")
        response = scim.put(f"/Groups/{other['id']}", group_payload("STAFF", [alice["id"]]))
        assert_scim_error(response, 409, "uniqueness")
        after = fetch(scim, f"/Groups/{other['id']}")
        assert after["displayName"] == "Admins"
        assert after.get("members", []) == []
        assert after["meta"] == other["meta"]

    @pytest.mark.parametrize("second", ["bjensen", "BJensen", "BJENSEN"])
    def test_duplicate_user_name_gets_409_uniqueness(self, scim: ScimClient, second: str) -> None:
        """A userName already taken, compared case-insensitively, gets 409 uniqueness."""
        create_user(scim, "bjensen")
        response = scim.post("/Users", user_payload(second))
        assert_scim_error(response, 409, "uniqueness")
        assert total(scim, "Users") == 1

    def test_put_renaming_to_a_taken_user_name_gets_409_and_changes_nothing(
        self, scim: ScimClient
    ) -> None:
        """A PUT taking another user's userName gets 409 uniqueness; the user is unchanged."""
        create_user(scim, "bjensen")
        other = create_user(scim, "jsmith", displayName="John")
        response = scim.put(f"/Users/{other['id']}", user_payload("BJensen", displayName="Changed"))
        assert_scim_error(response, 409, "uniqueness")
        after = fetch(scim, f"/Users/{other['id']}")
        assert (after["userName"], after["displayName"]) == ("jsmith", "John")
        assert after["meta"] == other["meta"]

    def test_patch_renaming_to_a_taken_user_name_gets_409_and_changes_nothing(
        self,
        scim: ScimClient,
    ) -> None:
        """A PATCH taking another user's userName gets 409 uniqueness; the user is unchanged."""
        create_user(scim, "bjensen")
        other = create_user(scim, "jsmith")
        response = scim.patch(
            f"/Users/{other['id']}",
            patch_payload(
                {"op": "replace", "path": "nickName", "value": "js"},
                {"op": "replace", "path": "userName", "value": "bJensen"},
            ),
        )
        assert_scim_error(response, 409, "uniqueness")
        after = fetch(scim, f"/Users/{other['id']}")
        assert after["userName"] == "jsmith"
        assert "nickName" not in after
        assert after["meta"] == other["meta"]

    @pytest.mark.parametrize("second", ["Staff", "staff", "STAFF"])
    def test_duplicate_group_display_name_gets_409_uniqueness(
        self, scim: ScimClient, second: str
    ) -> None:
        """A group displayName already taken, compared case-insensitively, gets 409 uniqueness."""
        alice = create_user(scim, "alice")
        create_group(scim, "Staff")
        response = scim.post("/Groups", group_payload(second, [alice["id"]]))
        assert_scim_error(response, 409, "uniqueness")
        assert total(scim, "Groups") == 1
        assert fetch(scim, f"/Users/{alice['id']}").get("groups", []) == []

    @pytest.mark.parametrize("endpoint", ["Users", "Groups"])
    @pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
    def test_write_with_stale_if_match_gets_412_and_changes_nothing(
        self, scim: ScimClient, endpoint: str, method: str
    ) -> None:
        """A write whose If-Match names an older version gets 412 and changes nothing."""
        if endpoint == "Users":
            resource = create_user(scim, "bjensen", displayName="Babs")
            new_body = user_payload("bjensen", displayName="Changed")
        else:
            resource = create_group(scim, "Babs")
            new_body = group_payload("Changed")
        path = f"/{endpoint}/{resource['id']}"
        current = fetch(scim, path)
        body = {
            "PUT": new_body,
            "PATCH": patch_payload({"op": "replace", "path": "displayName", "value": "Changed"}),
        }.get(method)
        for stale in ('W/"999"', '"999"', 'W/"0", W/"2"'):
            response = scim.request(method, path, body, headers={"If-Match": stale})
            assert_scim_error(response, 412)
        after = fetch(scim, path)
        assert after["displayName"] == "Babs"
        assert after["meta"] == current["meta"]


def test_a_write_with_unreadable_attributes_parameter_writes_nothing(scim: ScimClient) -> None:
    """A POST or PUT whose ``attributes`` cannot be read gets 400 before anything is stored."""
    response = scim.post("/Users?attributes=name[", user_payload("attrs@example.com"))
    assert response.status_code == 400
    assert scim.get('/Users?filter=userName eq "attrs@example.com"').json["totalResults"] == 0
    user = scim.post("/Users", user_payload("kept@example.com", title="Kept")).json
    replacement = user_payload("kept@example.com", title="Replaced")
    assert scim.put(f"/Users/{user['id']}?attributes=name[", replacement).status_code == 400
    assert scim.get(f"/Users/{user['id']}").json["title"] == "Kept"
