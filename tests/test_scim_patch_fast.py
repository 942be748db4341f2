"""The user PATCH fast path against scim2-models, its oracle: a differential property test.

Two stores, each behind its own ProvisioningService: one applies the shapes patch_fast knows
on the stored document, the other sends every PATCH through scim2-models' User model. Each
example creates the same generated user in both, sends both the same generated PATCH (IdP
shapes, Entra's deviations, and invalid ones) through the profile's normalisation, and
checks that the two agree on everything a client or an operator can see: the resource (its
JSON, key order included), the version, the error (status and scimType), the deviations
met, the audit event, the row's indexed columns and the outbox jobs queued.

Bounded (``max_examples``, no deadline) to run in CI in well under half a minute.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import given
from hypothesis import reject
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from pydantic import ValidationError
from scim2_models import Context
from scim2_models import PatchOp
from scim2_models import SCIMException
from sqlalchemy import select

from scimbridge.domain.lifecycle import Actor
from scimbridge.domain.resources import UserResource
from scimbridge.scim.errors import scim_error_from_validation
from scimbridge.scim.quirks import ClientProfile
from scimbridge.scim.quirks import normalize_patch
from scimbridge.service.directory import patch_fast
from scimbridge.service.directory import provisioning
from scimbridge.service.directory.provisioning import Caller
from scimbridge.store.tables import users

from .conftest import ENTERPRISE_SCHEMA
from .conftest import PATCH_SCHEMA
from .conftest import USER_SCHEMA
from .differential_support import Side
from .differential_support import email_rows
from .differential_support import events_and_jobs_since
from .differential_support import make_side
from .differential_support import marks

BOUNDED = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- users ---------------------------------------------------------------------------------

TYPES = ["work", "home", "other", "Work", "mobile"]
WORDS = st.sampled_from(["Ada", "Grace", "", " ", "False", "true", "Éloïse", "x" * 3, "Bob"])
ADDRESSES = st.sampled_from(["ada@example.org", "grace@corp.local", "upd-123", "b@example.org"])


def _email() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"value": ADDRESSES, "type": st.sampled_from(TYPES)},
        optional={"primary": st.booleans(), "display": WORDS},
    )


def _phone() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"value": st.sampled_from(["+1 555 0100", "0100"]), "type": st.sampled_from(TYPES)},
        optional={"primary": st.booleans()},
    )


NAME = st.fixed_dictionaries(
    {},
    optional={
        "givenName": WORDS,
        "familyName": WORDS,
        "formatted": WORDS,
        "middleName": WORDS,
    },
)
ENTERPRISE = st.fixed_dictionaries(
    {},
    optional={
        "department": WORDS,
        "costCenter": WORDS,
        "manager": st.fixed_dictionaries({"value": st.sampled_from(["m1", "m2"])}),
    },
)
USER = st.fixed_dictionaries(
    {},
    optional={
        "displayName": WORDS,
        "nickName": WORDS,
        "title": WORDS,
        "externalId": WORDS,
        "locale": st.sampled_from(["en-US", "fr"]),
        "active": st.booleans(),
        "name": NAME,
        "emails": st.lists(_email(), max_size=3),
        "phoneNumbers": st.lists(_phone(), max_size=2),
        "addresses": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(TYPES)}, optional={"streetAddress": WORDS}
            ),
            max_size=1,
        ),
        ENTERPRISE_SCHEMA: ENTERPRISE,
    },
)

# -- PATCH operations -------------------------------------------------------------------------

E = ENTERPRISE_SCHEMA
SIMPLE = ["displayName", "nickName", "title", "userType", "locale", "timezone", "externalId"]
SIMPLE += ["preferredLanguage", "userName", "active", "profileUrl"]
NAME_PATHS = [f"name.{part}" for part in ("givenName", "familyName", "formatted", "middleName")]
ENTERPRISE_PATHS = [f"{E}:{a}" for a in ("department", "costCenter", "division", "manager")]
ENTERPRISE_PATHS += [f"{E}:manager.value", "department", "manager"]
FILTERED = [
    f'{attribute}[type eq "{kind}"]{sub}'
    for attribute, sub in (
        ("emails", ".value"),
        ("emails", ""),
        ("phoneNumbers", ".value"),
        ("addresses", ".streetAddress"),
        ("emails", ".display"),
        ("emails", ".primary"),
    )
    for kind in ("work", "home", "Work")
]
INVALID_PATHS = ["id", "meta.created", "groups", "foo", "emails[type eq work].value"]
INVALID_PATHS += ['emails[value co "@"].value', "emails", "name", "emails.value", E]


def _casing(text: str) -> st.SearchStrategy[str]:
    """A path as written, sometimes in another letter case (names are case-insensitive)."""
    return st.sampled_from([text, text.lower(), text.upper()])


PATHS = st.sampled_from(SIMPLE + NAME_PATHS + ENTERPRISE_PATHS + FILTERED + INVALID_PATHS).flatmap(
    _casing
)
SCALARS = st.one_of(
    WORDS,
    ADDRESSES,
    st.booleans(),
    st.sampled_from(["False", "True", "yes", 0, 1, None, 2.5]),
)
VALUES = st.one_of(
    SCALARS,
    st.dictionaries(
        st.sampled_from(["givenName", "familyName", "value", "x"]), SCALARS, max_size=2
    ),
    st.lists(st.dictionaries(st.sampled_from(["value", "type"]), WORDS, max_size=2), max_size=1),
)
PATHLESS_KEYS = st.sampled_from(
    ["active", "displayName", "DISPLAYNAME", "title", "name.givenName", "name.familyName"]
    + [f"{E}:department", f"{E}:manager", "department", "id", "userName", "emails", "schemas"]
    + ["nickName", "profileUrl", "unknown"]
)
PATHLESS_VALUES = st.one_of(
    st.dictionaries(PATHLESS_KEYS, SCALARS, max_size=3),
    st.fixed_dictionaries({"name": NAME}),
    st.fixed_dictionaries({E: ENTERPRISE}),
    st.fixed_dictionaries({f"{E}:manager": st.sampled_from(["m3", {"value": "m3"}])}),
)
OPS = st.sampled_from(["add", "replace", "remove", "Add", "Replace", "Remove", "delete"])
WITH_PATH = st.fixed_dictionaries({"op": OPS, "path": PATHS}, optional={"value": VALUES})
PATHLESS = st.fixed_dictionaries({"op": OPS, "value": PATHLESS_VALUES})
ANYTHING = st.one_of(WITH_PATH, PATHLESS)
"""Operations of any shape: mostly invalid, or shapes the fast path leaves to the model."""

WRITE_OPS = st.sampled_from(["add", "replace", "Replace", "Add"])
REMOVE_OPS = st.sampled_from(["remove", "Remove"])
STRING_PATHS = SIMPLE[:-2] + NAME_PATHS + ENTERPRISE_PATHS[:3] + ["department"]
FILTERED_VALUES = [p for p in FILTERED if p.endswith((".value", ".streetAddress", ".display"))]
STRING_VALUES = st.one_of(WORDS, ADDRESSES, st.none())


def _write(paths: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"op": WRITE_OPS, "path": st.sampled_from(paths).flatmap(_casing), "value": values}
    )


IDP_SHAPES = st.one_of(
    _write(STRING_PATHS, STRING_VALUES),
    _write(["active"], st.sampled_from([True, False, "True", "False", "false"])),
    _write(FILTERED_VALUES, STRING_VALUES),
    _write(
        [f"{E}:manager", "manager"],
        st.sampled_from(["m3", {"value": "m3"}, {"value": None}, None, [{"value": "m4"}]]),
    ),
    _write(["name"], NAME),
    st.fixed_dictionaries(
        {
            "op": REMOVE_OPS,
            "path": st.sampled_from(STRING_PATHS + FILTERED + ["name", "active"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "op": WRITE_OPS,
            "value": st.one_of(
                st.dictionaries(
                    st.sampled_from(
                        ["active", "displayName", "title", "name.givenName", "name.familyName"]
                        + [f"{E}:department", f"{E}:manager", "department", "nickName"]
                    ),
                    st.one_of(WORDS, st.booleans(), st.sampled_from(["False", None])),
                    min_size=1,
                    max_size=3,
                ),
                st.fixed_dictionaries({"name": NAME}),
                st.fixed_dictionaries({E: ENTERPRISE}),
            ),
        }
    ),
)
"""The shapes identity providers send, with values of the right type and of wrong ones."""

UNDONE = st.tuples(st.sampled_from(STRING_PATHS + ["userName"]), WORDS).map(
    lambda pair: [
        {"op": "add", "path": pair[0], "value": pair[1]},
        {"op": "remove", "path": pair[0]},
    ]
)
"""A write and its undoing: the user changed (the version moves on) though it ends the same."""

REFUSED_OPERATIONS: list[dict[str, Any]] = [
    # RFC 7644 §3.5.2.3: a replace needs a value (the endpoint refuses it first, too).
    {"op": "replace", "path": "title"},
    {"op": "replace", "path": "userName", "value": None},
    {"op": "remove", "path": "userName"},
    {"op": "replace", "value": {"userName": None}},
    {"op": "replace", "value": {"userName": ""}},
    {"op": "replace", "path": "userName", "value": " "},
    {"op": "replace", "path": "id", "value": "x"},
    {"op": "replace", "value": {"id": "x", "title": "T"}},
    {"op": "replace", "path": "meta.lastModified", "value": "2030-01-01T00:00:00Z"},
    {"op": "replace", "path": "groups", "value": [{"value": "g"}]},
    {"op": "replace", "path": "displayName", "value": 5},
    {"op": "replace", "path": "profileUrl", "value": "not a URI"},
    {"op": "replace", "path": "emails[type eq work].value", "value": "a@example.org"},
    {"op": "replace", "path": 'emails[type eq "work"', "value": "a@example.org"},
    {"op": "replace", "path": 'emails[type xx "work"].value', "value": "a@example.org"},
    {"op": "replace", "path": 'emails[type eq "work"].value', "value": ["a@example.org"]},
    {"op": "remove", "path": "emails", "value": [{"value": "ada@example.org"}]},
    {"op": "add", "path": "title"},
    {"op": "remove"},
    {"op": "replace", "path": f"{E}:manager", "value": "m5"},
    {"op": "replace", "path": "name", "value": "Ada"},
]
"""Operations scim2-models refuses: wrong types, read-only targets, required attributes
removed, bad filters, missing members."""
COERCED_OPERATIONS: list[dict[str, Any]] = [
    {"op": "replace", "path": "active", "value": "yes"},
    {"op": "replace", "path": "active", "value": 0},
    {"op": "replace", "path": "active", "value": "1"},
]
"""Operations the model path accepts though they look wrong (lax booleans): the fast path
must leave them to scim2-models."""
REFUSED = st.sampled_from(REFUSED_OPERATIONS + COERCED_OPERATIONS)

OPERATIONS = st.one_of(
    st.lists(st.one_of(IDP_SHAPES, IDP_SHAPES, REFUSED, ANYTHING), min_size=1, max_size=3),
    UNDONE,
    REFUSED.map(lambda operation: [operation]),
)
ENVELOPES = st.sampled_from(
    [{"schemas": [PATCH_SCHEMA]}] * 6
    + [{}, {"schemas": ["urn:x"]}, {"schemas": [PATCH_SCHEMA], "id": "x"}]
)
"""What surrounds the operations: mostly right, sometimes without or with wrong members."""


# -- the two stores -----------------------------------------------------------------------------


TAKEN: list[bool] = []
"""Whether the fast path took each PATCH it was offered (for the statistics, and a check)."""


def _recording_apply_fast(*args: Any) -> patch_fast.FastPatch | None:
    try:
        result = patch_fast.apply_fast(*args)
    except SCIMException:
        TAKEN.append(True)
        raise
    TAKEN.append(result is not None)
    return result


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Side, Side]]:
    tmp = tmp_path_factory.mktemp("patch-fast")
    fast, slow = make_side(tmp, "fast", fast_patch=True), make_side(tmp, "slow", fast_patch=False)
    with pytest.MonkeyPatch.context() as patching:
        patching.setattr(provisioning, "apply_fast", _recording_apply_fast)
        yield fast, slow
    fast.database.dispose()
    slow.database.dispose()


_names = itertools.count()
CALLER = Caller(Actor("scim", "tests", "tests"))


def _create(side: Side, body: dict[str, Any]) -> str:
    try:
        user = UserResource.model_validate(
            copy.deepcopy(body), scim_ctx=Context.RESOURCE_CREATION_REQUEST
        )
    except ValidationError:
        reject()  # a user the model refuses cannot be stored: nothing to PATCH
    return side.service.create_user(user, CALLER).id


def _outcome(
    side: Side,
    user_id: str,
    body: dict[str, Any],
    profile: ClientProfile,
    if_match: str | None,
    validated_first: bool,
) -> tuple[Any, ...]:
    """PATCH as the SCIM endpoint does (or with a PatchOp validated first); what a client sees."""
    try:
        normalized = normalize_patch(copy.deepcopy(body), UserResource, profile)
        service = side.service
        if not validated_first:
            record = service.patch_user_request(user_id, normalized, if_match, profile, CALLER)
        else:
            patch = PatchOp[UserResource].model_validate(
                normalized, scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=profile.policy
            )
            record = service.patch_user(user_id, patch, if_match, profile, CALLER)
    except SCIMException as exc:
        return ("error", exc.status, exc.scim_type)
    except ValidationError as exc:
        error = scim_error_from_validation(exc)
        return ("error", error.status, error.scim_type)
    return ("ok", json.dumps(record.doc), record.version, record.status)


def _trail(side: Side, user_id: str, since: tuple[int, int]) -> tuple[Any, ...]:
    """Return what the store holds of the user and what the PATCH queued, ids replaced."""
    with side.database.read() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).mappings().one()
        emails = email_rows(conn, row["pk"])
        events, queued = events_and_jobs_since(conn, since)
    columns = {
        key: row[key]
        for key in (
            "user_name",
            "user_name_key",
            "external_id",
            "display_name",
            "display_name_key",
            "primary_email_key",
            "active",
            "version",
            "status",
        )
        if key in row
    }
    text = json.dumps(
        [columns, emails, events, queued],
        default=str,
    )
    return (text.replace(user_id, "<id>"),)


@BOUNDED
@given(
    attributes=USER,
    operations=OPERATIONS,
    profile=st.sampled_from(["entra", "strict", "okta"]),
    if_match=st.sampled_from([None, None, None, 'W/"1"', 'W/"7"', "*"]),
    taken_name=st.booleans(),
    validated_first=st.booleans(),
    envelope=ENVELOPES,
)
def test_fast_path_agrees_with_scim2_models(
    sides: tuple[Side, Side],
    attributes: dict[str, Any],
    operations: list[dict[str, Any]],
    profile: str,
    if_match: str | None,
    taken_name: bool,
    validated_first: bool,
    envelope: dict[str, Any],
) -> None:
    _compare(
        sides,
        attributes,
        {**envelope, "Operations": operations},
        profile,
        if_match=if_match,
        taken_name=taken_name,
        validated_first=validated_first,
    )


@pytest.mark.parametrize(
    ("operation", "refused"),
    [(operation, True) for operation in REFUSED_OPERATIONS]
    + [(operation, False) for operation in COERCED_OPERATIONS],
    ids=str,
)
@pytest.mark.parametrize("profile", ["entra", "strict"])
def test_refusals_agree(
    sides: tuple[Side, Side], operation: dict[str, Any], refused: bool, profile: str
) -> None:
    """Each refused or coerced operation, sent alone through the endpoint's entry, both paths."""
    user = {"title": "T", "emails": [{"value": "ada@example.org", "type": "work"}]}
    outcome = _compare(sides, user, {"schemas": [PATCH_SCHEMA], "Operations": [operation]}, profile)
    if profile == "strict":
        # Entra's profile tolerates some of them (a remove with a value, manager by id).
        assert (outcome[0] == "error") is refused, outcome


