"""The user create fast path against scim2-models, its oracle: a differential property test.

Two stores, each behind its own ProvisioningService: one reads the bodies create_fast knows
straight into their document, the other sends every create through the client profile's
normalisation and scim2-models' User model. Each example sends both the same generated body
(the Entra and Okta shapes, and refused ones: wrong types, missing or blank or taken
userName, addresses that are no address, unknown attributes, wrong schemas, read-only
attributes, letter-case variants) under a profile through the endpoint's entry
(``operations.create_user``), and checks that the two agree on everything a client or an
operator can see: the response body (key order included), the version and status, the error
(status and scimType), the deviations met, the row's indexed columns, the email rows, the
audit event and the outbox jobs queued.

Bounded (``max_examples``, no deadline) to run in CI in well under fifteen seconds.
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
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from pydantic import ValidationError
from scim2_models import SCIMException
from sqlalchemy import select

from scimbridge.domain.lifecycle import Actor
from scimbridge.scim import operations
from scimbridge.scim.errors import scim_error_from_validation
from scimbridge.scim.quirks import ClientProfile
from scimbridge.scim.responses import resource_body
from scimbridge.service.directory import create_fast
from scimbridge.service.directory.provisioning import Caller
from scimbridge.store.tables import users

from .conftest import ENTERPRISE_SCHEMA
from .conftest import USER_SCHEMA
from .differential_support import Side
from .differential_support import email_rows
from .differential_support import events_and_jobs_since
from .differential_support import make_side
from .differential_support import marks
from .lifecycle_support import use_fast_password_hashing

BOUNDED = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
E = ENTERPRISE_SCHEMA

# -- bodies ----------------------------------------------------------------------------------

WORDS = st.sampled_from(["Ada", "", " ", "False", "true", "Éloïse", "O'Brien", "x" * 3])
ADDRESSES = st.sampled_from(
    ["ada@example.org", "grace@corp.local", "upd-123", "b@EXAMPLE.org", "x@localhost", ""]
    + ["ada@example.org", "b@example.org", "a.b+c@sub.example.org", "a@b@example.org"]
)
WRONG = st.sampled_from([5, 2.5, None, True, [], {}, ["Ada"], {"value": "Ada"}, "True"])
"""Values of a type the attribute does not have (or a string boolean, or null)."""


def _maybe_wrong(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a right value, sometimes a wrong one."""
    return st.one_of(right, right, right, WRONG)


