"""The LDAP directory adapter: attribute maps, entries, DN escaping and the connection.

Only this package imports ldap3; its errors become the exceptions of :mod:`.errors`.
"""

from __future__ import annotations

from ...settings import LdapSettings
from .attribute_map import AttributeMap
from .attribute_map import load_attribute_map
from .directory import Attributes
from .directory import LdapDirectory
from .entries import Entry
from .entries import EntryBuilder
from .entries import GroupState
from .entries import UserState
from .entries import changed_attributes
from .entries import password_digest
from .errors import ConstraintViolation
from .errors import EntryAlreadyExists
from .errors import LdapError
from .errors import LdapRefused
from .errors import LdapUnavailable
from .errors import MappingError
from .errors import NoSuchEntry
from .errors import NoSuchValue
from .errors import ObjectClassViolation
from .names import dn_key
from .names import escape_filter_value

__all__ = [
    "AttributeMap",
    "Attributes",
    "ConstraintViolation",
    "Entry",
    "EntryAlreadyExists",
    "EntryBuilder",
    "GroupState",
    "LdapDirectory",
    "LdapError",
    "LdapRefused",
    "LdapUnavailable",
    "MappingError",
    "NoSuchEntry",
    "NoSuchValue",
    "ObjectClassViolation",
    "UserState",
    "changed_attributes",
    "dn_key",
    "entry_builder",
    "escape_filter_value",
    "load_attribute_map",
    "password_digest",
]


def entry_builder(settings: LdapSettings) -> EntryBuilder:
    """Return the entry builder of the settings: their layout and attribute map."""
    if not settings.users_dn or not settings.groups_dn:
        raise MappingError("ldap.users_dn and ldap.groups_dn are required")
    attribute_map = load_attribute_map(settings.profile, settings.mapping_file)
    return EntryBuilder(attribute_map, settings.users_dn, settings.groups_dn)