def _compare(
    sides: tuple[Side, Side],
    attributes: dict[str, Any],
    patch: dict[str, Any],
    profile: str,
    *,
    if_match: str | None = None,
    taken_name: bool = False,
    validated_first: bool = False,
) -> tuple[Any, ...]:
    """Create the user on both sides, PATCH it, check both agree; return the outcome."""
    number = next(_names)
    body = {"schemas": [USER_SCHEMA], "userName": f"user{number}", **attributes}
    if ENTERPRISE_SCHEMA in attributes:
        body["schemas"] = [USER_SCHEMA, ENTERPRISE_SCHEMA]
    if taken_name:
        # A userName another user has: the uniqueness rule must answer 409 on both sides.
        for operation in patch["Operations"]:
            if str(operation.get("path", "")).lower() == "username":
                operation["value"] = f"user{number - 1}"
    seen = []
    TAKEN.clear()
    for side in sides:
        user_id = _create(side, body)
        since = marks(side)
        client = ClientProfile("tests", profile)
        outcome = _outcome(side, user_id, patch, client, if_match, validated_first)
        seen.append((outcome, client.seen, client.refused, _trail(side, user_id, since)))
    fast, slow = seen
    if currently_in_test_context():
        path = "fast path" if any(TAKEN) else "model"
        event(f"{path}: {fast[0][0]} {fast[0][1] if fast[0][0] == 'error' else ''}")
    assert fast == slow, f"{body}\n{patch} ({profile})\nfast: {fast}\nslow: {slow}"
    return fast[0]