EMAIL = st.fixed_dictionaries(
    {},
    optional={
        "value": _maybe_wrong(ADDRESSES),
        "type": _maybe_wrong(st.sampled_from(["work", "home", "Work", "other"])),
        "primary": _maybe_wrong(st.booleans()),
        "display": WORDS,
        "Value": ADDRESSES,
        "foo": WORDS,
    },
)
TYPES = st.sampled_from(["work", "mobile", "home", "Work", "other", "fax", ""])
PHONE = st.fixed_dictionaries(
    {},
    optional={
        "value": _maybe_wrong(st.sampled_from(["+1 555 0100", "0100", "", "not a number"])),
        "type": _maybe_wrong(TYPES),
        "primary": _maybe_wrong(st.booleans()),
        "display": WORDS,
        "Type": TYPES,
    },
)
ADDRESS = st.fixed_dictionaries(
    {},
    optional={
        "type": _maybe_wrong(TYPES),
        "streetAddress": _maybe_wrong(WORDS),
        "locality": WORDS,
        "region": WORDS,
        "postalCode": st.sampled_from(["75001", "", "SW1A 1AA"]),
        "country": st.sampled_from(["FR", "fr", "France", "XX", ""]),
        "formatted": WORDS,
        "primary": _maybe_wrong(st.booleans()),
        "street_address": WORDS,
    },
)
NAME = st.fixed_dictionaries(
    {},
    optional={
        "givenName": _maybe_wrong(WORDS),
        "familyName": WORDS,
        "formatted": WORDS,
        "middleName": WORDS,
        "honorificPrefix": WORDS,
        "GivenName": WORDS,
        "nickname": WORDS,
    },
)
MANAGER = st.one_of(
    st.fixed_dictionaries({"value": _maybe_wrong(st.sampled_from(["m1", "", "Boss"]))}),
    st.sampled_from(["m1", {}, {"$ref": "http://x/Users/m1", "value": "m1"}, [{"value": "m1"}]]),
    st.sampled_from([{"displayName": "Boss", "value": "m1"}, None]),
)
ENTERPRISE = st.fixed_dictionaries(
    {},
    optional={
        "employeeNumber": _maybe_wrong(WORDS),
        "department": WORDS,
        "costCenter": WORDS,
        "organization": WORDS,
        "division": WORDS,
        "manager": MANAGER,
        "Department": WORDS,
        "foo": WORDS,
    },
)
ATTRIBUTES = st.fixed_dictionaries(
    {},
    optional={
        "externalId": _maybe_wrong(WORDS),
        "displayName": _maybe_wrong(WORDS),
        "nickName": WORDS,
        "title": WORDS,
        "userType": WORDS,
        "preferredLanguage": st.sampled_from(["en-US", "fr", "not a language"]),
        "locale": st.sampled_from(["en-US", "fr", "xx"]),
        "timezone": st.sampled_from(["Europe/Paris", "Nowhere/Else"]),
        "profileUrl": st.sampled_from(["https://example.org/ada", "not a URI"]),
        "active": st.one_of(st.booleans(), st.booleans(), WRONG),
        "name": st.one_of(NAME, NAME, NAME, WRONG),
        "emails": st.one_of(st.lists(EMAIL, max_size=3), WRONG),
        "password": st.sampled_from(["1mz050nq", "", None, 5]),
        E: st.one_of(ENTERPRISE, ENTERPRISE, ENTERPRISE, WRONG),
        "phoneNumbers": st.one_of(st.lists(PHONE, max_size=3), WRONG),
        "addresses": st.one_of(st.lists(ADDRESS, max_size=2), WRONG),
        # Read-only attributes: the model ignores them, or refuses what it cannot read.
        "id": st.sampled_from(["abc", 5]),
        "meta": st.sampled_from([{"resourceType": "User"}, {"resourceType": 5}, {}, "x"]),
        "groups": st.sampled_from([[], [{"value": "g1"}], None]),
        "roles": st.sampled_from([[], [{"value": "admin"}], None]),
        # Unknown or misspelt attributes.
        "foo": WORDS,
        "DisplayName": WORDS,
        "username": WORDS,
        "urn:ietf:params:scim:schemas:extension:scimbridge:2.0:Lifecycle": st.just(
            {"status": "active"}
        ),
    },
)
SCHEMAS = st.sampled_from(
    [[USER_SCHEMA]] * 4
    + [[USER_SCHEMA, E]] * 4
    + [[], [E], ["urn:x"], [USER_SCHEMA, "urn:x"], [USER_SCHEMA.upper()], [USER_SCHEMA, E.lower()]]
    + [[E, USER_SCHEMA], [USER_SCHEMA, USER_SCHEMA], USER_SCHEMA, None, [5]]
)
USER_NAMES = st.sampled_from(
    ["new", "new", "new", "taken", "TAKEN", "", " ", None, 5, "Éloïse.new"]
)
"""``new`` stands for a name no user has, ``taken`` for one another user has."""

ENTRA = {
    "schemas": [USER_SCHEMA, E],
    "externalId": "0a21f0f2",
    "userName": "new",
    "active": True,
    "emails": [{"primary": True, "type": "work", "value": "ada@example.org"}],
    "meta": {"resourceType": "User"},
    "name": {"formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada"},
    "roles": [],
}
OKTA = {
    "schemas": [USER_SCHEMA],
    "userName": "new",
    "name": {"givenName": "Test", "familyName": "User"},
    "emails": [{"primary": True, "value": "new@example.org", "type": "work"}],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00u1",
    "groups": [],
    "password": "1mz050nq",
    "active": True,
}
MICROSOFT = {
    "schemas": [USER_SCHEMA, E],
    "externalId": "ryan",
    "userName": "new",
    "active": True,
    "displayName": "Ryan Leenay",
    "name": {"givenName": "Ryan", "familyName": "Leenay", "formatted": "Ryan Leenay"},
    "title": "Site engineer",
    "emails": [
        {"primary": True, "type": "work", "value": "ryan@example.org"},
        {"primary": False, "type": "home", "value": "ryan@home.example.org"},
    ],
    E: {"employeeNumber": "701984", "department": "Engineering", "manager": {"value": "m1"}},
}
ENTRA_MAPPINGS = {
    **ENTRA,
    "displayName": "Ada Lovelace",
    "title": "Analyst",
    "phoneNumbers": [
        {"type": "work", "value": "+1 555 0100"},
        {"type": "mobile", "value": "+1 555 0199"},
    ],
    "addresses": [
        {
            "type": "work",
            "streetAddress": "1 Main St",
            "locality": "Springfield",
            "region": "IL",
            "postalCode": "62701",
            "country": "US",
        }
    ],
    E: {"employeeNumber": "42", "department": "R&D", "manager": {"value": "m1"}},
}
"""Entra's create under its default attribute mappings: phones, a work address, enterprise."""
IDP_BODIES = [ENTRA, OKTA, MICROSOFT, ENTRA_MAPPINGS]


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A creation body: an IdP's as sent or altered, or one put together attribute by attribute."""
    if draw(st.booleans()):
        body = copy.deepcopy(draw(st.sampled_from(IDP_BODIES)))
        alterations = draw(ATTRIBUTES)
        for key in draw(st.lists(st.sampled_from(sorted(body)), max_size=2, unique=True)):
            del body[key]  # drop a few attributes, userName and schemas included
        return {**body, **dict(itertools.islice(alterations.items(), draw(st.integers(0, 2))))}
    body = dict(draw(ATTRIBUTES))
    schemas = draw(SCHEMAS)
    if schemas is not None:
        body["schemas"] = schemas
    user_name = draw(USER_NAMES)
    if user_name is not None:
        body["userName"] = user_name
    return body


