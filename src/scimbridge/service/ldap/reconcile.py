"""Compare the whole store with the directory, report every difference, and repair them.

The store is the truth. Every user and group gives the entry it should be (attribute map);
the directory is read with paged searches of ``users_dn`` and ``groups_dn`` (one level, the
entries carrying the map's object classes). Differences:

- ``missing``: an entry the store needs and the directory lacks: added.
- ``moved``: the entry of a resource sits at the DN scimbridge last wrote, not at the one it
  should have now (a rename still queued, or undone by hand): renamed, then corrected.
- ``extra``: an entry of scimbridge's object classes that no user or group gives: deleted.
- ``changed``: managed attributes that differ (object classes, password included when the
  bind DN can read it): replaced.
- ``members``: member values that differ (the empty-group placeholder counts only where it
  is wrong): added and deleted.

Afterwards the record of what was written (``ldap_entries``) is rewritten from the result,
so later jobs compare with the truth. Jobs still queued when reconcile runs may show up as
differences; they apply idempotently afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from functools import partial

from ...adapters.ldap import Attributes
from ...adapters.ldap import Entry
from ...adapters.ldap import EntryBuilder
from ...adapters.ldap import LdapDirectory
from ...adapters.ldap import MappingError
from ...adapters.ldap import NoSuchValue
from ...adapters.ldap import changed_attributes
from ...adapters.ldap import dn_key
from ...adapters.ldap import password_digest
from ...store import ldap_entries as ldap_store
from ...store.database import Database
from ...store.ldap_entries import WrittenEntry
from .apply import flags_after
from .apply import group_state
from .apply import user_state
from .passwords import DIRECTORY_HAS_PASSWORD

_SHOWN_MEMBERS = 5


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Difference:
    """One way the directory differs from the store."""

    kind: str
    """``missing``, ``moved``, ``extra``, ``changed``, ``members`` or ``unmappable``."""
    resource_type: str
    dn: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.kind} {self.resource_type.lower()} {self.dn}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class ReconcileReport:
    """What reconcile found, and whether it repaired it."""

    differences: list[Difference] = field(default_factory=list)
    entries_compared: int = 0
    repaired: bool = False

    def counts(self) -> dict[str, int]:
        """Return the number of differences of each kind."""
        counts: dict[str, int] = {}
        for difference in self.differences:
            counts[difference.kind] = counts.get(difference.kind, 0) + 1
        return counts


@dataclass
class _Expected:
    resource_type: str
    resource_id: str
    entry: Entry
    members: dict[str, str] | None = None
    """For groups: member DN key → member DN."""


@dataclass
class _Found:
    dn: str
    attributes: Attributes


def _classes_filter(object_classes: Iterable[str]) -> str:
    terms = "".join(f"(objectClass={name})" for name in object_classes if name.lower() != "top")
    return f"(&{terms})" if terms else "(objectClass=*)"


class LdapReconciler:
    """Compares and repairs one directory against the store."""

    def __init__(
        self,
        database: Database,
        directory: LdapDirectory,
        builder: EntryBuilder,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.database = database
        self.directory = directory
        self.builder = builder
        self.clock = clock
        self._has_password: dict[str, bool] = {}
        """Users whose Active Directory entry has a password (``pwdLastSet`` set)."""

    def run(self, *, dry_run: bool) -> ReconcileReport:
        """Compare everything; repair the differences unless ``dry_run``."""
        report = ReconcileReport()
        found_users = self._found(
            self.builder.users_dn,
            self.builder.map.users.object_classes,
            self._user_attribute_names(),
        )
        expected = self._expected(report, found_users)
        found_groups = self._found(
            self.builder.groups_dn,
            self.builder.map.groups.object_classes,
            [*self.builder.group_attribute_names(), self.builder.member_attribute],
        )
        with self.database.read() as conn:
            recorded = {
                (row.resource_type, row.resource_id): row.dn for row in ldap_store.all_written(conn)
            }
        fixes = _Fixes()
        self._compare(expected, {**found_users, **found_groups}, recorded, report, fixes)
        report.entries_compared = len(expected) + len(found_users) + len(found_groups)
        if not dry_run:
            self.directory.ensure_entries(self.builder.users_dn, self.builder.map.containers)
            self.directory.ensure_entries(self.builder.groups_dn, self.builder.map.containers)
            fixes.apply()
            self._rewrite_records(expected)
            report.repaired = True
        return report

    # -- what should be -------------------------------------------------------------------------

    def _expected(
        self, report: ReconcileReport, found_users: dict[str, _Found]
    ) -> dict[str, _Expected]:
        expected: dict[str, _Expected] = {}
        dns: dict[str, str] = {}
        with self.database.read() as conn:
            users = list(ldap_store.all_users(conn))
            groups = list(ldap_store.all_groups(conn))
            memberships = ldap_store.all_memberships(conn)
        for user in users:
            self._expect(
                expected,
                dns,
                report,
                "User",
                user.id,
                partial(self.builder.user_entry, user_state(user)),
            )
        if self.builder.clear_passwords or self.builder.resolves_user_dns:
            # Second pass: managers resolve to the DNs of the first; an Active Directory
            # account may be enabled only when its entry has a password (pwdLastSet set).
            keys = {item.resource_id: key for key, item in expected.items()}
            for user in users:
                key = keys.get(user.id)
                if key is None:
                    continue
                found = _lower_keys(found_users[key].attributes) if key in found_users else {}
                has_password = found.get("pwdlastset", ["0"])[0] not in ("0", "")
                self._has_password[user.id] = has_password
                entry = self.builder.user_entry(user_state(user, has_password), dns.get)
                expected[key] = _Expected("User", user.id, entry)
        group_ids: dict[int, str] = {}
        for group in groups:
            group_ids[group.pk] = group.id
            self._expect(
                expected,
                dns,
                report,
                "Group",
                group.id,
                partial(self.builder.group_entry, group_state(group)),
            )
        for item in expected.values():
            if item.resource_type == "Group":
                item.members = {}
        by_id = {item.resource_id: item for item in expected.values()}
        for group_pk, member_id, _kind in memberships:
            holder = by_id.get(group_ids.get(group_pk, ""))
            member_dn = dns.get(member_id)
            if holder is None or holder.members is None or member_dn is None:
                continue
            holder.members[dn_key(member_dn)] = member_dn
        return expected

    def _expect(
        self,
        expected: dict[str, _Expected],
        dns: dict[str, str],
        report: ReconcileReport,
        resource_type: str,
        resource_id: str,
        build: Callable[[], Entry],
    ) -> None:
        try:
            entry = build()
        except MappingError as exc:
            report.differences.append(
                Difference("unmappable", resource_type, resource_id, str(exc))
            )
            return
        key = dn_key(entry.dn)
        if key in expected:
            other = expected[key]
            report.differences.append(
                Difference(
                    "unmappable",
                    resource_type,
                    entry.dn,
                    f"same DN as {other.resource_type.lower()} {other.resource_id}",
                )
            )
            return
        expected[key] = _Expected(resource_type, resource_id, entry)
        dns[resource_id] = entry.dn

    # -- what is --------------------------------------------------------------------------------

    def _user_attribute_names(self) -> list[str]:
        names = self.builder.user_attribute_names()
        if self.builder.password_attribute:
            names.append(self.builder.password_attribute)
        if self.builder.clear_passwords:
            names.append("pwdLastSet")
        return [*names, "objectClass"]

    def _found(
        self, base: str, object_classes: Iterable[str], names: list[str]
    ) -> dict[str, _Found]:
        found: dict[str, _Found] = {}
        for dn, attributes in self.directory.search(
            base, _classes_filter(object_classes), [*names, "objectClass"], scope="one"
        ):
            found[dn_key(dn)] = _Found(dn, attributes)
        return found

    # -- comparing ------------------------------------------------------------------------------

    def _compare(
        self,
        expected: dict[str, _Expected],
        found: dict[str, _Found],
        recorded: dict[tuple[str, str], str],
        report: ReconcileReport,
        fixes: _Fixes,
    ) -> None:
        password_attribute = self.builder.password_attribute
        passwords_readable = password_attribute is not None and any(
            password_attribute.lower() in _lower_keys(item.attributes) for item in found.values()
        )
        moved_from: set[str] = set()
        for key, item in expected.items():
            current = found.get(key)
            if current is None:
                old_dn = recorded.get((item.resource_type, item.resource_id))
                old_key = dn_key(old_dn) if old_dn else ""
                if old_key in found and old_key not in expected:
                    moved_from.add(old_key)
                    current = found[old_key]
                    report.differences.append(
                        Difference("moved", item.resource_type, item.entry.dn, f"from {current.dn}")
                    )
                    fixes.entry(partial(self.directory.rename, current.dn, item.entry.dn))
                    current = _Found(item.entry.dn, _renamed(current.attributes, item.entry))
                else:
                    report.differences.append(
                        Difference("missing", item.resource_type, item.entry.dn)
                    )
                    fixes.entry(partial(self._add, item))
                    continue
            self._compare_entry(item, current, passwords_readable, report, fixes)
        for key, found_item in found.items():
            if key in expected or key in moved_from:
                continue
            resource_type = "Group" if self._is_group(found_item) else "User"
            report.differences.append(Difference("extra", resource_type, found_item.dn))
            fixes.delete(partial(self._delete, found_item.dn))

    def _is_group(self, item: _Found) -> bool:
        classes = {name.lower() for name in item.attributes.get("objectClass", [])}
        return all(name.lower() in classes for name in self.builder.map.groups.object_classes)

    def _compare_entry(
        self,
        item: _Expected,
        current: _Found,
        passwords_readable: bool,
        report: ReconcileReport,
        fixes: _Fixes,
    ) -> None:
        entry = item.entry
        values = _lower_keys(current.attributes)
        changes = changed_attributes(
            current.attributes,
            entry.attributes,
            self.builder.dn_valued if item.resource_type == "User" else frozenset(),
        )
        if item.resource_type == "User":
            self._only_flag_bit(values, changes)
        classes = values.get("objectclass", [])
        missing_classes = [
            name
            for name in entry.object_classes
            if name.lower() not in {c.lower() for c in classes}
        ]
        if missing_classes:
            changes["objectClass"] = [*classes, *missing_classes]
        password_attribute = self.builder.password_attribute
        if item.resource_type == "User" and password_attribute and passwords_readable:
            wanted = [entry.password] if entry.password else []
            if values.get(password_attribute.lower(), []) != wanted:
                changes[password_attribute] = wanted
        if changes:
            shown = ", ".join(sorted(changes))
            report.differences.append(Difference("changed", item.resource_type, entry.dn, shown))
            fixes.change(partial(self.directory.replace, entry.dn, changes))
        if item.members is not None:
            self._compare_members(item, values, report, fixes)

    def _compare_members(
        self, item: _Expected, values: dict[str, list[str]], report: ReconcileReport, fixes: _Fixes
    ) -> None:
        assert item.members is not None
        present = {dn_key(dn): dn for dn in values.get(self.builder.member_attribute.lower(), [])}
        placeholder = self.builder.placeholder
        placeholder_key = dn_key(placeholder) if placeholder else None
        wanted = dict(item.members)
        if placeholder and placeholder_key and not wanted:
            wanted[placeholder_key] = placeholder
        to_add = [dn for key, dn in wanted.items() if key not in present]
        to_delete = [dn for key, dn in present.items() if key not in wanted]
        if not to_add and not to_delete:
            return
        detail = _members_detail(to_add, to_delete)
        report.differences.append(Difference("members", item.resource_type, item.entry.dn, detail))
        fixes.members(partial(self._fix_members, item, to_add, to_delete))

    def _only_flag_bit(self, values: dict[str, list[str]], changes: dict[str, list[str]]) -> None:
        """Compare a flags attribute (userAccountControl) by its suspension bit alone."""
        suspension = self.builder.map.users.suspension
        if suspension is None or suspension.bit is None:
            return
        name = next((n for n in changes if n.lower() == suspension.attribute.lower()), None)
        found = values.get(suspension.attribute.lower(), [])
        if name is None or not found or not changes[name]:
            return
        before = int(found[0])
        after = flags_after(before, suspension.bit, int(changes[name][0]))
        if after == before:
            del changes[name]
        else:
            changes[name] = [str(after)]

    # -- repairing ------------------------------------------------------------------------------

    def _add(self, item: _Expected) -> None:
        entry = item.entry
        attributes = entry.present_attributes()
        if item.resource_type == "User" and entry.password and self.builder.password_attribute:
            attributes[self.builder.password_attribute] = [entry.password]
        if item.members is not None:
            members = list(item.members.values())
            if not members and self.builder.placeholder:
                members = [self.builder.placeholder]
            if members:
                attributes[self.builder.member_attribute] = members
        self.directory.add(entry.dn, entry.object_classes, attributes)

    def _fix_members(self, item: _Expected, to_add: list[str], to_delete: list[str]) -> None:
        attribute = self.builder.member_attribute
        try:
            self.directory.change_values(item.entry.dn, attribute, to_add, to_delete)
        except NoSuchValue:
            # refint changed the group meanwhile (after a rename or delete): compare again.
            current = self.directory.read(item.entry.dn, [attribute]) or {}
            report = ReconcileReport()
            fixes = _Fixes()
            self._compare_members(item, _lower_keys(current), report, fixes)
            fixes.apply()

    def _delete(self, dn: str) -> None:
        self.directory.delete(dn)

    def _rewrite_records(self, expected: dict[str, _Expected]) -> None:
        now = self.clock()
        entries = [
            WrittenEntry(
                item.resource_type,
                item.resource_id,
                item.entry.dn,
                key,
                item.entry.attributes,
                self._digest(item),
                item.members is not None
                and not item.members
                and self.builder.placeholder is not None,
                0,
                None,
            )
            for key, item in expected.items()
        ]
        with self.database.write() as conn:
            ldap_store.forget_all(conn)
            ldap_store.write_entries(conn, entries, [], now)

    def _digest(self, item: _Expected) -> str | None:
        """Return the password fact a user's record keeps (None for groups)."""
        if item.resource_type != "User":
            return None
        if self.builder.clear_passwords:
            return DIRECTORY_HAS_PASSWORD if self._has_password.get(item.resource_id) else None
        return password_digest(item.entry.password)


