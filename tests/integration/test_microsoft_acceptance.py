"""What Microsoft's acceptance tests send for a SCIM app, replayed under every client profile.

The requests are ``data/microsoft_acceptance.json``: Microsoft's reference Postman collection,
the Entra gallery validation and SCIM Validator, and the provisioning tutorial's samples. Each
test replays the sequence up to the behaviour it is about with a ``strict``, ``entra``,
``okta`` or ``generic`` token, then reads the stored user back with GET. What RFC 7643/7644
allows (a manager by ``value`` alone, attribute names in any letter case) passes for every
profile; a step marked with a ``deviation`` passes for the profiles tolerating its kinds and
is refused by the others with a SCIM error, the user reading back exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from scimbridge.scim.quirks import PROFILE_TOLERANCES

from .replay import ENTERPRISE_SCHEMA
from .replay import GROUP_SCHEMA
from .replay import USER_SCHEMA
from .replay import Exchange
from .replay import Replay
from .replay import assert_error
from .replay import assert_list_response

SEQUENCE = "microsoft_acceptance"
PROFILES = ["strict", "entra", "okta", "generic"]

pytestmark = pytest.mark.parametrize("profile", PROFILES)

Start = Callable[..., Replay]


def refuses(profile: str, step: dict[str, Any]) -> bool:
    """Whether a token of ``profile`` refuses a step (it needs a deviation not tolerated)."""
    kinds = step.get("deviation", {}).get("kinds", [])
    return any(kind not in PROFILE_TOLERANCES[profile] for kind in kinds)


def replay_through(replay: Replay, profile: str, through: str) -> Replay:
    """Send the next steps up to ``through``, each expecting what ``profile`` gets for it."""
    while replay.position < len(replay.steps):
        step = replay.steps[replay.position]
        replay.position += 1
        if refuses(profile, step):
            deviation = step["deviation"]
            refused = {key: value for key, value in step.items() if key not in ("expect", "save")}
            exchange = replay.send({**refused, "status": deviation["status"]})
            assert_error(exchange, deviation["status"], deviation.get("scimType"))
        else:
            replay.send(step)
        if step["name"] == through:
            return replay
    raise KeyError(through)


def read(replay: Replay, path: str) -> dict[str, Any]:
    exchange = replay.get(path)
    assert exchange.status == 200, exchange.describe()
    body: dict[str, Any] = exchange.json
    return body


def tolerated(profile: str, *kinds: str) -> bool:
    return all(kind in PROFILE_TOLERANCES[profile] for kind in kinds)


def emails_by_type(user: dict[str, Any]) -> dict[str, str]:
    return {email.get("type"): email.get("value") for email in user.get("emails", [])}


def attribute(schema: dict[str, Any], name: str) -> dict[str, Any]:
    found = [each for each in schema["attributes"] if each["name"] == name]
    assert len(found) == 1, [each["name"] for each in schema["attributes"]]
    return found[0]


# -- schema discovery and the manager -------------------------------------------------------------


def test_schemas_read_as_rfc_7643_prints_them(replay: Start, profile: str) -> None:
    """Postman 'Get Schemas' and Entra's schema discovery: descriptions, externalId, manager."""
    run = replay_through(replay(SEQUENCE, profile), profile, "Get Schemas")
    exchange = run["Get Schemas"]
    assert "User Account" in exchange.text
    schemas = {each["id"]: each for each in assert_list_response(exchange)["Resources"]}
    descriptions = {urn: schemas[urn]["description"] for urn in (USER_SCHEMA, GROUP_SCHEMA)}
    assert descriptions == {USER_SCHEMA: "User Account", GROUP_SCHEMA: "Group"}
    assert schemas[ENTERPRISE_SCHEMA]["description"] == "Enterprise User"
    for urn in (USER_SCHEMA, GROUP_SCHEMA):
        external_id = attribute(schemas[urn], "externalId")
        assert (external_id["type"], external_id["required"]) == ("string", False)
        assert (external_id["mutability"], external_id["caseExact"]) == ("readWrite", True)
    manager = attribute(schemas[ENTERPRISE_SCHEMA], "manager")
    flags = {sub["name"]: sub["required"] for sub in manager["subAttributes"]}
    assert flags == {"value": False, "$ref": False, "displayName": False}
    assert read(run, f"/Schemas/{ENTERPRISE_SCHEMA}") == schemas[ENTERPRISE_SCHEMA]