# -- the two stores -----------------------------------------------------------------------------


TAKEN: list[bool] = []
"""Whether the fast path took each body it was offered (for the statistics, and a check)."""


def _recording_plan_create(body: dict[str, Any]) -> create_fast.PlannedUser | None:
    planned = create_fast.plan_create(body)
    TAKEN.append(planned is not None)
    return planned


Pairs = dict[bool, tuple[Side, Side]]
"""The two sides, without and with invitations on create (``invite_on_create``)."""


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pairs]:
    tmp = tmp_path_factory.mktemp("create-fast")
    made = {
        inviting: (
            make_side(tmp, f"fast-{inviting}", fast_create=True, invite_on_create=inviting),
            make_side(tmp, f"slow-{inviting}", fast_create=False, invite_on_create=inviting),
        )
        for inviting in (False, True)
    }
    with pytest.MonkeyPatch.context() as patching:
        use_fast_password_hashing(patching)
        patching.setattr(operations, "plan_create", _recording_plan_create)
        for side in (side for pair in made.values() for side in pair):
            # The user whose name "taken" stands for.
            operations.create_user(
                side.service,
                {"schemas": [USER_SCHEMA], "userName": "taken"},
                ClientProfile("tests", "strict"),
                CALLER,
            )
        yield made
    for pair in made.values():
        for side in pair:
            side.database.dispose()


@pytest.fixture(scope="module")
def sides(pairs: Pairs) -> tuple[Side, Side]:
    """The two sides that create users active (no invitation)."""
    return pairs[False]


_names = itertools.count()
CALLER = Caller(Actor("scim", "tests", "tests"))


def _outcome(side: Side, body: dict[str, Any], profile: ClientProfile) -> tuple[Any, ...]:
    """Create as the SCIM endpoint does; return what a client sees, the new user's id apart."""
    try:
        record = operations.create_user(side.service, copy.deepcopy(body), profile, CALLER)
    except SCIMException as exc:
        return ("error", exc.status, exc.scim_type), None
    except ValidationError as exc:
        error = scim_error_from_validation(exc)
        return ("error", error.status, error.scim_type), None
    response = resource_body(record, "http://scim.test")
    for stamp in ("created", "lastModified"):
        response["meta"].pop(stamp)
    text = json.dumps(response).replace(record.id, "<id>")
    return ("ok", text, record.version, record.status), record.id


def _trail(side: Side, user_id: str | None, since: tuple[int, int]) -> str:
    """Return what the store holds of the user and what the create queued, ids replaced."""
    with side.database.read() as conn:
        row: dict[str, Any] = {}
        emails: list[Any] = []
        if user_id is not None:
            found = conn.execute(select(users).where(users.c.id == user_id)).mappings().one()
            row = {
                key: found[key]
                for key in ("user_name", "user_name_key", "external_id", "display_name")
                + ("display_name_key", "primary_email_key", "active", "version", "status")
                + ("doc", "password_change_required")
                if key in found
            }
            row["has_password"] = found["password_hash"] is not None
            emails = email_rows(conn, found["pk"])
        events, queued = events_and_jobs_since(conn, since)
    text = json.dumps(
        [row, emails, events, [_unsecret(job) for job in queued]],
        default=str,
    )
    return text.replace(user_id, "<id>") if user_id else text


_RANDOM = {"link", "expires"}
"""What an invitation email carries that differs from one invitation to the next."""


