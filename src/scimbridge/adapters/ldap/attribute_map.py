"""The attribute map: which LDAP entry a scimbridge user or group becomes.

A YAML file per directory profile names the object classes, the RDN attribute, the SCIM
attribute each LDAP attribute takes its values from, fixed extra attributes, how suspension
shows, and how passwords are written. The maps shipped in ``profiles/`` are the defaults;
``config/ldap-<profile>.yaml`` (or the file ``ldap.mapping_file`` names) replaces them.

SCIM paths: ``userName``, ``name.givenName``, ``emails.value`` (every value, the primary
first), ``emails[primary].value`` (the primary value, else the first),
``urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber``. A list of
paths names alternatives: the first path with a value wins.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any
from typing import Literal

import yaml
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic import field_validator
from pydantic import model_validator

from .errors import MappingError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSource(_Strict):
    """Where an LDAP attribute's values come from."""

    paths: tuple[str, ...] = Field(alias="from")
    """SCIM paths tried in order; the first with a value gives the values."""

    transform: Literal["before_at", "lower", "sam_account_name"] | None = None
    """``before_at``: keep what precedes ``@``; ``lower``: lower-case; ``sam_account_name``:
    an Active Directory logon name by the map's ``sam_account_name`` policy (what precedes
    ``@``, forbidden characters replaced, at most 20 characters, built-in names avoided)."""

    resolve: Literal["user_dn"] | None = None
    """``user_dn``: the values are user ids (``manager.value``), written as the DNs of those
    users' entries; an id without an entry gives no value."""

    max_length: int | None = Field(default=None, ge=1)
    """Cut values to this many characters (sAMAccountName holds 20)."""

    @field_validator("paths", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


def _source(value: Any) -> Any:
    """Accept ``path``, ``[path, …]`` or ``{from: …, transform: …}`` for a source."""
    if isinstance(value, str | list):
        return {"from": value}
    return value


class Suspension(_Strict):
    """How a suspended user shows in the directory: a value of one attribute."""

    attribute: str
    suspended: str
    """The attribute's value while the user is suspended."""

    active: str | None = None
    """Its value otherwise; None removes the attribute."""

    bit: int | None = Field(default=None, ge=1)
    """When set, the attribute is a set of flags (``userAccountControl``) and only this bit
    (``2``, ACCOUNTDISABLE) is scimbridge's: ``suspended`` and ``active`` are the values of
    a new entry, an existing entry gets only the bit flipped (read, modify, write), and
    reconcile compares only the bit. Flags an administrator set stay."""

    until_password: bool = False
    """Keep the account suspended until the directory holds a password for it (Active
    Directory's own tools create accounts disabled until a password is set)."""


class PasswordSync(_Strict):
    """How passwords are written to the directory."""

    attribute: str = "userPassword"
    scheme: Literal["ARGON2", "AD_UNICODEPWD"] = "ARGON2"
    """``ARGON2``: the argon2id hash scimbridge stores, as ``{ARGON2}$argon2id$…`` (OpenLDAP's
    argon2 module verifies it); the clear password never leaves the request that set it.
    ``AD_UNICODEPWD``: Active Directory's ``unicodePwd``, which takes only the clear password
    over TLS: written when a password is set, never kept (see the README's "Passwords in
    Active Directory")."""

    @property
    def clear(self) -> bool:
        """Whether the directory needs the clear password (written when it is set)."""
        return self.scheme == "AD_UNICODEPWD"


_BUILT_IN_NAMES = (
    "administrator", "guest", "krbtgt", "defaultaccount", "wdagutilityaccount",
    "administrators", "users", "guests", "domain admins", "domain users", "domain guests",
    "domain computers", "domain controllers", "enterprise admins", "schema admins",
    "account operators", "server operators", "print operators", "backup operators",
    "replicator", "cert publishers", "dnsadmins", "dnsupdateproxy", "ras and ias servers",
    "remote desktop users", "network configuration operators", "cryptographic operators",
    "event log readers", "distributed com users", "performance log users",
    "performance monitor users", "iis_iusrs", "protected users", "cloneable domain controllers",
    "read-only domain controllers", "key admins", "enterprise key admins",
)  # fmt: skip


class SamAccountNamePolicy(_Strict):
    r"""How the ``sam_account_name`` transform turns a value into a logon name.

    What precedes ``@`` is kept; characters Active Directory forbids (``"/\[]:;|=,+*?<>@``
    and control characters) become ``replacement``; leading and trailing spaces and dots go.
    A name longer than ``max_length``, or equal to a built-in account's name (case ignored),
    is cut and given ``-`` and a suffix of ``suffix_length`` characters drawn from a hash of
    the whole value: the same value always gives the same name, two values sharing their
    first 20 characters give two names.
    """

    max_length: int = Field(default=20, ge=8)
    replacement: str = Field(default="_", max_length=1)
    suffix_length: int = Field(default=5, ge=3, le=10)
    reserved: tuple[str, ...] = _BUILT_IN_NAMES
    """Names never written as such (compared ignoring case)."""


class _EntryMap(_Strict):
    object_classes: tuple[str, ...]
    rdn: str
    """The naming attribute; it must be one of ``attributes``."""

    attributes: dict[str, ValueSource]
    static: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Attributes with fixed values, written on every entry."""

    @field_validator("attributes", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: _source(source) for name, source in value.items()}
        return value

    @field_validator("static", mode="before")
    @classmethod
    def _static_values(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                name: [str(item) for item in (items if isinstance(items, list) else [items])]
                for name, items in value.items()
            }
        return value

    @model_validator(mode="after")
    def _rdn_is_mapped(self) -> _EntryMap:
        names = [name.lower() for name in (*self.attributes, *self.static)]
        if len(names) != len(set(names)):
            raise ValueError("an attribute is named twice (names are case-insensitive)")
        if self.rdn.lower() not in {name.lower() for name in self.attributes}:
            raise ValueError(f"the RDN attribute {self.rdn!r} must be one of attributes")
        return self


class UserMap(_EntryMap):
    """How a user becomes an entry under ``users_dn``."""

    suspension: Suspension | None = None
    password: PasswordSync | None = None


class GroupMap(_EntryMap):
    """How a group becomes an entry under ``groups_dn``."""

    member_attribute: str = "member"
    """Attribute holding the DNs of the members (users and nested groups)."""

    empty_member: str | None = None
    """DN written as the only member of an empty group, for object classes that need one
    (groupOfNames); never reported as a member. Give OpenLDAP's refint overlay the same DN
    (``olcRefintNothing``)."""


def _default_containers() -> dict[str, tuple[str, ...]]:
    return {"ou": ("organizationalUnit",)}


class AttributeMap(_Strict):
    """The whole map of one directory profile."""

    users: UserMap
    groups: GroupMap
    containers: dict[str, tuple[str, ...]] = Field(default_factory=_default_containers)
    """Object classes of a missing container scimbridge creates, by its RDN attribute."""
    sam_account_name: SamAccountNamePolicy = Field(default_factory=SamAccountNamePolicy)
    """The rule of the ``sam_account_name`` transform."""


def _shipped(profile: str) -> str:
    return resources.files(__package__).joinpath("profiles", f"{profile}.yaml").read_text()


def parse_attribute_map(text: str, source: str) -> AttributeMap:
    """Validate a map from YAML text; ``source`` names it in errors."""
    try:
        return AttributeMap.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise MappingError(f"invalid LDAP attribute map {source}: {exc}") from None


def load_attribute_map(profile: str, path: Path | None = None) -> AttributeMap:
    """Return the attribute map of a profile.

    From ``path``; else from ``config/ldap-<profile>.yaml`` if it exists; else the map shipped
    with scimbridge.
    """
    if path is None:
        local = Path("config") / f"ldap-{profile}.yaml"
        path = local if local.is_file() else None
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise MappingError(f"cannot read LDAP attribute map {path}: {exc}") from None
        return parse_attribute_map(text, str(path))
    return parse_attribute_map(_shipped(profile), f"(shipped {profile} map)")
