"""Directory entries computed from scimbridge's users and groups through the attribute map.

An :class:`Entry` is what the directory should hold for one resource: its DN, object classes
and every attribute the map manages (an attribute without a value is an empty list, meaning
"absent"). Members and the password are kept apart: they are written by their own rules.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .attribute_map import AttributeMap
from .attribute_map import SamAccountNamePolicy
from .attribute_map import ValueSource
from .errors import MappingError
from .names import child_dn
from .names import dn_key

_PRIMARY = "[primary]"


@dataclass(frozen=True)
class UserState:
    """What the directory mirrors of a user."""

    id: str
    doc: dict[str, Any]
    """The stored SCIM document (camelCase keys, extensions under their schema URN)."""
    suspended: bool
    password_hash: str | None
    """scimbridge's argon2id hash, or None when the user has no local password."""
    directory_password: bool = True
    """Whether the directory holds a password for the user (Active Directory: one was
    written); a map with ``until_password`` keeps the account disabled until then."""


UserDns = Callable[[str], str | None]
"""Returns the DN of a user's entry by user id, or None (for ``resolve: user_dn``)."""


@dataclass(frozen=True)
class GroupState:
    """What the directory mirrors of a group (its members are handled apart)."""

    id: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """The entry one user or group should be."""

    dn: str
    dn_key: str
    """The DN's comparison form (:func:`.names.dn_key`)."""
    rdn_attribute: str
    rdn_value: str
    object_classes: tuple[str, ...]
    attributes: dict[str, list[str]]
    """Every managed attribute (not members, not the password); ``[]`` means absent."""
    password: str | None = None
    """Value of the password attribute, when passwords are written and the user has one."""

    def present_attributes(self) -> dict[str, list[str]]:
        """Return the attributes that have values (what an add sends)."""
        return {name: values for name, values in self.attributes.items() if values}


def password_digest(value: str | None) -> str | None:
    """Return a fingerprint of a written password value, to notice changes without keeping it."""
    return hashlib.sha256(value.encode()).hexdigest() if value is not None else None


def changed_attributes(
    before: Mapping[str, Sequence[str]],
    after: Mapping[str, Sequence[str]],
    dn_valued: frozenset[str] = frozenset(),
) -> dict[str, list[str]]:
    """Return the attributes of ``after`` whose values differ from ``before``.

    That is what a modify must replace. Names compare case-insensitively, values as sets;
    values of the attributes named (lower-case) in ``dn_valued`` compare as DNs (a directory
    may answer ``CN=…`` for a ``cn=…`` it was given).
    """
    previous = {name.lower(): sorted(values) for name, values in before.items()}
    changed: dict[str, list[str]] = {}
    for name, values in after.items():
        old = previous.get(name.lower(), [])
        if name.lower() in dn_valued:
            differs = sorted(dn_key(value) for value in old) != sorted(
                dn_key(value) for value in values
            )
        else:
            differs = old != sorted(values)
        if differs:
            changed[name] = list(values)
    return changed


def _get(node: dict[str, Any], name: str) -> Any:
    if name in node:
        return node[name]
    lowered = name.lower()
    return next((value for key, value in node.items() if key.lower() == lowered), None)


def _primary_first(items: list[Any], primary_only: bool) -> list[Any]:
    ordered = sorted(items, key=lambda item: not (isinstance(item, dict) and item.get("primary")))
    return ordered[:1] if primary_only else ordered


@lru_cache(maxsize=256)
def _parse(path: str) -> tuple[str | None, tuple[tuple[str, bool], ...]]:
    """Split a path into its extension schema (lower-cased) and (name, primary only) steps.

    ``urn:…:2.0:User:manager.value``: the schema URN ends at the last colon (a URN has dots
    of its own, attribute names have no colons).
    """
    schema = None
    rest = path
    if path[:4].lower() == "urn:":
        schema, _, rest = path.rpartition(":")
        schema = schema.lower()
    steps = tuple(
        (part.removesuffix(_PRIMARY), part.endswith(_PRIMARY)) for part in rest.split(".")
    )
    return schema, steps


