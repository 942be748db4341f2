"""Microsoft Entra ID provisioning, replayed request for request, legacy and aadOptscim062020.

Each test replays a documented sequence (``data/entra_*.json``) from its start up to the step
it is about, with an ``entra`` token (and a ``generic`` one, which tolerates every known
quirk), then reads the stored state back with GET using the same token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .replay import ENTERPRISE_SCHEMA
from .replay import GROUP_SCHEMA
from .replay import USER_SCHEMA
from .replay import Replay
from .replay import assert_error
from .replay import assert_list_response
from .replay import contains
from .replay import fill
from .replay import find_step
from .replay import member_ids

PROFILES = ["entra", "generic"]
USER_SEQUENCES = ["entra_legacy_user_lifecycle", "entra_aadoptscim062020_user_lifecycle"]
GROUP_SEQUENCES = ["entra_legacy_group_lifecycle", "entra_aadoptscim062020_group_lifecycle"]

pytestmark = pytest.mark.parametrize("profile", PROFILES)

Start = Callable[..., Replay]


def read(replay: Replay, path: str) -> dict[str, Any]:
    exchange = replay.get(path)
    assert exchange.status == 200, exchange.describe()
    body: dict[str, Any] = exchange.json
    return body


# -- users ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_test_connection_gets_an_empty_list_response(
    replay: Start, sequence: str, profile: str
) -> None:
    """Test Connection: a random GUID as userName finds nothing: 200 and an empty ListResponse."""
    run = replay(sequence, profile).run(through="Test Connection")
    exchange = run["Test Connection"]
    body = assert_list_response(exchange)
    assert body["totalResults"] == 0
    assert body.get("Resources", []) == []
    assert exchange.headers["Content-Type"].startswith("application/scim+json")


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_create_user_answers_201_with_the_full_user(
    replay: Start, sequence: str, profile: str
) -> None:
    run = replay(sequence, profile).run(through="Create User")
    created = run["Create User"]
    body = created.json
    assert USER_SCHEMA in body["schemas"]
    assert body["id"]
    assert body["meta"]["location"].endswith(f"/Users/{body['id']}")
    assert created.headers["Location"] == body["meta"]["location"]
    assert created.headers["ETag"] == body["meta"]["version"]
    assert "password" not in body
    assert read(run, "/Users/{user_id}") == body


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_create_user_twice_is_a_409_conflict(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run(through="Create User")
    assert_error(run.resend("Create User", 409), 409, "uniqueness")


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_get_user_and_get_user_by_query(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run(through="Get User by query")
    assert run["Get User"].json == run["Create User"].json
    found = assert_list_response(run["Get User by query"])
    assert found["totalResults"] == 1
    assert found["Resources"][0] == run["Create User"].json
    assert assert_list_response(run["Get User by query - Zero results"])["totalResults"] == 0


def test_user_found_by_an_unquoted_filter_value(replay: Start, profile: str) -> None:
    """Legacy: ``filter=externalId eq <value>`` with the value unquoted (tutorial, Example 1)."""
    run = replay("entra_legacy_user_lifecycle", profile)
    run.run(through="Get User by query - unquoted externalId")
    found = assert_list_response(run["Get User by query - unquoted externalId"])
    assert [user["id"] for user in found["Resources"]] == [run.vars["user_id"]]


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_update_user_multi_valued_properties(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run(through="Update User [Multi-valued properties]")
    user = read(run, "/Users/{user_id}")
    assert user["emails"] == [
        {"value": "updatedEmail@microsoft.com", "type": "work", "primary": True}
    ]
    assert user["name"]["familyName"] == "updatedFamilyName"
    assert user["name"]["givenName"] == "givenName"
    assert user == run["Update User [Multi-valued properties]"].json


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_update_user_single_valued_properties(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run(through="Update User [Single-valued properties]")
    assert read(run, "/Users/{user_id}")["userName"] == run.vars["new_user_name"]
    old = read(run, '/Users?filter=userName eq "{user_name}"')
    new = read(run, '/Users?filter=userName eq "{new_user_name}"')
    assert old["totalResults"] == 0
    assert [user["id"] for user in new["Resources"]] == [run.vars["user_id"]]


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_add_a_single_value_string_attribute(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run(through="Add single-value string attribute")
    user = read(run, "/Users/{user_id}")
    assert user["nickName"] == "Babs"
    assert user["userName"] == run.vars["new_user_name"]


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_replace_multiple_attributes(replay: Start, sequence: str, profile: str) -> None:
    """Replace several attributes at once; each lands on the attribute it names.

    Legacy sends one Replace per attribute; aadOptscim062020 a path-less replace whose keys are
    attribute paths (``name.givenName``, ``urn:…:User:employeeNumber``), which must not be
    stored as literal keys.
    """
    run = replay(sequence, profile).run(through="Replace multiple attributes")
    user = read(run, "/Users/{user_id}")
    contains(user, fill(find_step(run.sequence, "Replace multiple attributes")["expect"], run.vars))
    assert user == run["Replace multiple attributes"].json
    assert len(user["emails"]) == 1
    literal_keys = [
        key
        for key in user
        if (key.startswith("urn:") and key != ENTERPRISE_SCHEMA)
        or (not key.startswith("urn:") and "." in key)
    ]
    assert literal_keys == []
    assert set(user[ENTERPRISE_SCHEMA]) == {"employeeNumber"}


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_manager_set_by_reference(replay: Start, sequence: str, profile: str) -> None:
    """The enterprise manager PATCHed to the manager's id as a plain string."""
    run = replay(sequence, profile).run(through="Set manager")
    user = read(run, "/Users/{user_id}")
    assert user[ENTERPRISE_SCHEMA]["manager"]["value"] == run.vars["manager_id"]
    assert read(run, "/Users/{manager_id}")["userName"] == run.vars["manager_user_name"]


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_work_email_replaced_on_a_user_without_one_is_added(
    replay: Start, sequence: str, profile: str
) -> None:
    run = replay(sequence, profile).run(through="Update User work email (none yet)")
    user = read(run, "/Users/{plain_user_id}")
    assert [(email["type"], email["value"]) for email in user["emails"]] == [
        ("work", run.vars["late_email"])
    ]
    found = read(run, '/Users?filter=emails[type eq "work"].value eq "{late_email}"')
    assert [each["id"] for each in found["Resources"]] == [run.vars["plain_user_id"]]


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_disable_user(replay: Start, sequence: str, profile: str) -> None:
    """Disabled, the user keeps being returned, with ``active`` the JSON boolean false."""
    run = replay(sequence, profile).run(through="Get User (disabled)")
    user = read(run, "/Users/{user_id}")
    assert user["active"] is False
    found = read(run, '/Users?filter=userName eq "{new_user_name}"')
    assert [each["active"] for each in found["Resources"]] == [False]
    disabled = read(run, '/Users?filter=userName eq "{new_user_name}" and active eq false')
    assert disabled["totalResults"] == 1


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_delete_user_then_get_is_a_scim_404(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run()
    gone = run["Get User (deleted)"]
    body = assert_error(gone, 404)
    assert set(body) <= {"schemas", "status", "detail", "scimType"}
    assert gone.headers["Content-Type"].startswith("application/scim+json")
    assert read(run, '/Users?filter=userName eq "{new_user_name}"')["totalResults"] == 0


@pytest.mark.parametrize("sequence", USER_SEQUENCES)
def test_every_answer_is_scim_json_or_empty(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run()
    for exchange in run.exchanges.values():
        if exchange.status == 204:
            assert exchange.text == "", exchange.describe()
        else:
            assert exchange.headers["Content-Type"].startswith("application/scim+json"), (
                exchange.describe()
            )


# -- groups --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sequence", GROUP_SEQUENCES)
def test_create_group_answers_201_with_the_group(
    replay: Start, sequence: str, profile: str
) -> None:
    run = replay(sequence, profile).run(through="Create Group")
    created = run["Create Group"]
    body = created.json
    assert body["schemas"] == [GROUP_SCHEMA]
    assert body["id"]
    assert created.headers["Location"] == body["meta"]["location"]
    assert body.get("members", []) == []
    stored = read(run, "/Groups/{group_id}")
    assert stored["displayName"] == run.vars["group_name"]
    assert stored["externalId"] == run.vars["group_external_id"]


@pytest.mark.parametrize("sequence", GROUP_SEQUENCES)
def test_create_group_twice_is_a_409_conflict(replay: Start, sequence: str, profile: str) -> None:
    """The tutorial: groups must be unique on displayName."""
    run = replay(sequence, profile).run(through="Create Group")
    assert_error(run.resend("Create Group", 409), 409, "uniqueness")


@pytest.mark.parametrize("sequence", GROUP_SEQUENCES)
def test_group_reads_exclude_members(replay: Start, sequence: str, profile: str) -> None:
    """``excludedAttributes=members`` on GET and on the displayName search, once it has members."""
    run = replay(sequence, profile).run(through="Get Group by displayName (with members)")
    assert "members" not in run["Get Group"].json
    assert "members" not in run["Get Group (with members)"].json
    search = assert_list_response(run["Get Group by displayName (with members)"])
    assert [group["id"] for group in search["Resources"]] == [run.vars["group_id"]]
    assert "members" not in search["Resources"][0]
    assert member_ids(read(run, "/Groups/{group_id}")) == {
        run.vars["member_1_id"],
        run.vars["member_2_id"],
    }


@pytest.mark.parametrize("sequence", GROUP_SEQUENCES)
def test_group_patches_are_answered_204(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run(through="Update Group [Remove Members]")
    patches = [exchange for exchange in run.exchanges.values() if exchange.method == "PATCH"]
    assert len(patches) == 4
    for exchange in patches:
        assert (exchange.status, exchange.text) == (204, ""), exchange.describe()


@pytest.mark.parametrize("sequence", GROUP_SEQUENCES)
def test_update_group_non_member_attributes(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run(through="Update Group [Non-member attributes]")
    group = read(run, "/Groups/{group_id}")
    assert group["id"] == run.vars["group_id"]
    assert group["displayName"] == run.vars["new_group_name"]
    assert group["externalId"] == run.vars["group_external_id"]
    old = read(run, '/Groups?excludedAttributes=members&filter=displayName eq "{group_name}"')
    assert old["totalResults"] == 0


@pytest.mark.parametrize("sequence", GROUP_SEQUENCES)
def test_update_group_add_members(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run(through="Update Group [Add Members] (member 2)")
    group = read(run, "/Groups/{group_id}")
    assert member_ids(group) == {run.vars["member_1_id"], run.vars["member_2_id"]}
    assert group["displayName"] == run.vars["new_group_name"]
    user = read(run, "/Users/{member_1_id}")
    assert [each["value"] for each in user.get("groups", [])] == [run.vars["group_id"]]


@pytest.mark.parametrize("sequence", GROUP_SEQUENCES)
def test_update_group_remove_members_keeps_the_others(
    replay: Start, sequence: str, profile: str
) -> None:
    """Removing one member leaves the other member, the group and the removed user in place."""
    run = replay(sequence, profile).run(through="Update Group [Remove Members]")
    group = read(run, "/Groups/{group_id}")
    assert member_ids(group) == {run.vars["member_2_id"]}
    assert group["displayName"] == run.vars["new_group_name"]
    removed = read(run, "/Users/{member_1_id}")
    assert removed.get("groups", []) == []
    kept = read(run, "/Users/{member_2_id}")
    assert [each["value"] for each in kept["groups"]] == [run.vars["group_id"]]


@pytest.mark.parametrize("sequence", GROUP_SEQUENCES)
def test_delete_group(replay: Start, sequence: str, profile: str) -> None:
    run = replay(sequence, profile).run(through="Get Group (deleted)")
    assert_error(run["Get Group (deleted)"], 404)
    member = read(run, "/Users/{member_2_id}")
    assert member.get("groups", []) == []
    gone = read(run, '/Groups?excludedAttributes=members&filter=displayName eq "{new_group_name}"')
    assert gone["totalResults"] == 0


def test_tutorial_create_group_sample_verbatim(replay: Start, profile: str) -> None:
    """The tutorial's Create Group request as printed, ADSCIM schema URI included."""
    run = replay("entra_tutorial_create_group", profile).run(through="Get Group")
    group = run["Get Group"].json
    assert group["displayName"] == run.vars["group_name"]
    assert group["externalId"] == run.vars["group_external_id"]
    run.run()
