"""Apply ``ldap`` jobs: make directory entries match what the store holds.

A user or group job reads the resource as it is now and compares it with what was last
written (``ldap_entries``), not with the entry: only changed attributes are modified, an
entry whose RDN value changed is renamed, an entry whose resource is gone is deleted. When
nothing was written yet the entry is added; if it exists already (a replayed job, an entry
made by hand, a name taken over from a deleted user) it is read once and corrected.

Member jobs add and delete only the member values they name, without reading the group. A
group that becomes empty gets the placeholder member its object class needs; a group that
gets members loses it. A delete that finds a value missing (a replay) falls back to reading
the group's members once and writing the exact difference.

The record of what was written is a cache, never the truth: a lost record costs one read of
the entry, not a wrong directory. That lets a batch of jobs share one read of the store and
commit its records with the jobs' outcomes, in one transaction.

Failures: an unreachable directory gives :class:`UnavailableJobError` (the job waits, it is
never parked); a refusal (schema violation, insufficient rights…) gives
:class:`PermanentJobError` with the server's message, and the job is parked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from typing import Any

from ..adapters.ldap import Entry
from ..adapters.ldap import EntryAlreadyExists
from ..adapters.ldap import EntryBuilder
from ..adapters.ldap import GroupState
from ..adapters.ldap import LdapDirectory
from ..adapters.ldap import LdapRefused
from ..adapters.ldap import LdapUnavailable
from ..adapters.ldap import MappingError
from ..adapters.ldap import NoSuchEntry
from ..adapters.ldap import NoSuchValue
from ..adapters.ldap import ObjectClassViolation
from ..adapters.ldap import UserState
from ..adapters.ldap import changed_attributes
from ..adapters.ldap import dn_key
from ..adapters.ldap import escape_filter_value
from ..adapters.ldap import password_digest
from ..adapters.ldap.names import first_rdn
from ..domain.lifecycle import UserStatus
from ..store import ldap_entries as ldap_store
from ..store.database import Database
from ..store.database import Transaction
from ..store.jobs import Job
from ..store.ldap_entries import GroupRow
from ..store.ldap_entries import UserRow
from ..store.ldap_entries import WrittenEntry
from ..store.resources import resource_types_of
from .ldap_sync import LDAP_JOB
from .ldap_sync import group_key
from .outbox import BatchResult
from .outbox import JobResult
from .outbox import PermanentJobError
from .outbox import TransientJobError
from .outbox import UnavailableJobError

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def user_state(row: UserRow) -> UserState:
    """Return what the directory mirrors of a stored user."""
    return UserState(row.id, row.doc, row.status == UserStatus.SUSPENDED, row.password_hash)


def group_state(row: GroupRow) -> GroupState:
    """Return what the directory mirrors of a stored group."""
    return GroupState(row.id, row.doc)


class _Batch:
    """The store as one batch sees it: rows read up front, and the records it wrote.

    Records are written by :meth:`persist`, which the worker runs in the transaction that
    settles the jobs; until then, reads of the records see the batch's own writes first.
    """

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self.database = database
        self.clock = clock
        self.users: dict[str, UserRow | None] = {}
        self.groups: dict[str, GroupRow | None] = {}
        self.written: dict[str, WrittenEntry | None] = {}
        self._holders: dict[str, str] = {}
        """DN key → id of the resource whose record names it, for records read or written."""
        self.touched: dict[str, None] = {}
        """Ids whose record this batch changed (or dropped, when ``written`` says None)."""

    def prefetch(self, jobs: Sequence[Job]) -> None:
        """Read the rows and records the jobs name, with one query of each kind."""
        # A malformed payload is left to its job, which fails on its own.
        user_ids: list[str] = []
        wanted_groups: list[str] = []
        for job in jobs:
            operation = job.payload.get("op")
            resource_id = job.payload.get("group" if operation == "members" else "id")
            if isinstance(resource_id, str):
                (user_ids if operation == "user" else wanted_groups).append(resource_id)
        with self.database.read() as conn:
            users = ldap_store.user_rows(conn, user_ids)
            groups = ldap_store.group_rows(conn, wanted_groups)
            written = ldap_store.written_entries(conn, [*user_ids, *wanted_groups])
        self.users.update({user_id: users.get(user_id) for user_id in user_ids})
        self.groups.update({group_id: groups.get(group_id) for group_id in wanted_groups})
        for resource_id in [*user_ids, *wanted_groups]:
            self._remember(resource_id, written.get(resource_id))

    def _remember(self, resource_id: str, entry: WrittenEntry | None) -> None:
        self.written[resource_id] = entry
        if entry is not None:
            self._holders[entry.dn_key] = resource_id

    def user(self, user_id: str) -> UserRow | None:
        if user_id not in self.users:
            with self.database.read() as conn:
                self.users[user_id] = ldap_store.user_row(conn, user_id)
        return self.users[user_id]

    def group(self, group_id: str) -> GroupRow | None:
        if group_id not in self.groups:
            with self.database.read() as conn:
                self.groups[group_id] = ldap_store.group_row(conn, group_id)
        return self.groups[group_id]

    def written_entry(self, resource_id: str) -> WrittenEntry | None:
        if resource_id not in self.written:
            with self.database.read() as conn:
                found = ldap_store.written_entries(conn, [resource_id])
            self._remember(resource_id, found.get(resource_id))
        return self.written[resource_id]

    def written_dns(self, resource_ids: Iterable[str]) -> dict[str, str]:
        wanted = list(resource_ids)
        unknown = [resource_id for resource_id in wanted if resource_id not in self.written]
        dns: dict[str, str] = {}
        if unknown:
            with self.database.read() as conn:
                dns = ldap_store.written_dns(conn, unknown)
        for resource_id in wanted:
            if resource_id in self.written:
                entry = self.written[resource_id]
                if entry is not None:
                    dns[resource_id] = entry.dn
        return dns

    def record(
        self,
        resource_type: str,
        resource_id: str,
        entry: Entry,
        digest: str | None,
        *,
        placeholder: bool | None,
        as_of: int | None,
    ) -> None:
        """Note the entry just written for a resource (None keeps a group's member facts)."""
        kept = self.written_entry(resource_id)
        key = entry.dn_key
        holder = self._holders.get(key)
        if holder is not None and holder != resource_id:
            # The entry is this resource's now: the other record no longer names it.
            self.written[holder] = None
            self.touched[holder] = None
        self.written[resource_id] = WrittenEntry(
            resource_type,
            resource_id,
            entry.dn,
            key,
            entry.attributes,
            digest,
            placeholder if placeholder is not None else bool(kept and kept.placeholder),
            as_of if as_of is not None else (kept.members_as_of if kept else 0),
            self.clock() if as_of is not None else (kept.members_written if kept else None),
        )
        self._holders[key] = resource_id
        self.touched[resource_id] = None

    def forget(self, resource_id: str) -> None:
        """Note that a resource's entry was deleted."""
        self.written[resource_id] = None
        self.touched[resource_id] = None

    def set_placeholder(self, group_dn: str, placeholder: bool) -> None:
        """Note whether a group's entry (by DN) holds the placeholder member now."""
        key = dn_key(group_dn)
        holder_id = self._holders.get(key)
        holder = self.written.get(holder_id) if holder_id else None
        if holder is None:
            with self.database.read() as conn:
                holder = ldap_store.written_by_dn_key(conn, key)
        if holder is not None and holder.placeholder != placeholder:
            self._remember(holder.resource_id, replace(holder, placeholder=placeholder))
            self.touched[holder.resource_id] = None

    def persist(self, conn: Transaction) -> None:
        """Write the batch's records in the caller's transaction."""
        entries = [self.written[i] for i in self.touched if self.written.get(i) is not None]
        forgotten = [i for i in self.touched if self.written.get(i) is None]
        ldap_store.write_entries(
            conn, [entry for entry in entries if entry is not None], forgotten, self.clock()
        )


class LdapSyncHandler:
    """The outbox handler of ``ldap`` jobs (one per worker thread: it holds a connection)."""

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
        self._containers_ready = False
        self._batch = _Batch(database, clock)
        # The last rename sent, by resource id. A rename whose answer was lost with the
        # connection, or whose record was not committed, may still have been applied: a later
        # job then finds the entry under this name rather than under the recorded one.
        self._unconfirmed_renames: dict[str, str] = {}

    def close(self) -> None:
        """Close the connection to the directory (the next job opens a new one)."""
        self.directory.close()

    # -- the outbox's entry points ----------------------------------------------------------------

    def __call__(self, job: Job) -> dict[str, Any] | None:
        """Apply one job on its own, committing its records at once."""
        batch = self.apply_batch([job], lambda: False)
        if batch.persist is not None:
            with self.database.write() as conn:
                batch.persist(conn)
        error = batch.results[0].error
        if error is not None:
            raise error
        return None

    def apply_batch(self, jobs: Sequence[Job], must_stop: Callable[[], bool]) -> BatchResult:
        """Apply jobs in order; stop at the first sign that the directory is unavailable."""
        self._batch = _Batch(self.database, self.clock)
        self._batch.prefetch(jobs)
        results: list[JobResult] = []
        stopped = False
        for job in jobs:
            if stopped or must_stop():
                results.append(JobResult(started=False))
                continue
            result = self._apply_one(job)
            stopped = isinstance(result.error, UnavailableJobError)
            results.append(result)
        return BatchResult(results, self._batch.persist if self._batch.touched else None)

    def _apply_one(self, job: Job) -> JobResult:
        payload = job.payload
        try:
            self._ensure_containers()
            operation = payload.get("op")
            if operation == "user":
                self.sync_user(payload["id"])
            elif operation == "group":
                self.sync_group(payload["id"])
            elif operation == "members":
                self.change_members(
                    payload["group"], payload.get("add", []), payload.get("remove", []), job
                )
            else:
                raise PermanentJobError(f"unknown ldap job {operation!r}")
        except LdapUnavailable as exc:
            return JobResult(error=UnavailableJobError(str(exc)))
        except (LdapRefused, MappingError) as exc:
            return JobResult(error=PermanentJobError(f"the directory refused it: {exc}"))
        except (TransientJobError, PermanentJobError) as exc:
            return JobResult(error=exc)
        except Exception as exc:
            logger.exception("ldap job %d raised an unexpected error", job.pk)
            return JobResult(error=exc)
        return JobResult()

    # -- users and groups ---------------------------------------------------------------------

    def sync_user(self, user_id: str) -> None:
        """Make a user's entry match the store, whatever happened since the last write."""
        row = self._batch.user(user_id)
        written = self._batch.written_entry(user_id)
        if row is None:
            if written is not None:
                self._remove(written)
            return
        self._put("User", user_id, self.builder.user_entry(user_state(row)), written)

    def sync_group(self, group_id: str) -> None:
        """Make a group's entry match the store; a new entry gets every current member."""
        row = self._batch.group(group_id)
        written = self._batch.written_entry(group_id)
        if row is None:
            if written is not None:
                self._remove(written)
            return
        self._put("Group", group_id, self.builder.group_entry(group_state(row)), written, row)

    def _put(
        self,
        resource_type: str,
        resource_id: str,
        entry: Entry,
        written: WrittenEntry | None,
        group: GroupRow | None = None,
    ) -> None:
        if written is None:
            self._create(resource_type, resource_id, entry, group)
            return
        if self._unconfirmed_renames.get(resource_id) == written.dn:
            del self._unconfirmed_renames[resource_id]  # the record has caught up
        before = dict(written.attributes)
        renamed = written.dn != entry.dn
        if renamed:
            source = self._rename(resource_id, written.dn, entry.dn)
            if source is None:
                # Deleted behind scimbridge's back: write it anew.
                self._create(resource_type, resource_id, entry, group)
                return
            self._repoint_memberships(source, entry.dn)
            before[entry.rdn_attribute] = _after_rename(
                before.get(entry.rdn_attribute, []), first_rdn(source)[1], entry.rdn_value
            )
        changes = changed_attributes(before, entry.attributes)
        digest = password_digest(entry.password)
        password_attribute = self.builder.password_attribute
        if password_attribute and resource_type == "User" and digest != written.password_digest:
            changes[password_attribute] = [entry.password] if entry.password else []
        if changes:
            try:
                self.directory.replace(entry.dn, changes)
            except NoSuchEntry:
                self._create(resource_type, resource_id, entry, group)
                return
        if changes or renamed:
            self._record(resource_type, resource_id, entry)

    def _rename(self, resource_id: str, recorded_dn: str, new_dn: str) -> str | None:
        """Move an entry to ``new_dn``; return the DN it was found under, None if nowhere."""
        # The name stays unconfirmed until the record says it: a batch cut short by an
        # outage commits none of its records, even for renames the directory answered.
        unconfirmed = self._unconfirmed_renames.get(resource_id)
        self._unconfirmed_renames[resource_id] = new_dn
        for source in dict.fromkeys(dn for dn in (recorded_dn, unconfirmed) if dn):
            if dn_key(source) == dn_key(new_dn):
                # An earlier attempt got there; only its answer was lost. Memberships still
                # naming the recorded DN are repointed from it.
                if self.directory.read(new_dn, ["1.1"]) is not None:
                    return recorded_dn
                continue
            try:
                self.directory.rename(source, new_dn)
            except NoSuchEntry:
                continue
            except EntryAlreadyExists:
                # Usually a deleted resource's entry whose delete is still queued.
                raise TransientJobError(
                    f"cannot rename {source} to {new_dn}: that name is taken"
                ) from None
            return source
        return None

    def _create(
        self, resource_type: str, resource_id: str, entry: Entry, group: GroupRow | None
    ) -> None:
        attributes = entry.present_attributes()
        password_attribute = self.builder.password_attribute
        if password_attribute and entry.password:
            attributes[password_attribute] = [entry.password]
        members_as_of: int | None = None
        member_dns: list[str] | None = None
        placeholder: bool | None = None
        if group is not None:
            member_dns, members_as_of = self._current_member_dns(group)
            empty_member = self.builder.placeholder
            placeholder = not member_dns and empty_member is not None
            values = member_dns or ([empty_member] if empty_member is not None else [])
            if values:
                attributes[self.builder.member_attribute] = values
        try:
            self._add(entry.dn, entry.object_classes, attributes)
        except EntryAlreadyExists:
            placeholder = self._converge(resource_type, resource_id, entry, member_dns)
        self._record(
            resource_type, resource_id, entry, placeholder=placeholder, members_as_of=members_as_of
        )

    def _converge(
        self, resource_type: str, resource_id: str, entry: Entry, member_dns: list[str] | None
    ) -> bool | None:
        """Correct an existing entry to ``entry``; return whether it holds the placeholder."""
        names = [*entry.attributes, "objectClass"]
        password_attribute = self.builder.password_attribute if resource_type == "User" else None
        if password_attribute:
            names.append(password_attribute)
        member_attribute = self.builder.member_attribute
        if member_dns is not None:
            names.append(member_attribute)
        current = self.directory.read(entry.dn, names)
        if current is None:
            raise TransientJobError(f"{entry.dn} vanished while being corrected")
        found = {name.lower(): values for name, values in current.items()}
        changes = changed_attributes(current, entry.attributes)
        classes = found.get("objectclass", [])
        missing = [oc for oc in entry.object_classes if oc.lower() not in _lower(classes)]
        if missing:
            changes["objectClass"] = [*classes, *missing]
        if password_attribute:
            wanted = [entry.password] if entry.password else []
            if found.get(password_attribute.lower(), []) != wanted:
                changes[password_attribute] = wanted
        placeholder = None
        if member_dns is not None:
            empty_member = self.builder.placeholder
            wanted_members = member_dns or ([empty_member] if empty_member else [])
            present = found.get(member_attribute.lower(), [])
            if {dn_key(dn) for dn in present} != {dn_key(dn) for dn in wanted_members}:
                changes[member_attribute] = wanted_members
            placeholder = not member_dns and empty_member is not None
        if changes:
            self.directory.replace(entry.dn, changes)
        self._drop_foreign_memberships(resource_id, entry.dn)
        return placeholder

    def _remove(self, written: WrittenEntry) -> None:
        # Leaving the groups first keeps refint from rewriting them behind our back, and lets
        # an emptied group get its placeholder from us.
        for group_dn in self._groups_holding(written.dn):
            self._remove_member_value(group_dn, written.dn)
        self.directory.delete(written.dn)
        self._batch.forget(written.resource_id)

    def _record(
        self,
        resource_type: str,
        resource_id: str,
        entry: Entry,
        *,
        placeholder: bool | None = None,
        members_as_of: int | None = None,
    ) -> None:
        self._batch.record(
            resource_type,
            resource_id,
            entry,
            password_digest(entry.password) if resource_type == "User" else None,
            placeholder=placeholder,
            as_of=members_as_of,
        )

    # -- members --------------------------------------------------------------------------------

    def change_members(
        self, group_id: str, add_ids: Iterable[str], remove_ids: Iterable[str], job: Job
    ) -> None:
        """Add and delete the member values a member job names."""
        row = self._batch.group(group_id)
        written = self._batch.written_entry(group_id)
        if row is None:
            return  # the group's own job deletes the entry
        if written is None:
            self.sync_group(group_id)  # a new entry gets every member, these included
            return
        if written.contains_member_job(job.pk, job.created):
            return
        add = self._member_dns(list(add_ids))
        removed = list(remove_ids)
        recorded = self._batch.written_dns(removed)
        remove = [recorded[member_id] for member_id in removed if member_id in recorded]
        placeholder = self._change_member_values(written.dn, add, remove, written.placeholder)
        if placeholder != written.placeholder:
            self._batch.set_placeholder(written.dn, placeholder)

    def _change_member_values(
        self, group_dn: str, add: list[str], remove: list[str], placeholder: bool
    ) -> bool:
        """Apply member changes to a group's entry; return whether it holds the placeholder."""
        if not add and not remove:
            return placeholder
        attribute = self.builder.member_attribute
        empty_member = self.builder.placeholder
        delete = [*remove, empty_member] if add and placeholder and empty_member else remove
        try:
            self.directory.change_values(group_dn, attribute, add, delete)
            return placeholder and not add
        except ObjectClassViolation:
            # The group would be left without a member: its object class needs one.
            if add or not empty_member:
                raise
            self.directory.change_values(group_dn, attribute, [empty_member], remove)
            return True
        except NoSuchValue:
            return self._change_member_values_exactly(group_dn, add, remove)

    def _change_member_values_exactly(
        self, group_dn: str, add: list[str], remove: list[str]
    ) -> bool:
        """Read the members once and write the exact difference (after a replay, a race)."""
        attribute = self.builder.member_attribute
        empty_member = self.builder.placeholder
        current = self.directory.read(group_dn, [attribute])
        if current is None:
            raise TransientJobError(f"{group_dn} vanished while its members changed")
        present = {dn_key(dn): dn for values in current.values() for dn in values}
        to_add = [dn for dn in add if dn_key(dn) not in present]
        to_delete = [present[dn_key(dn)] for dn in remove if dn_key(dn) in present]
        remaining = (set(present) | {dn_key(dn) for dn in to_add}) - {
            dn_key(dn) for dn in to_delete
        }
        if empty_member is not None:
            empty_key = dn_key(empty_member)
            remaining.discard(empty_key)
            if not remaining and empty_key not in present:
                to_add.append(empty_member)
            elif remaining and empty_key in present:
                to_delete.append(present[empty_key])
        self.directory.change_values(group_dn, attribute, to_add, to_delete)
        return empty_member is not None and not remaining

    def _remove_member_value(self, group_dn: str, member_dn: str) -> None:
        """Take one member out of a group found in the directory, keeping the record true."""
        if self._change_member_values(group_dn, [], [member_dn], False):
            self._batch.set_placeholder(group_dn, True)

    def _current_member_dns(self, group: GroupRow) -> tuple[list[str], int]:
        """Return the DNs of a group's members now, and the newest group job they contain."""
        with self.database.read() as conn:
            # The job first, then the members: on PostgreSQL each statement sees its own
            # snapshot, and the members must contain every change of jobs up to this one.
            as_of = ldap_store.last_job(conn, LDAP_JOB, group_key(group.id))
            members = [member_id for member_id, _ in ldap_store.members_of(conn, group.pk)]
        return self._member_dns(members), as_of

    def _member_dns(self, member_ids: list[str]) -> list[str]:
        """Return the DNs of members; users without an entry yet get it now, first.

        A user entry must exist before a group names it, or the directory's memberOf would
        miss the group. A nested group without an entry is named by the DN its own job will
        give it. Members since deleted are left out.
        """
        if not member_ids:
            return []
        dns = self._batch.written_dns(member_ids)
        missing = [member_id for member_id in member_ids if member_id not in dns]
        if missing:
            with self.database.read() as conn:
                kinds = resource_types_of(conn, missing)
            for member_id, kind in kinds.items():
                if kind == "User":
                    self.sync_user(member_id)
                    entry = self._batch.written_entry(member_id)
                    if entry is not None:
                        dns[member_id] = entry.dn
                else:
                    row = self._batch.group(member_id)
                    if row is not None:
                        dns[member_id] = self.builder.group_entry(group_state(row)).dn
        return [dns[member_id] for member_id in member_ids if member_id in dns]

    def _groups_holding(self, member_dn: str) -> list[str]:
        """Return the DNs of the groups under ``groups_dn`` whose members include a DN."""
        search_filter = f"({self.builder.member_attribute}={escape_filter_value(member_dn)})"
        found = self.directory.search(self.builder.groups_dn, search_filter, ["1.1"])
        return [dn for dn, _ in found]

    def _repoint_memberships(self, old_dn: str, new_dn: str) -> None:
        """Rename a member in the groups naming it (refint or Active Directory may have)."""
        attribute = self.builder.member_attribute
        for group_dn in self._groups_holding(old_dn):
            try:
                self.directory.change_values(group_dn, attribute, [new_dn], [old_dn])
            except NoSuchValue:
                # refint renamed it meanwhile; make sure the new name is there.
                self.directory.change_values(group_dn, attribute, [new_dn])

    def _drop_foreign_memberships(self, resource_id: str, dn: str) -> None:
        """Take an entry scimbridge just took over out of groups its resource is not in."""
        groups = self._groups_holding(dn)
        if not groups:
            return
        with self.database.read() as conn:
            member_of = ldap_store.groups_of_member(conn, resource_id)
            owners = {
                group_dn: ldap_store.group_id_of(conn, dn_key(group_dn)) for group_dn in groups
            }
        for group_dn, group_id in owners.items():
            if group_id is None or group_id not in member_of:
                self._remove_member_value(group_dn, dn)

    # -- containers ----------------------------------------------------------------------------

    def _ensure_containers(self) -> None:
        if self._containers_ready:
            return
        containers = self.builder.map.containers
        self.directory.ensure_entries(self.builder.users_dn, containers)
        self.directory.ensure_entries(self.builder.groups_dn, containers)
        self._containers_ready = True

    def _add(
        self, dn: str, object_classes: Iterable[str], attributes: dict[str, list[str]]
    ) -> None:
        try:
            self.directory.add(dn, list(object_classes), attributes)
        except NoSuchEntry:
            # The container went away (deleted by hand): create it again, once.
            self._containers_ready = False
            self._ensure_containers()
            self.directory.add(dn, list(object_classes), attributes)


def _lower(values: Iterable[str]) -> set[str]:
    return {value.lower() for value in values}


def _after_rename(values: list[str], old_value: str, new_value: str) -> list[str]:
    """Return the naming attribute's values after a rename that dropped the old RDN value."""
    kept = [value for value in values if value.lower() != old_value.lower()]
    return [*kept, new_value] if new_value.lower() not in _lower(kept) else kept
