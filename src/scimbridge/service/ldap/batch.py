"""What one batch of ``ldap`` jobs knows of the store: rows, records, and unconfirmed DNs.

The rows and records the jobs name are read up front, with one query of each kind; records
the batch writes are kept here and committed by :meth:`SyncBatch.persist` in the transaction
that settles the jobs.

A DN sent as an entry's new name (an add, a rename) is noted in the store, and committed,
before the operation goes out. Until a record settles it, the entry may be there: the answer
can be lost with the connection, the directory can stop before the next step, the batch's
records can fail to commit, the worker can die. Later jobs look for the entry under every
such DN, whatever process runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from ...adapters.ldap import Entry
from ...adapters.ldap import dn_key
from ...store import ldap_entries as ldap_store
from ...store.database import Database
from ...store.database import Transaction
from ...store.jobs import Job
from ...store.ldap_entries import GroupRow
from ...store.ldap_entries import UnconfirmedDn
from ...store.ldap_entries import UserRow
from ...store.ldap_entries import WrittenEntry


class SyncBatch:
    """The store as one batch sees it: rows read up front, the records it wrote, unconfirmed DNs.

    Until :meth:`persist`, reads of the records see the batch's own writes first.
    """

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self.database = database
        self.clock = clock
        self.users: dict[str, UserRow | None] = {}
        self.groups: dict[str, GroupRow | None] = {}
        self.entries: dict[str, Entry] = {}
        """Entries built from the rows, by resource id (a row does not change in a batch)."""
        self.written: dict[str, WrittenEntry | None] = {}
        self._holders: dict[str, str] = {}
        """DN key → id of the resource whose record names it, for records read or written."""
        self.touched: dict[str, None] = {}
        """Ids whose record this batch changed (or dropped, when ``written`` says None)."""
        self._unconfirmed: dict[str, dict[str, str]] = {}
        """Id → DNs (by key) sent as its entry's name and not confirmed: it may be there."""
        self._noted: set[tuple[str, str]] = set()
        """(id, DN key) pairs the store holds as unconfirmed."""
        self._unsent: set[tuple[str, str]] = set()
        """Pairs this batch noted ahead of sending them, and has not sent (yet)."""
        self._not_taken: set[tuple[str, str]] = set()
        """Pairs the directory answered for: the entry is not there."""
        self._settled: dict[str, None] = {}
        """Ids whose entry is recorded (or forgotten) now: their unconfirmed DNs are moot."""

    # -- reads -------------------------------------------------------------------------------

    def prefetch(self, jobs: Sequence[Job]) -> None:
        """Read the rows, records and unconfirmed DNs the jobs name, one query of each kind."""
        # A malformed payload is left to its job, which fails on its own.
        user_ids: list[str] = []
        wanted_groups: list[str] = []
        for job in jobs:
            operation = job.payload.get("op")
            resource_id = job.payload.get("group" if operation == "members" else "id")
            if isinstance(resource_id, str):
                is_user = operation in ("user", "password")
                (user_ids if is_user else wanted_groups).append(resource_id)
        self.prefetch_users(user_ids)
        self._prefetch(wanted_groups, groups=True)

    def prefetch_users(self, user_ids: Iterable[str]) -> None:
        """Read the rows, records and unconfirmed DNs of users not read yet."""
        self._prefetch([user_id for user_id in user_ids if user_id not in self.users])

    def _prefetch(self, ids: list[str], *, groups: bool = False) -> None:
        if not ids:
            return
        unknown = [resource_id for resource_id in ids if resource_id not in self.written]
        with self.database.read() as conn:
            if groups:
                group_rows = ldap_store.group_rows(conn, ids)
                self.groups.update({group_id: group_rows.get(group_id) for group_id in ids})
            else:
                user_rows = ldap_store.user_rows(conn, ids)
                self.users.update({user_id: user_rows.get(user_id) for user_id in ids})
            written = ldap_store.written_entries(conn, unknown)
            unconfirmed = ldap_store.unconfirmed_dns(conn, ids)
        for resource_id in unknown:
            self._remember(resource_id, written.get(resource_id))
        for resource_id in ids:
            self._learn_unconfirmed(resource_id, unconfirmed.get(resource_id, {}))

    def _remember(self, resource_id: str, entry: WrittenEntry | None) -> None:
        self.written[resource_id] = entry
        if entry is not None:
            self._holders[entry.dn_key] = resource_id

    def _learn_unconfirmed(self, resource_id: str, dns: dict[str, str]) -> None:
        if resource_id in self._unconfirmed:
            return
        self._unconfirmed[resource_id] = dict(dns)
        self._noted.update((resource_id, key) for key in dns)

    def user(self, user_id: str) -> UserRow | None:
        """Return a user's row (None when it is gone)."""
        if user_id not in self.users:
            with self.database.read() as conn:
                self.users[user_id] = ldap_store.user_row(conn, user_id)
        return self.users[user_id]

    def group(self, group_id: str) -> GroupRow | None:
        """Return a group's row (None when it is gone)."""
        if group_id not in self.groups:
            with self.database.read() as conn:
                self.groups[group_id] = ldap_store.group_row(conn, group_id)
        return self.groups[group_id]

    def written_entry(self, resource_id: str) -> WrittenEntry | None:
        """Return a resource's record (None when nothing is recorded)."""
        if resource_id not in self.written:
            with self.database.read() as conn:
                found = ldap_store.written_entries(conn, [resource_id])
            self._remember(resource_id, found.get(resource_id))
        return self.written[resource_id]

    def written_dns(self, resource_ids: Iterable[str]) -> dict[str, str]:
        """Map the resources among ``resource_ids`` that have a record to its DN."""
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

    def unconfirmed(self, resource_id: str) -> dict[str, str]:
        """Return the DNs (by key) that may hold a resource's entry besides its record."""
        if resource_id not in self._unconfirmed:
            with self.database.read() as conn:
                found = ldap_store.unconfirmed_dns(conn, [resource_id])
            self._learn_unconfirmed(resource_id, found.get(resource_id, {}))
        return self._unconfirmed[resource_id]

    def held_by_another(self, key: str, resource_id: str) -> bool:
        """Whether another resource's record names the entry with this DN key."""
        holder_id = self._holders.get(key)
        if holder_id is None:
            with self.database.read() as conn:
                found = ldap_store.written_by_dn_key(conn, key)
            if found is None:
                return False
            holder_id = found.resource_id
            if holder_id not in self.written:
                self._remember(holder_id, found)
        holder = self.written.get(holder_id)
        return holder_id != resource_id and holder is not None and holder.dn_key == key

    # -- unconfirmed DNs -----------------------------------------------------------------------

    def note_ahead(self, names: Iterable[UnconfirmedDn]) -> None:
        """Note, in one transaction, DNs the batch may send as new names (not sent yet)."""
        new = [name for name in names if (name.resource_id, name.dn_key) not in self._noted]
        if not new:
            return
        with self.database.write() as conn:
            ldap_store.note_unconfirmed_dns(conn, new, self.clock())
        for name in new:
            pair = (name.resource_id, name.dn_key)
            self._noted.add(pair)
            self._unsent.add(pair)

    def sending(self, resource_type: str, resource_id: str, dn: str) -> None:
        """Note that a DN is being sent as a resource's new name, committed before it goes out."""
        key = dn_key(dn)
        pair = (resource_id, key)
        if pair not in self._noted:
            self.note_ahead([UnconfirmedDn(resource_type, resource_id, dn, key)])
        self._unsent.discard(pair)
        self._not_taken.discard(pair)
        self.unconfirmed(resource_id)[key] = dn

    def not_taken(self, resource_id: str, dn: str) -> None:
        """Note that the directory refused a DN sent as a new name: the entry is not there."""
        key = dn_key(dn)
        self.unconfirmed(resource_id).pop(key, None)
        if (resource_id, key) in self._noted:
            self._not_taken.add((resource_id, key))

    def _settle(self, resource_id: str) -> None:
        self._settled[resource_id] = None
        self._unconfirmed[resource_id] = {}

    # -- records -------------------------------------------------------------------------------

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
        self._settle(resource_id)

    def forget(self, resource_id: str) -> None:
        """Note that a resource's entry was deleted (wherever it was)."""
        self.written[resource_id] = None
        self.touched[resource_id] = None
        self._settle(resource_id)

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

    def has_writes(self) -> bool:
        """Whether :meth:`persist` has anything to write."""
        return bool(self.touched or self._unsent or self._not_taken)

    def persist(self, conn: Transaction) -> None:
        """Write the batch's records, and settle unconfirmed DNs, in the caller's transaction."""
        entries = [self.written[i] for i in self.touched if self.written.get(i) is not None]
        forgotten = [i for i in self.touched if self.written.get(i) is None]
        ldap_store.write_entries(
            conn, [entry for entry in entries if entry is not None], forgotten, self.clock()
        )
        noted_ids = {resource_id for resource_id, _ in self._noted}
        settled = [resource_id for resource_id in self._settled if resource_id in noted_ids]
        dropped = [pair for pair in self._unsent | self._not_taken if pair[0] not in self._settled]
        ldap_store.drop_unconfirmed_dns(conn, settled, dropped)
