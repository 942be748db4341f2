"""Content negotiation (RFC 9110 §12.5.1) and endpoint paths as identity providers write them.

Every profile answers the same: media ranges with parameters, q-values, lists and wildcards
are matched; 406 only when nothing acceptable is listed; the response names what is served.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from scimbridge.scim.paths import canonical_path

from .api_support import ApiClient
from .api_support import api
from .api_support import api_app
from .conftest import ScimClient
from .conftest import group_payload
from .conftest import user_payload
from .test_errors import assert_scim_error

__all__ = ["api", "api_app"]

PROFILES = ["strict", "entra", "okta", "generic"]


@pytest.fixture(params=PROFILES)
def scim(app: Flask, request: pytest.FixtureRequest) -> ScimClient:
    """A SCIM client whose token has each profile in turn."""
    token = app.extensions["scimbridge"].tokens.create(f"t-{request.param}", request.param)
    return ScimClient(app.test_client(), token)


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        ("application/scim+json; charset=utf-8", "application/scim+json; charset=utf-8"),
        ("application/scim+json;charset=UTF-8", "application/scim+json; charset=utf-8"),
        ("application/json; charset=utf-8", "application/json; charset=utf-8"),
        ("application/json", "application/json"),
        ("application/scim+json", "application/scim+json"),
        ("application/*", "application/scim+json"),
        ("*/*", "application/scim+json"),
        ("text/html;q=0.9, application/json;q=0.5", "application/json"),
        ("application/json;q=0.4, application/scim+json;q=0.8", "application/scim+json"),
        ("application/scim+json;q=0, application/json", "application/json"),
        ("application/scim+json, application/json", "application/scim+json"),
        ("", "application/scim+json"),
    ],
)
def test_acceptable_media_types_are_served_and_named(
    scim: ScimClient, accept: str, served: str
) -> None:
    """Reads and writes answer in the type the client prefers, named in Content-Type."""
    headers = {"Accept": accept}
    created = scim.post("/Users", user_payload("bjensen"), headers=headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.headers["Content-Type"] == served
    listed = scim.get("/Users", headers=headers)
    assert listed.status_code == 200
    assert listed.headers["Content-Type"] == served
    assert listed.get_json()["Resources"][0]["userName"] == "bjensen"
    missing = scim.get("/Users/nobody", headers=headers)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == served


@pytest.mark.parametrize(
    "accept",
    [
        "text/html",
        "application/xml, text/*",
        "application/scim+json;q=0, application/json;q=0",
        "application/scim+json; charset=iso-8859-1",
    ],
)
def test_nothing_acceptable_gets_406_and_changes_nothing(scim: ScimClient, accept: str) -> None:
    """Only an Accept header that lists no JSON form the server has gets 406, as SCIM Error."""
    body = assert_scim_error(
        scim.post("/Users", user_payload("bjensen"), headers={"Accept": accept}), 406
    )
    assert body["detail"]
    assert scim.get("/Users").get_json()["totalResults"] == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "application/scim+json; charset=utf-8",
        "application/json; charset=UTF-8",
        "application/json",
        "application/scim+json",
    ],
)
def test_write_bodies_with_parameters_are_read(scim: ScimClient, content_type: str) -> None:
    """A write's Content-Type may carry a charset; the stored user is what was sent."""
    response = scim.request(
        "POST",
        "/Users",
        data=json.dumps(user_payload("bjensen", displayName="Barbara Jensen")),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    stored = scim.get(f"/Users/{response.get_json()['id']}").get_json()
    assert stored["displayName"] == "Barbara Jensen"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/scim+json; charset=iso-8859-1", "application/xml"]
)
def test_unreadable_body_types_get_415(scim: ScimClient, content_type: str) -> None:
    """A body that is not JSON, or JSON announced in another charset, gets 415."""
    response = scim.request(
        "POST",
        "/Users",
        data=json.dumps(user_payload("bjensen")),
        headers={"Content-Type": content_type},
    )
    assert_scim_error(response, 415)
    assert scim.get("/Users").get_json()["totalResults"] == 0


