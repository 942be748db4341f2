"""A ``strict`` token gets RFC 7644 only: every known deviation is a 400 SCIM Error, no change.

Each case sends a request that Entra sends (taken from the same ``data/*.json`` step the Entra
replays use, or that step reduced to one deviation) with a strict token, to a resource set up
with RFC-conformant requests, and checks the answer and that the resource reads back exactly
as before (version and lastModified included). ``scimType`` is asserted only where RFC 7644
§3.12 leaves one reading: a type mismatch is ``invalidValue``, an unquoted filter value
``invalidFilter``, a value filter that matches nothing on replace ``noTarget``.

The last test is the control: the requests these clients send that *are* RFC 7644 pass
unchanged with a strict token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pytest

from .replay import ENTERPRISE_SCHEMA
from .replay import GROUP_SCHEMA
from .replay import PATCH_SCHEMA
from .replay import Exchange
from .replay import Replay
from .replay import ScimHttp
from .replay import assert_error
from .replay import find_step
from .replay import generate
from .replay import load
from .replay import member_ids

LEGACY_USERS = "entra_legacy_user_lifecycle"
FLAG_USERS = "entra_aadoptscim062020_user_lifecycle"
LEGACY_GROUPS = "entra_legacy_group_lifecycle"
TUTORIAL_GROUP = "entra_tutorial_create_group"


@dataclass
class Case:
    """One deviant request, what it is sent to, and the error expected."""

    sequence: str
    step: str
    target: str
    """``user``, ``user_no_email``, ``group_without_member_1``, ``group_with_both`` or
    ``nothing``: what is set up (with RFC requests) before the request is sent."""
    scim_type: str | None = None
    """Asserted only where unambiguous."""
    operations: list[dict[str, Any]] | None = field(default=None)
    """When set, the step's operations are replaced by these (one deviation alone)."""


CASES = {
    # Entra legacy requests, verbatim.
    "legacy Disable User (op Replace, value 'False')": Case(LEGACY_USERS, "Disable User", "user"),
    "legacy Update User [Multi-valued properties] (op Replace)": Case(
        LEGACY_USERS, "Update User [Multi-valued properties]", "user"
    ),
    "legacy Add single-value string attribute (op Add)": Case(
        LEGACY_USERS, "Add single-value string attribute", "user"
    ),
    "legacy Update Group [Add Members] (op Add)": Case(
        LEGACY_GROUPS, "Update Group [Add Members] (member 1)", "group_without_member_1"
    ),
    "legacy Update Group [Remove Members] (op Remove, value list on path members)": Case(
        LEGACY_GROUPS, "Update Group [Remove Members]", "group_with_both"
    ),
    "legacy unquoted filter value (externalId eq <guid>)": Case(
        LEGACY_USERS, "Get User by query - unquoted externalId", "user", "invalidFilter"
    ),
    # Entra with aadOptscim062020, verbatim.
    "aadOptscim062020 Replace multiple attributes (path-less, attribute-path keys)": Case(
        FLAG_USERS, "Replace multiple attributes", "user"
    ),
    "aadOptscim062020 manager set to a plain string": Case(
        FLAG_USERS, "Set manager", "user", "invalidValue"
    ),
    "aadOptscim062020 work email replaced on a user without one": Case(
        FLAG_USERS, "Update User work email (none yet)", "user_no_email", "noTarget"
    ),
    # The tutorial's literal Create Group sample.
    "tutorial Create Group with the ADSCIM schema URI": Case(
        TUTORIAL_GROUP, "Create Group", "nothing"
    ),
    # One deviation alone.
    "op value in PascalCase alone": Case(
        FLAG_USERS,
        "Add single-value string attribute",
        "user",
        operations=[{"op": "Replace", "path": "displayName", "value": "Changed"}],
    ),
    "string boolean alone": Case(
        FLAG_USERS,
        "Disable User",
        "user",
        "invalidValue",
        operations=[{"op": "replace", "path": "active", "value": "False"}],
    ),
    "remove with a value list alone": Case(
        LEGACY_GROUPS,
        "Update Group [Remove Members]",
        "group_with_both",
        operations=[{"op": "remove", "path": "members", "value": [{"value": "{member_1_id}"}]}],
    ),
    "path-less value with a dotted key alone": Case(
        FLAG_USERS,
        "Replace multiple attributes",
        "user",
        operations=[{"op": "replace", "value": {"name.givenName": "Kkom"}}],
    ),
    "path-less value with a URN-qualified attribute key alone": Case(
        FLAG_USERS,
        "Replace multiple attributes",
        "user",
        operations=[{"op": "replace", "value": {f"{ENTERPRISE_SCHEMA}:employeeNumber": "Aklq"}}],
    ),
}