class _Fixes:
    """Repairs in a safe order: entries first, then values, members, and deletes last."""

    def __init__(self) -> None:
        self._entries: list[Callable[[], None]] = []
        self._changes: list[Callable[[], None]] = []
        self._members: list[Callable[[], None]] = []
        self._deletes: list[Callable[[], None]] = []

    def entry(self, fix: Callable[[], None]) -> None:
        self._entries.append(fix)

    def change(self, fix: Callable[[], None]) -> None:
        self._changes.append(fix)

    def members(self, fix: Callable[[], None]) -> None:
        self._members.append(fix)

    def delete(self, fix: Callable[[], None]) -> None:
        self._deletes.append(fix)

    def apply(self) -> None:
        for fix in [*self._entries, *self._changes, *self._members, *self._deletes]:
            fix()


def _lower_keys(attributes: Attributes) -> dict[str, list[str]]:
    return {name.lower(): values for name, values in attributes.items()}


def _renamed(attributes: Attributes, entry: Entry) -> Attributes:
    """Return an entry's attributes as they are after a rename to ``entry``'s RDN."""
    renamed = {
        name: values
        for name, values in attributes.items()
        if name.lower() != entry.rdn_attribute.lower()
    }
    renamed[entry.rdn_attribute] = [entry.rdn_value]
    return renamed


def _members_detail(to_add: list[str], to_delete: list[str]) -> str:
    parts = [f"+{dn}" for dn in to_add[:_SHOWN_MEMBERS]]
    parts += [f"-{dn}" for dn in to_delete[:_SHOWN_MEMBERS]]
    hidden = max(0, len(to_add) - _SHOWN_MEMBERS) + max(0, len(to_delete) - _SHOWN_MEMBERS)
    if hidden:
        parts.append(f"and {hidden} more")
    return " ".join(parts)