def scim_values(doc: dict[str, Any], path: str, schemas: dict[str, Any] | None = None) -> list[str]:
    """Return the values a SCIM path names in a stored document, as LDAP strings.

    :param schemas: The document's keys lower-cased (extension URNs), when already known.
    """
    schema, steps = _parse(path)
    if schema is None and len(steps) == 1 and not steps[0][1]:
        # The common case, a top-level attribute (userName, title…): one lookup.
        value = _get(doc, steps[0][0])
        if value is None or isinstance(value, dict):
            return []
        if isinstance(value, list):
            items = _primary_first(value, False)
            return [_ldap_text(item) for item in items if not isinstance(item, dict | list)]
        return [_ldap_text(value)]
    node: Any = doc
    if schema is not None:
        if schemas is None:
            schemas = {key.lower(): value for key, value in doc.items()}
        node = schemas.get(schema)
        if node is None:
            return []
    current: list[Any] = [node]
    for name, primary_only in steps:
        found: list[Any] = []
        for item in current:
            value = _get(item, name) if isinstance(item, dict) else None
            if isinstance(value, list):
                found.extend(_primary_first(value, primary_only))
            elif value is not None:
                found.append(value)
        current = found
    return [_ldap_text(value) for value in current if not isinstance(value, dict | list)]


def _ldap_text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


_SAM_FORBIDDEN = re.compile(r'["/\\\[\]:;|=,+*?<>@\x00-\x1f]')


def sam_account_name(value: str, policy: SamAccountNamePolicy) -> str:
    """Return the logon name (sAMAccountName) of a value by the policy (see its docstring)."""
    name = _SAM_FORBIDDEN.sub(policy.replacement, value.split("@", 1)[0]).strip(" .")
    if not name:
        name = "user"
    if len(name) <= policy.max_length and name.lower() not in policy.reserved:
        return name
    digest = hashlib.sha256(value.lower().encode()).digest()
    suffix = base64.b32encode(digest).decode().lower()[: policy.suffix_length]
    head = name[: policy.max_length - policy.suffix_length - 1].rstrip(" .")
    return f"{head}-{suffix}"


def _values(
    doc: dict[str, Any],
    source: ValueSource,
    schemas: dict[str, Any],
    sam_policy: SamAccountNamePolicy | None = None,
    user_dns: UserDns | None = None,
) -> list[str]:
    for path in source.paths:
        values = [value for value in scim_values(doc, path, schemas) if value.strip()]
        if values:
            break
    else:
        return []
    if source.transform == "before_at":
        values = [value.split("@", 1)[0] for value in values]
    elif source.transform == "lower":
        values = [value.lower() for value in values]
    elif source.transform == "sam_account_name" and sam_policy is not None:
        values = [sam_account_name(value, sam_policy) for value in values]
    if source.resolve == "user_dn":
        found = [user_dns(value) if user_dns is not None else None for value in values]
        values = [dn for dn in found if dn]
        if not values:
            return []
    if source.max_length is not None:
        values = [value[: source.max_length] for value in values]
    if len(values) == 1:
        return values
    # A directory refuses an entry that repeats a value; most attributes compare ignoring case.
    unique: dict[str, str] = {}
    for value in values:
        unique.setdefault(value.lower(), value)
    return list(unique.values())