def test_a_manager_given_by_value_is_stored_with_its_ref(replay: Start, profile: str) -> None:
    """Entra's create, replace and patch with ``manager: {value}``: accepted, $ref derived."""
    run = replay(SEQUENCE, profile)
    replay_through(run, profile, "Create User with manager")
    manager_location = run["Create User (manager)"].json["meta"]["location"]
    expected = {"value": run.vars["manager_id"], "$ref": manager_location}
    assert run["Create User with manager"].json[ENTERPRISE_SCHEMA]["manager"] == expected
    assert read(run, "/Users/{user_id}")[ENTERPRISE_SCHEMA]["manager"] == expected

    replay_through(run, profile, "Replace User with manager")
    stored = read(run, "/Users/{user_id}")
    assert stored[ENTERPRISE_SCHEMA] == {
        "employeeNumber": run.vars["employee_number"],
        "department": "Engineering",
        "manager": expected,
    }

    replay_through(run, profile, "Set manager by value")
    assert read(run, "/Users/{user_id}")[ENTERPRISE_SCHEMA]["manager"] == expected


# -- attribute names in any letter case (RFC 7643 §2.1) -------------------------------------------


def test_attribute_names_in_any_case_in_bodies_filters_and_attributes(
    replay: Start, profile: str
) -> None:
    """Postman's 'Post EnterpriseUser', 'Get User Filters' and 'Get User Attributes'."""
    run = replay_through(replay(SEQUENCE, profile), profile, "Get User Attributes")
    stored = read(run, "/Users/{postman_user_id}")
    users_url = stored["meta"]["location"].rsplit("/", 1)[0]
    assert stored[ENTERPRISE_SCHEMA] == {
        "department": "bob",
        "manager": {"value": "SuzzyQ", "$ref": f"{users_url}/SuzzyQ"},
    }
    assert [(email["value"], email["primary"]) for email in stored["emails"]] == [
        ("testing@bob2.com", True),
        ("testinghome@bob3.com", False),
    ]

    found = assert_list_response(run["Get User Filters"])
    assert [user["id"] for user in found["Resources"]] == [run.vars["user_id"]]

    selected = assert_list_response(run["Get User Attributes"])["Resources"]
    assert len(selected) == 1
    assert set(selected[0]) == {"schemas", "id", "userName", "emails"}
    assert selected[0]["userName"] == run.vars["user_name"]


def test_patch_paths_filters_and_sorting_in_any_case(replay: Start, profile: str) -> None:
    """Paths, value filters, URN prefixes, filters, sortBy and excludedAttributes any case."""
    run = replay_through(replay(SEQUENCE, profile), profile, "Update User in other letter cases")
    stored = read(run, "/Users/{user_id}")
    assert stored["name"]["givenName"] == "Kkom"
    assert emails_by_type(stored) == {
        "work": run.vars["changed_email"],
        "home": run.vars["home_email"],
    }
    assert stored[ENTERPRISE_SCHEMA]["department"] == "Research"

    for query in (
        'Emails.Value eq "{changed_email}"',
        'emails[Type eq "work" and Value eq "{changed_email}"]',
        'URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department eq "Research"'
        ' and ExternalId eq "{external_id}"',
    ):
        found = assert_list_response(run.get(f"/Users?filter={query}"))
        assert [user["id"] for user in found["Resources"]] == [run.vars["user_id"]], query

    names = sorted([run.vars["user_name"], run.vars["postman_user_name"]], key=str.lower)
    for order, expected in (("ascending", names), ("descending", names[::-1])):
        page = assert_list_response(
            run.get(
                '/Users?filter=ExternalId eq "{external_id}"'
                f"&sortBy=UserName&sortOrder={order}&excludedAttributes=Emails,Name"
            )
        )
        assert [user["userName"] for user in page["Resources"]] == expected
        assert not any("emails" in user or "name" in user for user in page["Resources"])


# -- Entra's remaining habits: tolerated by entra and generic, refused by strict and okta ----------


def _unchanged_or_refused(
    run: Replay, profile: str, step: str, before: dict[str, Any], kinds: tuple[str, ...]
) -> bool:
    """Check a refused step changed nothing; return whether the profile tolerated it."""
    if tolerated(profile, *kinds):
        return True
    exchange: Exchange = run[step]
    assert "not RFC 7644: " in exchange.json["detail"], exchange.describe()
    assert read(run, "/Users/{user_id}") == before
    return False