# -- endpoint paths ------------------------------------------------------------------------------


def test_endpoints_answer_under_any_case_and_trailing_slash(scim: ScimClient) -> None:
    """``/users``, ``/USERS/``, ``/Users/{id}/`` reach the same resources; no redirect."""
    created = scim.post("/users", user_payload("bjensen"))
    assert created.status_code == 201
    user = created.get_json()
    canonical = f"http://scim.test/scim/v2/Users/{user['id']}"
    assert created.headers["Location"] == canonical == user["meta"]["location"]
    for path in ("/Users/", "/users", "/USERS/", "/uSeRs"):
        listed = scim.get(path)
        assert listed.status_code == 200, path
        assert [u["id"] for u in listed.get_json()["Resources"]] == [user["id"]]
    for path in (f"/Users/{user['id']}/", f"/users/{user['id']}"):
        read = scim.get(path)
        assert read.status_code == 200, path
        assert read.get_json()["meta"]["location"] == canonical
    replaced = scim.put(f"/USERS/{user['id']}/", user_payload("bjensen", displayName="Babs"))
    assert replaced.status_code == 200
    assert scim.get(f"/Users/{user['id']}").get_json()["displayName"] == "Babs"
    group = scim.post("/groups/", group_payload("Admins"))
    assert group.status_code == 201
    assert group.headers["Location"].endswith(f"/scim/v2/Groups/{group.get_json()['id']}")
    search = scim.post(
        "/users/.SEARCH", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    )
    assert search.status_code == 200 and search.get_json()["totalResults"] == 1
    assert scim.delete(f"/users/{user['id']}/").status_code == 204
    assert scim.get(f"/Users/{user['id']}").status_code == 404


@pytest.mark.parametrize(
    "path", ["/serviceproviderconfig", "/ServiceProviderConfig/", "/resourcetypes", "/schemas/"]
)
def test_discovery_answers_under_any_case(scim: ScimClient, path: str) -> None:
    """Discovery documents answer under any case too, without a token."""
    response = scim.client.get(f"/scim/v2{path}")
    assert response.status_code == 200
    assert response.get_json()["schemas"]


def test_resource_ids_and_schema_urns_keep_their_case() -> None:
    """Only endpoint names are folded: ids and URNs are left as written."""
    prefix = "/scim/v2"
    assert canonical_path("/scim/v2/users/AbC/", prefix) == "/scim/v2/Users/AbC"
    assert (
        canonical_path("/scim/v2/schemas/urn:ietf:params:scim:schemas:core:2.0:User", prefix)
        == "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"
    )
    assert canonical_path("/scim/v2/Unknown/", prefix) == "/scim/v2/Unknown"
    assert canonical_path("/api/v1/users/", prefix) == "/api/v1/users/"


# -- the System API ------------------------------------------------------------------------------


def _api_payload() -> dict[str, Any]:
    return {"email": "ada@example.com", "given_name": "Ada", "role": "member"}


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        ("application/json; charset=utf-8", "application/json; charset=utf-8"),
        ("application/json", "application/json"),
        ("application/*;q=0.5, text/html", "application/json"),
        ("*/*", "application/json"),
    ],
)
def test_system_api_negotiates_the_same_way(api: ApiClient, accept: str, served: str) -> None:
    """The System API matches media ranges with parameters and names what it serves."""
    response = api.get("/users", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == served


def test_system_api_refuses_only_when_nothing_is_acceptable(api: ApiClient) -> None:
    """Accept without any JSON form: 406 problem; a charset on the body is read."""
    refused = api.get("/users", headers={"Accept": "text/html"})
    assert refused.status_code == 406
    assert refused.get_json()["type"].endswith("not-acceptable")
    created = api.request(
        "POST",
        "/users",
        data=json.dumps(_api_payload()),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    assert api.get(f"/users/{created.get_json()['id']}").get_json()["email"] == "ada@example.com"