def test_the_fast_path_takes_the_idp_shapes(sides: tuple[Side, Side]) -> None:
    """The shapes the fast path exists for do not fall back (it would be no faster)."""
    shapes: list[dict[str, Any]] = [
        {"op": "replace", "path": "active", "value": False},
        {"op": "replace", "path": "name.givenName", "value": "Ada"},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@example.org"},
        {"op": "add", "path": f"{E}:department", "value": "R&D"},
        {"op": "replace", "path": f"{E}:manager", "value": {"value": "m1"}},
        {"op": "replace", "value": {"active": False, "name.givenName": "x", "title": "T"}},
        {"op": "remove", "path": "title"},
    ]
    for shape in shapes:
        body = {"schemas": [PATCH_SCHEMA], "Operations": [shape]}
        plan = patch_fast.plan_body(body)
        assert plan is not None, shape
        doc = {
            "schemas": [USER_SCHEMA],
            "userName": "u",
            "emails": [{"value": "b@x.org", "type": "work"}],
        }
        assert patch_fast.apply_fast(doc, plan, None) is not None, shape


@pytest.mark.parametrize("profile", ["strict", "entra", "okta"])
def test_normalizing_a_remove_adds_no_value(profile: str) -> None:
    """A remove without a value stays without one: normalising must not invent a null."""
    body = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "remove", "path": "nickName"}, {"op": "remove", "path": "title"}],
    }
    normalized = normalize_patch(copy.deepcopy(body), UserResource, ClientProfile("t", profile))
    assert normalized["Operations"] == body["Operations"]