def _set_up(replay: Replay, target: str) -> str | None:
    """Create what a case is sent to, with RFC requests; return the path to read it back at."""
    if target == "user":
        replay.send(find_step(load(LEGACY_USERS), "Create User"))
        replay.send(find_step(load(LEGACY_USERS), "Create User (manager)"))
        return "/Users/{user_id}"
    if target == "user_no_email":
        replay.send(find_step(load(LEGACY_USERS), "Create User (no email)"))
        return "/Users/{plain_user_id}"
    if target.startswith("group_"):
        groups = load(LEGACY_GROUPS)
        replay.send(find_step(groups, "Create User (member 1)"))
        replay.send(find_step(groups, "Create User (member 2)"))
        members = ["{member_1_id}", "{member_2_id}"]
        if target == "group_without_member_1":
            members = ["{member_2_id}"]
        created = replay.send(
            {
                "name": "Create Group (RFC, with members)",
                "method": "POST",
                "path": "/Groups",
                "body": {
                    "schemas": [GROUP_SCHEMA],
                    "displayName": "{group_name}",
                    "members": [{"value": member} for member in members],
                },
                "status": 201,
                "save": {"group_id": "id"},
            }
        )
        assert len(created.json["members"]) == len(members)
        return "/Groups/{group_id}"
    return None


def _all_variables(*names: str) -> dict[str, str]:
    """Fresh values for every placeholder the sequences named generate."""
    variables: dict[str, str] = {}
    for name in names:
        variables.update(generate(load(name).get("generate", {})))
    return variables


@pytest.fixture
def strict(scim_as: Callable[[str], ScimHttp]) -> ScimHttp:
    return scim_as("strict")


def _snapshot(replay: Replay, path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    exchange = replay.get(path)
    assert exchange.status == 200, exchange.describe()
    body: dict[str, Any] = exchange.json
    return body


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_strict_token_refuses_the_deviation_and_changes_nothing(
    strict: ScimHttp, case: Case
) -> None:
    sequence = load(case.sequence)
    variables = _all_variables(LEGACY_USERS, FLAG_USERS, LEGACY_GROUPS, TUTORIAL_GROUP)
    replay = Replay(strict, sequence, variables)
    path = _set_up(replay, case.target)
    before = _snapshot(replay, path)

    step = find_step(sequence, case.step)
    if case.operations is not None:
        step["body"] = {"schemas": [PATCH_SCHEMA], "Operations": case.operations}
    step.pop("expect", None)
    step.pop("save", None)
    refused: Exchange = replay.send({**step, "name": f"{case.step} (strict)", "status": 400})

    assert_error(refused, 400, case.scim_type)
    assert _snapshot(replay, path) == before
    if case.target == "nothing":
        found = replay.get('/Groups?filter=displayName eq "{group_name}"')
        assert found.json["totalResults"] == 0, found.describe()
    if case.target == "group_with_both":
        assert member_ids(before or {}) == {replay.vars["member_1_id"], replay.vars["member_2_id"]}


def test_strict_token_accepts_the_quoted_form_of_the_filter(strict: ScimHttp) -> None:
    """Control for the unquoted filter: quoted, the same query finds the user."""
    replay = Replay(strict, load(LEGACY_USERS))
    replay.run(through="Create User")
    found = replay.get('/Users?filter=externalId eq "{external_id}"')
    assert found.status == 200, found.describe()
    assert [user["id"] for user in found.json["Resources"]] == [replay.vars["user_id"]]


@pytest.mark.parametrize(
    "sequence",
    ["okta_user_lifecycle", "okta_group_lifecycle", "entra_aadoptscim062020_group_lifecycle"],
)
def test_strict_token_accepts_the_rfc_sequences(strict: ScimHttp, sequence: str) -> None:
    """The RFC 7644 traffic of these clients passes with a strict token.

    Okta's (path-less replace of active, rename with the group's own id, member remove by
    filter, full push) and Entra's aadOptscim062020 group traffic.
    """
    Replay(strict, load(sequence)).run()