class EntryBuilder:
    """Computes entries, DNs and attribute lists for one directory layout."""

    def __init__(self, attribute_map: AttributeMap, users_dn: str, groups_dn: str) -> None:
        self.map = attribute_map
        self.users_dn = users_dn
        self.groups_dn = groups_dn
        self._parent_keys = {users_dn: dn_key(users_dn), groups_dn: dn_key(groups_dn)}

    @property
    def member_attribute(self) -> str:
        """The attribute holding a group's member DNs."""
        return self.map.groups.member_attribute

    @property
    def placeholder(self) -> str | None:
        """The DN an empty group holds as its only member, if the map needs one."""
        return self.map.groups.empty_member

    @property
    def password_attribute(self) -> str | None:
        """The attribute password hashes are written to with the entry, or None.

        None also when the directory takes clear passwords (:attr:`clear_passwords`): those
        are written apart, when a password is set.
        """
        password = self.map.users.password
        return password.attribute if password and not password.clear else None

    @property
    def clear_passwords(self) -> bool:
        """Whether the directory takes clear passwords (Active Directory's ``unicodePwd``)."""
        password = self.map.users.password
        return password is not None and password.clear

    @property
    def dn_valued(self) -> frozenset[str]:
        """Lower-case names of the user attributes holding DNs (compared as DNs)."""
        return frozenset(
            name.lower() for name, source in self.map.users.attributes.items() if source.resolve
        )

    @property
    def resolves_user_dns(self) -> bool:
        """Whether a user entry names other users' entries (``resolve: user_dn``, manager)."""
        return any(source.resolve for source in self.map.users.attributes.values())

    def user_attribute_names(self) -> list[str]:
        """Names of the attributes a user entry's comparison reads (not the password)."""
        names = [*self.map.users.attributes, *self.map.users.static]
        if self.map.users.suspension is not None:
            names.append(self.map.users.suspension.attribute)
        return names

    def group_attribute_names(self) -> list[str]:
        """Names of the attributes a group entry's comparison reads (not the members)."""
        return [*self.map.groups.attributes, *self.map.groups.static]

    def user_entry(self, user: UserState, user_dns: UserDns | None = None) -> Entry:
        """Return the entry a user should be; ``user_dns`` gives the DNs a manager resolves to.

        Without ``user_dns``, attributes that name other users' entries are left empty.
        """
        users = self.map.users
        schemas = {key.lower(): value for key, value in user.doc.items()}
        policy = self.map.sam_account_name
        attributes = {
            name: _values(user.doc, source, schemas, policy, user_dns)
            for name, source in users.attributes.items()
        }
        attributes.update({name: list(values) for name, values in users.static.items()})
        suspension = users.suspension
        if suspension is not None:
            disabled = user.suspended or (suspension.until_password and not user.directory_password)
            value = suspension.suspended if disabled else suspension.active
            attributes[suspension.attribute] = [value] if value is not None else []
        password = None
        if users.password is not None and not users.password.clear and user.password_hash:
            # Only an argon2 hash can be written as {ARGON2}; nothing else is ever stored.
            if user.password_hash.startswith("$argon2"):
                password = "{ARGON2}" + user.password_hash
        return self._entry("user", user.id, self.users_dn, users.rdn, users, attributes, password)

    def group_entry(self, group: GroupState) -> Entry:
        """Return the entry a group should be (without its members)."""
        groups = self.map.groups
        schemas = {key.lower(): value for key, value in group.doc.items()}
        policy = self.map.sam_account_name
        attributes = {
            name: _values(group.doc, source, schemas, policy)
            for name, source in groups.attributes.items()
        }
        attributes.update({name: list(values) for name, values in groups.static.items()})
        return self._entry("group", group.id, self.groups_dn, groups.rdn, groups, attributes, None)

    def _entry(
        self,
        kind: str,
        resource_id: str,
        parent: str,
        rdn_attribute: str,
        entry_map: Any,
        attributes: dict[str, list[str]],
        password: str | None,
    ) -> Entry:
        rdn_name = next(name for name in attributes if name.lower() == rdn_attribute.lower())
        rdn_values = attributes[rdn_name]
        if not rdn_values:
            raise MappingError(f"{kind} {resource_id} has no value for the RDN {rdn_attribute}")
        # A multi-valued naming attribute names the entry by its first value.
        rdn_value = rdn_values[0]
        return Entry(
            dn=child_dn(rdn_name, rdn_value, parent),
            dn_key=child_dn(rdn_name.lower(), rdn_value.lower(), self._parent_keys[parent]),
            rdn_attribute=rdn_name,
            rdn_value=rdn_value,
            object_classes=tuple(entry_map.object_classes),
            attributes=attributes,
            password=password,
        )
