"""A user creation body read directly into its stored document: the fast path of IdP creates.

Why it exists: the general way to create a user validates the body into scim2-models' User
and dumps the model back into the stored document. The two cost most of the CPU a create
takes, while identity providers send one plain shape over and over: ``userName``, a few
strings, ``name``, work emails, ``active``, the enterprise extension, and for Okta a password
(Entra adds ``meta.resourceType`` and ``roles: []``, Okta ``groups: []``, which the model
ignores; Entra's default mappings add work and mobile ``phoneNumbers`` and a work address).
Such a body is read here into the document the model path would store, in microseconds.

scim2-models stays the oracle. :func:`plan_create` plans only a body whose outcome it
reproduces exactly: attributes spelled as the schema spells them, values of the exact JSON
type the model keeps as they are, nothing the client profile would rewrite (string booleans,
unknown schema URIs, URN spellings), and nothing the model would refuse. It answers ``None``
for anything else, and the caller takes the model path for the whole body, errors included.
``tests/test_scim_create_fast.py`` generates bodies, valid and refused, and checks that both
paths agree; an attribute added here needs a generator there.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from ...domain.enterprise import ENTERPRISE_SCHEMA
from .patch_fast import DUMP_ORDER

_CORE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
_SCHEMAS = ([_CORE_SCHEMA], [_CORE_SCHEMA, ENTERPRISE_SCHEMA])

# Attributes read as plain strings: the model checks nothing more of them (profileUrl, a
# URI, and the multi-valued attributes other than those below are left to it).
_CORE_STRINGS = frozenset(
    {"userName", "externalId", "displayName", "nickName", "title", "userType"}
    | {"preferredLanguage", "locale", "timezone"}
)
_NAME_STRINGS = frozenset(DUMP_ORDER[("name",)])
_ENTERPRISE_STRINGS = frozenset(
    {"employeeNumber", "costCenter", "organization", "division", "department"}
)
# Multi-valued complex attributes: their string sub-attributes (``primary`` is a boolean).
_MULTI_STRINGS: dict[str, frozenset[str]] = {
    "emails": frozenset({"value", "type", "display"}),
    "phoneNumbers": frozenset({"value", "type", "display"}),
    "addresses": frozenset(DUMP_ORDER[("addresses",)]) - {"primary"},
}

# Read-only attributes IdPs send empty (or, for meta, with the resource type alone): the
# model ignores them in a creation request. Anything else in them goes the model's way.
_IGNORED = {"groups": [], "roles": [], "meta": {"resourceType": "User"}}


@dataclass(frozen=True)
class PlannedUser:
    """A creation body the fast path read: the document to store and the password, if any."""

    doc: dict[str, Any]
    """The stored document, as ``mapping.document`` writes it from the validated model."""
    password: str | None = field(default=None, repr=False)

    @property
    def email_values(self) -> list[str]:
        """The email values the user is created with (the client's profile judges them)."""
        return [entry["value"] for entry in self.doc.get("emails", ()) if "value" in entry]


def plan_create(body: dict[str, Any]) -> PlannedUser | None:
    """Return the user ``body`` creates, or None when scim2-models must read it."""
    schemas = body.get("schemas")
    if schemas not in _SCHEMAS:
        return None
    found: dict[str, Any] = {}
    password = None
    enterprise: dict[str, Any] | None = None
    for key, value in body.items():
        if key in _CORE_STRINGS:
            if not isinstance(value, str):
                return None
            found[key] = value
        elif key == "active":
            if type(value) is not bool:
                return None
            found[key] = value
        elif key == "name":
            name = _strings(value, _NAME_STRINGS)
            if name is None:
                return None
            if name:
                found[key] = _ordered(name, DUMP_ORDER[("name",)])
        elif key in _MULTI_STRINGS:
            entries = _entries(value, key)
            if entries is None:
                return None
            if entries:
                found[key] = entries
        elif key == ENTERPRISE_SCHEMA:
            enterprise = _enterprise(value)
            if enterprise is None or ENTERPRISE_SCHEMA not in schemas:
                return None
        elif key == "password":
            if not isinstance(value, str):
                return None
            password = value or None
        elif key in _IGNORED:
            if value != _IGNORED[key] or type(value) is not type(_IGNORED[key]):
                return None
        elif key != "schemas":
            return None
    user_name = found.get("userName")
    if user_name is None or not user_name.strip():
        return None  # the model and the service refuse it, each in its own words
    # The service creates a user active unless told otherwise.
    found.setdefault("active", True)
    if enterprise:
        found[ENTERPRISE_SCHEMA] = enterprise
        found["schemas"] = [_CORE_SCHEMA, ENTERPRISE_SCHEMA]
    else:
        # The model lists an extension's schema only when the extension holds a value.
        found["schemas"] = [_CORE_SCHEMA]
    return PlannedUser(_ordered(found, DUMP_ORDER[()]), password)


def _ordered(values: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """Return ``values`` in the order a model dump writes them."""
    return {key: values[key] for key in order if key in values}


def _strings(value: Any, names: frozenset[str]) -> dict[str, str] | None:
    """Return a complex value whose members are all strings named in ``names``, else None."""
    if not isinstance(value, dict):
        return None
    for key, item in value.items():
        if key not in names or not isinstance(item, str):
            return None
    return value


def _entries(value: Any, attribute: str) -> list[dict[str, Any]] | None:
    """Return a multi-valued attribute in dump form; None when an entry is not plainly readable.

    Empty entries are left out, as the model leaves them out.
    """
    if not isinstance(value, list):
        return None
    strings = _MULTI_STRINGS[attribute]
    entries = []
    for entry in value:
        if not isinstance(entry, dict):
            return None
        for key, item in entry.items():
            if key == "primary":
                if type(item) is not bool:
                    return None
            elif key not in strings or not isinstance(item, str):
                return None
        if entry:
            entries.append(_ordered(entry, DUMP_ORDER[(attribute,)]))
    return entries


def _enterprise(value: Any) -> dict[str, Any] | None:
    """Return the enterprise extension in dump form; None when it is not plainly readable."""
    if not isinstance(value, dict):
        return None
    found: dict[str, Any] = {}
    for key, item in value.items():
        if key == "manager":
            manager = _strings(item, frozenset({"value"}))
            if manager is None:
                return None
            if manager:
                found[key] = dict(manager)
        elif key in _ENTERPRISE_STRINGS and isinstance(item, str):
            found[key] = item
        else:
            return None
    return _ordered(found, DUMP_ORDER[(ENTERPRISE_SCHEMA,)])