def test_extension_attributes_named_without_their_urn(replay: Start, profile: str) -> None:
    """Microsoft's documented ``path: manager`` and bare employeeNumber / department."""
    run = replay_through(replay(SEQUENCE, profile), profile, "Update User in other letter cases")
    before = read(run, "/Users/{user_id}")
    manager_location = run["Create User (manager)"].json["meta"]["location"]

    replay_through(run, profile, "Add manager (documented)")
    kinds = ("op-case", "extension-without-urn", "single-value-as-list")
    if _unchanged_or_refused(run, profile, "Add manager (documented)", before, kinds):
        # The documented value carries the client's own $ref; it is kept as sent.
        manager = read(run, "/Users/{user_id}")[ENTERPRISE_SCHEMA]["manager"]
        assert manager["value"] == run.vars["manager_id"]

    replay_through(run, profile, "Set manager without URN")
    if _unchanged_or_refused(run, profile, "Set manager without URN", before, kinds[1:2]):
        manager = read(run, "/Users/{user_id}")[ENTERPRISE_SCHEMA]["manager"]
        assert manager["value"] == run.vars["manager_id"]
        # add on a complex attribute sets the sub-attributes it names (RFC 7644 §3.5.2.1):
        # the $ref the documented request sent is kept, else the one derived from value.
        assert manager["$ref"] in (
            manager_location,
            manager_location.replace(
                manager_location.rsplit("/Users/", 1)[0], "http://example.com/scim"
            ),
        )
    else:
        assert "extension-without-urn" in run["Set manager without URN"].json["detail"]

    replay_through(run, profile, "Replace employeeNumber and department without URN")
    step = "Replace employeeNumber and department without URN"
    if _unchanged_or_refused(run, profile, step, before, kinds[1:2]):
        extension = read(run, "/Users/{user_id}")[ENTERPRISE_SCHEMA]
        assert extension["employeeNumber"] == "E-" + run.vars["employee_number"]
        assert extension["department"] == "Operations"


def test_null_update_clears_optional_attributes(replay: Start, profile: str) -> None:
    """Entra's null update: one PATCH of ``""`` values clears each; a cleared email goes."""
    run = replay_through(
        replay(SEQUENCE, profile), profile, "Replace employeeNumber and department without URN"
    )
    before = read(run, "/Users/{user_id}")
    replay_through(run, profile, "Null update")
    if not _unchanged_or_refused(run, profile, "Null update", before, ("empty-string-clears",)):
        return
    stored = read(run, "/Users/{user_id}")
    assert emails_by_type(stored) == {"home": run.vars["home_email"]}
    assert stored["name"] == {"familyName": "Leenay", "formatted": "Ryan Leenay"}
    assert "title" not in stored
    assert "employeeNumber" not in stored[ENTERPRISE_SCHEMA]
    # What the PATCH did not name is kept.
    assert stored[ENTERPRISE_SCHEMA]["department"] == before[ENTERPRISE_SCHEMA]["department"]
    assert stored["displayName"] == before["displayName"]
    assert stored["meta"]["version"] != before["meta"]["version"]


def test_a_work_email_that_is_no_address_is_stored(replay: Start, profile: str) -> None:
    """The validator's ``upd-…`` work email and Postman's ``emailName357``."""
    run = replay_through(replay(SEQUENCE, profile), profile, "Null update")
    before = read(run, "/Users/{user_id}")
    replay_through(run, profile, "Update work email (validator value)")
    step = "Update work email (validator value)"
    if _unchanged_or_refused(run, profile, step, before, ("email-not-an-address",)):
        stored = read(run, "/Users/{user_id}")
        assert emails_by_type(stored)["work"] == run.vars["validator_email"]
        found = assert_list_response(run.get('/Users?filter=emails.value eq "{validator_email}"'))
        assert [user["id"] for user in found["Resources"]] == [run.vars["user_id"]]

    replay_through(run, profile, "create user1 (ComplexAttribute tests)")
    lookup = assert_list_response(run.get('/Users?filter=userName eq "{complex_user_name}"'))
    if not tolerated(profile, "email-not-an-address"):
        assert lookup["totalResults"] == 0
        return
    assert [user["id"] for user in lookup["Resources"]] == [run.vars["complex_user_id"]]
    stored = read(run, "/Users/{complex_user_id}")
    assert stored["emails"] == [
        {"value": "emailName357", "type": "work", "primary": True},
        {"value": "testinghome@bob.com", "type": "home", "primary": False},
    ]