def _unsecret(value: Any) -> Any:
    """Mask an invitation's random link and clock-made expiry, at any depth."""
    if isinstance(value, dict):
        return {k: "<masked>" if k in _RANDOM else _unsecret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsecret(item) for item in value]
    return value


def _unique(body: dict[str, Any], number: int) -> dict[str, Any]:
    """Give ``new`` user names a name of their own (both sides create the same one)."""
    if body.get("userName") in ("new", "Éloïse.new"):
        return {**body, "userName": f"{body['userName']}{number}"}
    return body


def _compare(body: dict[str, Any], profile: str, sides: tuple[Side, Side]) -> tuple[Any, ...]:
    """Create the user on both sides; check both agree; return the outcome."""
    body = _unique(body, next(_names))
    seen = []
    TAKEN.clear()
    for side in sides:
        since = marks(side)
        client = ClientProfile("tests", profile)
        outcome, user_id = _outcome(side, body, client)
        seen.append((outcome, client.seen, client.refused, _trail(side, user_id, since)))
    fast, slow = seen
    if currently_in_test_context():
        path = "fast path" if any(TAKEN) else "model"
        event(f"{path}: {fast[0][0]} {fast[0][1] if fast[0][0] == 'error' else ''}")
    assert fast == slow, f"{body} ({profile})\nfast: {fast}\nslow: {slow}"
    return fast[0]


@BOUNDED
@given(body=bodies(), profile=st.sampled_from(["entra", "strict", "okta"]), inviting=st.booleans())
def test_fast_path_agrees_with_scim2_models(
    pairs: Pairs, body: dict[str, Any], profile: str, inviting: bool
) -> None:
    _compare(body, profile, pairs[inviting])


REFUSED_BODIES: list[dict[str, Any]] = [
    {"schemas": [USER_SCHEMA]},
    {"schemas": [USER_SCHEMA], "userName": ""},
    {"schemas": [USER_SCHEMA], "userName": " "},
    {"schemas": [USER_SCHEMA], "userName": 5},
    {"schemas": [USER_SCHEMA], "userName": "taken"},
    {"schemas": [USER_SCHEMA], "userName": "TAKEN"},
    {"userName": "new"},
    {"schemas": [], "userName": "new"},
    {"schemas": [USER_SCHEMA], "userName": "new", "displayName": 5},
    {"schemas": [USER_SCHEMA], "userName": "new", "active": "yes"},
    {"schemas": [USER_SCHEMA], "userName": "new", "name": "Ada"},
    {"schemas": [USER_SCHEMA], "userName": "new", "emails": {"value": "a@example.org"}},
    {"schemas": [USER_SCHEMA], "userName": "new", "emails": [{"value": 5}]},
    {"schemas": [USER_SCHEMA], "userName": "new", "emails": [{"primary": "maybe"}]},
    {"schemas": [USER_SCHEMA], "userName": "new", "profileUrl": "not a URI"},
    {"schemas": [USER_SCHEMA], "userName": "new", E: {"manager": "m1"}},
    {"schemas": [USER_SCHEMA, E], "userName": "new", E: {"employeeNumber": 5}},
]
"""Bodies one of the profiles refuses: no, blank or taken userName, wrong types or schemas."""
NOT_AN_ADDRESS = {
    "schemas": [USER_SCHEMA],
    "userName": "new",
    "emails": [{"value": "upd-123", "type": "work"}],
}


@pytest.mark.parametrize("body", [*REFUSED_BODIES, NOT_AN_ADDRESS], ids=str)
@pytest.mark.parametrize("profile", ["entra", "strict", "okta"])
def test_refusals_agree(sides: tuple[Side, Side], body: dict[str, Any], profile: str) -> None:
    """Each refused body, sent alone, gets the same error from both paths."""
    outcome = _compare(body, profile, sides)
    if body in REFUSED_BODIES[:6]:
        assert outcome[0] == "error", outcome
    if body is NOT_AN_ADDRESS:
        # Entra's profile stores a value that is no address (never mailed); strict refuses it.
        assert (outcome[0] == "error") is (profile != "entra"), outcome


@pytest.mark.parametrize("body", IDP_BODIES, ids=["entra", "okta", "microsoft", "entra-mapped"])
def test_the_fast_path_takes_the_idp_bodies(sides: tuple[Side, Side], body: dict[str, Any]) -> None:
    """The bodies the fast path exists for do not fall back (it would be no faster)."""
    assert create_fast.plan_create(body) is not None
    assert _compare(body, "entra", sides)[0] == "ok"
    assert TAKEN == [True], "the fast side read the body itself (the other never asks)"
