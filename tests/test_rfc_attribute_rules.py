"""RFC 7643 attribute rules scimbridge follows for every client, and what Entra's habits cost.

- Attribute names are case-insensitive (§2.1) and still compile to the indexed columns.
- ``""`` is a string: a strict token stores it where the attribute is a string; only a
  profile tolerating ``empty-string-clears`` reads it as "clear", never for a required one.
- An email value that is no address (a profile may let a client store one) never gets mail,
  and the admin profile page says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from scim2_models import ScimFilter
from scim2_models import SearchRequest

from scimbridge.app import create_app
from scimbridge.domain.lifecycle import InvalidTransition
from scimbridge.domain.resources import UserResource
from scimbridge.scim.quirks import PROFILE_TOLERANCES
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.filters import compile_filter
from scimbridge.store.filters import compile_sort_key
from scimbridge.store.migrations import upgrade

from .admin_support import SETUP
from .admin_support import Directory
from .admin_support import PageClient
from .conftest import ENTERPRISE_SCHEMA
from .conftest import USER_SCHEMA
from .conftest import ScimClient
from .conftest import created
from .conftest import make_settings
from .conftest import patch_payload
from .conftest import user_payload
from .lifecycle_support import ROLES_FILE
from .lifecycle_support import queued_emails
from .lifecycle_support import use_fast_password_hashing


def _sql(text: str) -> str:
    clause = compile_filter(ScimFilter[UserResource](text), "User", "sqlite")
    return str(clause.compile())


# -- attribute names in any case keep the indexed columns ------------------------------------------


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ('UserName eq "ada"', "users.user_name_key"),
        ('USERNAME sw "ad"', "users.user_name_key"),
        ('ExternalId eq "x"', "users.external_id"),
        ('DisplayName co "Ada"', "users.display_name_key"),
        ('Emails.Value eq "ada@example.com"', "user_emails.value_key"),
        ('emails[Type eq "work"]', "lower(user_emails.type)"),
        ('EMAILS[VALUE eq "ada@example.com"]', "user_emails.value_key"),
        ('Meta.LastModified gt "2030-01-01T00:00:00Z"', "users.last_modified"),
        ('urn:ietf:params:scim:schemas:core:2.0:User:UserName eq "ada"', "users.user_name_key"),
    ],
)
def test_filters_name_attributes_in_any_case_on_indexed_columns(text: str, column: str) -> None:
    """RFC 7643 §2.1: the letter case of a name never moves a filter off its index."""
    assert column in _sql(text)
    assert "json" not in _sql(text).lower()


def test_sort_by_any_case_orders_on_the_indexed_columns() -> None:
    for sort_by, column in (("UserName", "user_name_key"), ("EMAILS.VALUE", "primary_email_key")):
        search = SearchRequest[UserResource].model_validate({"sortBy": sort_by})
        binding = search.sort_binding(UserResource)
        assert binding is not None
        key = compile_sort_key(binding, "User", "sqlite")
        assert key is not None and column in str(key)


# -- "" under each profile -----------------------------------------------------------------------


def _token(app: Flask, profile: str) -> ScimClient:
    tokens = app.extensions["scimbridge"].tokens
    return ScimClient(app.test_client(), tokens.create(f"t-{profile}", profile=profile))


def _user(client: ScimClient) -> str:
    body = user_payload(
        "ada",
        title="Engineer",
        name={"givenName": "Ada", "familyName": "Lovelace"},
        emails=[{"value": "ada@example.com", "type": "work", "primary": True}],
    )
    return created(client.post("/Users", body))


def test_a_strict_token_stores_an_empty_string_as_a_string(app: Flask) -> None:
    """RFC 7643 gives ``""`` no special meaning: a string attribute keeps it."""
    strict = _token(app, "strict")
    user_id = _user(strict)
    response = strict.patch(
        f"/Users/{user_id}", patch_payload({"op": "replace", "path": "title", "value": ""})
    )
    assert response.status_code == 200, response.json
    assert strict.get(f"/Users/{user_id}").json["title"] == ""


def test_a_strict_token_refuses_an_empty_email_value(app: Flask) -> None:
    strict = _token(app, "strict")
    user_id = _user(strict)
    before = strict.get(f"/Users/{user_id}").json
    operation = {"op": "replace", "path": 'emails[type eq "work"].value', "value": ""}
    response = strict.patch(f"/Users/{user_id}", patch_payload(operation))
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"
    assert strict.get(f"/Users/{user_id}").json == before


@pytest.mark.parametrize("profile", ["strict", "entra", "okta", "generic"])
@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "title"},
        {"op": "Replace", "path": "title"},
        {"op": "add", "path": "title"},
        {"op": "replace"},
    ],
)
def test_an_add_or_replace_without_a_value_is_refused_and_changes_nothing(
    app: Flask, profile: str, operation: dict[str, Any]
) -> None:
    """RFC 7644 §3.5.2.1/§3.5.2.3: add and replace MUST carry a value; none is not a removal."""
    client = _token(app, profile)
    user_id = _user(client)
    before = client.get(f"/Users/{user_id}").json
    response = client.patch(f"/Users/{user_id}", patch_payload(operation))
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"
    assert client.get(f"/Users/{user_id}").json == before


def test_an_empty_string_never_clears_a_required_attribute(app: Flask) -> None:
    entra = _token(app, "entra")
    user_id = _user(entra)
    response = entra.patch(
        f"/Users/{user_id}", patch_payload({"op": "replace", "path": "userName", "value": ""})
    )
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"
    assert entra.get(f"/Users/{user_id}").json["userName"] == "ada"


def test_an_empty_string_never_clears_a_groups_display_name(app: Flask) -> None:
    generic = _token(app, "generic")
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops"}
    group_id = created(generic.post("/Groups", body))
    operation = {"op": "replace", "path": "displayName", "value": ""}
    response = generic.patch(f"/Groups/{group_id}", patch_payload(operation))
    assert response.status_code == 400
    assert response.json["scimType"] == "invalidValue"
    assert generic.get(f"/Groups/{group_id}").json["displayName"] == "Ops"


def test_clearing_what_is_not_there_changes_nothing(app: Flask) -> None:
    """``""`` for a work email the user does not have: nothing to clear, the user stays."""
    entra = _token(app, "entra")
    user_id = created(entra.post("/Users", user_payload("bob")))
    before = entra.get(f"/Users/{user_id}").json
    operations = [
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": ""},
        {"op": "add", "path": "title", "value": ""},
    ]
    response = entra.patch(f"/Users/{user_id}", patch_payload(*operations))
    assert response.status_code == 200, response.json
    assert entra.get(f"/Users/{user_id}").json == before


def test_path_less_empty_values_clear_and_the_others_apply(app: Flask) -> None:
    """A path-less replace mixing ``""`` and values: the first clear, the others are set."""
    generic = _token(app, "generic")
    user_id = _user(generic)
    value = {"title": "", "name.givenName": "", "displayName": "Countess", "department": ""}
    response = generic.patch(f"/Users/{user_id}", patch_payload({"op": "replace", "value": value}))
    assert response.status_code == 200, response.json
    stored = generic.get(f"/Users/{user_id}").json
    assert "title" not in stored
    assert stored["name"] == {"familyName": "Lovelace"}
    assert stored["displayName"] == "Countess"
    assert ENTERPRISE_SCHEMA not in stored


# -- email values that are no address ------------------------------------------------------------


@pytest.fixture
def inviting_app(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """An app inviting the users SCIM creates, with roles (for the admin pages)."""
    use_fast_password_hashing(monkeypatch)
    settings: Settings = make_settings(
        sqlite_url, roles={"file": ROLES_FILE}, lifecycle={"on_scim_create": "invite"}
    )
    database = Database(settings.database_url)
    upgrade(database)
    yield create_app(settings, database)
    database.dispose()


def _database(app: Flask) -> Database:
    database: Database = app.extensions["scimbridge"].database
    return database


def _emails(*values: tuple[str, str, bool]) -> list[dict[str, Any]]:
    return [{"value": value, "type": kind, "primary": primary} for value, kind, primary in values]


@pytest.mark.parametrize("profile", ["strict", "entra", "okta", "generic"])
def test_a_user_whose_only_email_is_no_address_is_not_invited(
    inviting_app: Flask, profile: str
) -> None:
    client = _token(inviting_app, profile)
    body = user_payload("upd-user", emails=_emails(("upd-0c1f", "work", True)))
    response = client.post("/Users", body)
    if "email-not-an-address" not in PROFILE_TOLERANCES[profile]:
        assert response.status_code == 400 and response.json["scimType"] == "invalidValue"
        assert client.get('/Users?filter=userName eq "upd-user"').json["totalResults"] == 0
        assert queued_emails(_database(inviting_app)) == []
        return
    user_id = created(response)
    directory = inviting_app.extensions["scimbridge"].directory
    assert directory.account(user_id).status == "active"
    assert directory.account(user_id).email is None
    assert queued_emails(_database(inviting_app)) == []
    # An admin's reset has nowhere to go either: refused as for a user without email.
    with pytest.raises(InvalidTransition, match="no email address"):
        directory.trigger_password_reset(user_id, SETUP)
    assert queued_emails(_database(inviting_app)) == []


def test_mail_goes_to_the_address_beside_a_value_that_is_none(inviting_app: Flask) -> None:
    """The primary work email is ``upd-…``: the invitation goes to the home address."""
    entra = _token(inviting_app, "entra")
    emails = _emails(("upd-7a2e", "work", True), ("ada@home.example.com", "home", False))
    created(entra.post("/Users", user_payload("ada", emails=emails)))
    sent = queued_emails(_database(inviting_app))
    assert [(email.template, email.to) for email in sent] == [
        ("invitation", "ada@home.example.com")
    ]


def test_the_admin_profile_says_which_emails_are_no_address(inviting_app: Flask) -> None:
    entra = _token(inviting_app, "entra")
    emails = _emails(("upd-5d1b", "work", True), ("ada@home.example.com", "home", False))
    user_id = created(entra.post("/Users", user_payload("ada", emails=emails)))
    directory = Directory(inviting_app, _database(inviting_app))
    directory.admin()
    browser = PageClient(inviting_app)
    browser.login("ada.admin@example.com")
    page = browser.get(f"/admin/users/{user_id}").text
    assert "upd-5d1b" in page
    assert "not an email address: never mailed" in page
    assert "ada@home.example.com <span" not in page


def test_schemas_are_published_as_validation_reads_them(scim: ScimClient) -> None:
    """The manager published optional is accepted without ``$ref`` on POST and PUT."""
    manager_id = created(scim.post("/Users", user_payload("boss")))
    body = user_payload("emp", **{ENTERPRISE_SCHEMA: {"manager": {"value": manager_id}}})
    body["schemas"] = [USER_SCHEMA, ENTERPRISE_SCHEMA]
    user_id = created(scim.post("/Users", body))
    assert scim.put(f"/Users/{user_id}", body).status_code == 200
    manager = scim.get(f"/Users/{user_id}").json[ENTERPRISE_SCHEMA]["manager"]
    assert manager == {"value": manager_id, "$ref": f"http://scim.test/scim/v2/Users/{manager_id}"}
    assert scim.get("/ResourceTypes/User").json["description"] == "User Account"
    schema = scim.get(f"/Schemas/{ENTERPRISE_SCHEMA}").json
    manager_schema = next(each for each in schema["attributes"] if each["name"] == "manager")
    flags = {
        sub["name"]: (sub["required"], sub["caseExact"], sub["mutability"])
        for sub in manager_schema["subAttributes"]
    }
    assert flags == {
        "value": (False, False, "readWrite"),
        "$ref": (False, False, "readWrite"),
        "displayName": (False, False, "readOnly"),
    }


def test_a_search_body_names_its_members_in_any_case(app: Flask) -> None:
    """``{"Filter": …, "SortBy": …}`` in a POST /.search, and Entra's unquoted value."""
    entra = _token(app, "entra")
    _user(entra)
    created(entra.post("/Users", user_payload("bob")))
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "Filter": "UserName eq ada",
        "Attributes": ["UserName"],
    }
    response = entra.post("/Users/.search", body)
    assert response.status_code == 200, response.json
    assert [user["userName"] for user in response.json["Resources"]] == ["ada"]


def test_member_values_compare_without_regard_to_case(scim: ScimClient) -> None:
    """members.value is not caseExact (RFC 7643 §8.7.1): an id in capitals still selects."""
    user_id = created(scim.post("/Users", user_payload("cat")))
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Cats",
        "members": [{"value": user_id}],
    }
    group_id = created(scim.post("/Groups", body))
    found = scim.get(f'/Groups?filter=members[value eq "{user_id.upper()}"]').json
    assert [group["id"] for group in found["Resources"]] == [group_id]
    operation = {"op": "remove", "path": f'Members[Value eq "{user_id.upper()}"]'}
    assert scim.patch(f"/Groups/{group_id}", patch_payload(operation)).status_code == 204
    assert "members" not in scim.get(f"/Groups/{group_id}").json
