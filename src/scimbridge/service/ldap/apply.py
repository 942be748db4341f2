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
commit its records with the jobs' outcomes, in one transaction (see :mod:`.ldap_batch`).

An add or a rename may be applied without scimbridge learning it (the answer lost, the
directory stopping before the next step, the records not committed, the worker replaced).
So the new DN is committed as *unconfirmed* before the operation is sent, and until a record
settles it, every job of that resource looks for the entry there too: it is moved to its DN
and read and corrected like an entry found in place (a delete deletes it). A batch pays one
insert for the new names of its jobs; only a resource with an unconfirmed DN costs reads.

Failures: an unreachable directory gives :class:`UnavailableJobError` (the job waits, it is
never parked); a refusal (schema violation, insufficient rights, a logon name already in
use…) gives :class:`PermanentJobError` with the server's message, and the job is parked at
once (later jobs of the same entry are not held behind a parked one).

Active Directory specifics: ``userAccountControl`` is a set of flags of which only the
suspension ``bit`` is written (read, modify, write); ``password`` jobs carry a clear password
encrypted (:mod:`.ldap_passwords`) and write it as ``unicodePwd``; an account stays disabled
until its entry has a password. Attributes with ``resolve: user_dn`` (manager) name the
entries of other users, created first when missing, and are repointed or removed when those
entries are renamed or deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from typing import Any

from ...adapters.ldap import Attributes
from ...adapters.ldap import ConstraintViolation
from ...adapters.ldap import Entry
from ...adapters.ldap import EntryAlreadyExists
from ...adapters.ldap import EntryBuilder
from ...adapters.ldap import GroupState
from ...adapters.ldap import LdapDirectory
from ...adapters.ldap import LdapRefused
from ...adapters.ldap import LdapUnavailable
from ...adapters.ldap import MappingError
from ...adapters.ldap import NoSuchEntry
from ...adapters.ldap import NoSuchValue
from ...adapters.ldap import ObjectClassViolation
from ...adapters.ldap import UserState
from ...adapters.ldap import changed_attributes
from ...adapters.ldap import dn_key
from ...adapters.ldap import escape_filter_value
from ...adapters.ldap import password_digest
from ...adapters.ldap.names import first_rdn
from ...domain.lifecycle import UserStatus
from ...store import ldap_entries as ldap_store
from ...store.database import Database
from ...store.jobs import Job
from ...store.ldap_entries import GroupRow
from ...store.ldap_entries import UnconfirmedDn
from ...store.ldap_entries import UserRow
from ...store.ldap_entries import WrittenEntry
from ...store.resources import resource_types_of
from ..operations.metrics import instruments
from ..outbox.worker import BatchResult
from ..outbox.worker import JobResult
from ..outbox.worker import PermanentJobError
from ..outbox.worker import TransientJobError
from ..outbox.worker import UnavailableJobError
from .batch import SyncBatch
from .passwords import DIRECTORY_HAS_PASSWORD
from .passwords import PASSWORD_OP
from .passwords import PasswordCipher
from .passwords import PasswordExpired
from .passwords import scrubbed
from .sync import LDAP_JOB
from .sync import group_key

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def user_state(row: UserRow, directory_password: bool = True) -> UserState:
    """Return what the directory mirrors of a stored user."""
    return UserState(
        row.id,
        row.doc,
        row.status == UserStatus.SUSPENDED,
        row.password_hash,
        directory_password,
    )


def flags_after(current: int, bit: int, wanted: int) -> int:
    """Return flags ``current`` with only ``bit`` taken from ``wanted``."""
    return (current & ~bit) | (wanted & bit)


def group_state(row: GroupRow) -> GroupState:
    """Return what the directory mirrors of a stored group."""
    return GroupState(row.id, row.doc)


_OPERATIONS = frozenset({"user", "group", "members"})


def _outcome(error: Exception | None) -> str:
    """Name what became of an LDAP job, for the metrics (ok, unavailable, refused, error)."""
    if error is None:
        return "ok"
    if isinstance(error, UnavailableJobError):
        return "unavailable"
    if isinstance(error, PermanentJobError):
        return "refused"
    return "error"


class LdapSyncHandler:
    """The outbox handler of ``ldap`` jobs (one per worker thread: it holds a connection)."""

    def __init__(
        self,
        database: Database,
        directory: LdapDirectory,
        builder: EntryBuilder,
        *,
        clock: Callable[[], datetime] = _utc_now,
        cipher: PasswordCipher | None = None,
    ) -> None:
        self.database = database
        self.directory = directory
        self.builder = builder
        self.clock = clock
        self.cipher = cipher
        self._containers_ready = False
        self._batch = SyncBatch(database, clock)
        self._password_set: set[str] = set()
        """Users whose entry got a password in this batch."""
        self._scrub: dict[int, dict[str, Any]] = {}
        """Payloads without their secret, for password jobs that failed for good."""
        self._resolving: set[str] = set()
        """Users whose entry is being written (a manager cycle stops here)."""
        self._complete: set[str] = set()
        """Users whose cached entry has every manager resolved and its password state."""

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
        return batch.results[0].payload

    def apply_batch(self, jobs: Sequence[Job], must_stop: Callable[[], bool]) -> BatchResult:
        """Apply jobs in order; stop at the first sign that the directory is unavailable."""
        self._batch = SyncBatch(self.database, self.clock)
        self._password_set = set()
        self._complete = set()
        self._scrub = {}
        self._batch.prefetch(jobs)
        self._note_new_names(
            (payload.get("op"), payload.get("group" if payload.get("op") == "members" else "id"))
            for payload in (job.payload for job in jobs)
        )
        results: list[JobResult] = []
        stopped = False
        for job in jobs:
            if stopped or must_stop():
                results.append(JobResult(started=False))
                continue
            result = self._apply_one(job)
            stopped = isinstance(result.error, UnavailableJobError)
            results.append(result)
        return BatchResult(results, self._persist())

    def _persist(self) -> Callable[[Any], None] | None:
        """Return the batch's writes: its records, and secrets leaving failed password jobs."""
        records = self._batch.persist if self._batch.has_writes() else None
        scrub = dict(self._scrub)
        if not scrub:
            return records

        def persist(conn: Any) -> None:
            if records is not None:
                records(conn)
            ldap_store.replace_job_payloads(conn, scrub)

        return persist

    def _apply_one(self, job: Job) -> JobResult:
        result = self._apply_job(job)
        operation = job.payload.get("op")
        instruments().ldap_operations.labels(
            operation if operation in _OPERATIONS else "other", _outcome(result.error)
        ).inc()
        return result

    def _apply_job(self, job: Job) -> JobResult:
        payload = job.payload
        try:
            operation = payload.get("op")
            password = self._queued_password(payload) if operation == PASSWORD_OP else None
            self._ensure_containers()
            if operation == "user":
                self.sync_user(payload["id"])
            elif operation == "group":
                self.sync_group(payload["id"])
            elif operation == "members":
                self.change_members(
                    payload["group"], payload.get("add", []), payload.get("remove", []), job
                )
            elif operation == PASSWORD_OP:
                if password is not None:
                    self.set_password(payload["id"], password)
                return JobResult(payload=scrubbed(payload))
            else:
                raise PermanentJobError(f"unknown ldap job {operation!r}")
        except LdapUnavailable as exc:
            return JobResult(error=UnavailableJobError(str(exc)))
        except (LdapRefused, MappingError) as exc:
            return self._failed(job, PermanentJobError(f"the directory refused it: {exc}"))
        except PasswordExpired as exc:
            return self._failed(job, PermanentJobError(str(exc)))
        except PermanentJobError as exc:
            return self._failed(job, exc)
        except TransientJobError as exc:
            return JobResult(error=exc)
        except Exception as exc:
            logger.exception("ldap job %d raised an unexpected error", job.pk)
            return JobResult(error=exc)
        return JobResult()

    def _failed(self, job: Job, error: PermanentJobError) -> JobResult:
        """Park a job; a password job's secret leaves its row as it is parked."""
        if job.payload.get("op") == PASSWORD_OP and "secret" in job.payload:
            self._scrub[job.pk] = scrubbed(job.payload)
        return JobResult(error=error)

    # -- users and groups ---------------------------------------------------------------------

    def _entry_of(self, resource_id: str, row: UserRow | GroupRow) -> Entry:
        entry = self._batch.entries.get(resource_id)
        if entry is None:
            if isinstance(row, UserRow):
                return self._user_entry_now(resource_id, row, sync_managers=False)
            entry = self.builder.group_entry(group_state(row))
            self._batch.entries[resource_id] = entry
        return entry

    def _note_new_names(self, wanted: Iterable[tuple[object, object]]) -> None:
        """Note, in one transaction, the DNs jobs will send as new names (adds, renames).

        Each job would otherwise commit its own before sending; a batch of creates pays one.
        """
        names: list[UnconfirmedDn] = []
        for operation, resource_id in wanted:
            if not isinstance(resource_id, str) or operation not in ("user", "group", "members"):
                continue
            row: UserRow | GroupRow | None = (
                self._batch.user(resource_id)
                if operation == "user"
                else self._batch.group(resource_id)
            )
            if row is None:
                continue
            written = self._batch.written_entry(resource_id)
            if operation == "members" and written is not None:
                continue  # only a member job of a group without an entry creates it
            try:
                entry = self._entry_of(resource_id, row)
            except MappingError:
                continue  # the job fails on its own
            if written is None or written.dn != entry.dn or self._batch.unconfirmed(resource_id):
                kind = "User" if operation == "user" else "Group"
                names.append(UnconfirmedDn(kind, resource_id, entry.dn, entry.dn_key))
        self._batch.note_ahead(names)

    def sync_user(self, user_id: str) -> None:
        """Make a user's entry match the store, whatever happened since the last write."""
        row = self._batch.user(user_id)
        if row is None:
            self._remove(user_id)
            return
        self._resolving.add(user_id)
        try:
            entry = self._full_user_entry(user_id, row)
            self._put("User", user_id, entry, self._batch.written_entry(user_id))
        finally:
            self._resolving.discard(user_id)

    def _full_user_entry(self, user_id: str, row: UserRow) -> Entry:
        """Return a user's entry with every manager resolved (written first when missing)."""
        cached = self._batch.entries.get(user_id)
        if cached is not None and user_id in self._complete:
            return cached
        return self._user_entry_now(user_id, row, sync_managers=True)

    def _user_entry_now(self, user_id: str, row: UserRow, *, sync_managers: bool) -> Entry:
        """Build and cache a user's entry; note whether it is complete.

        Without ``sync_managers`` (while a batch notes its new names: no directory work
        yet), a manager without a written entry is left out and the entry is built again
        when its job runs.
        """
        missing = False

        def written_dn(other_id: str) -> str | None:
            nonlocal missing
            written = self._batch.written_entry(other_id)
            if written is not None and not self._batch.unconfirmed(other_id):
                return written.dn
            missing = True
            return None

        state = user_state(row, self._has_directory_password(user_id))
        entry = self.builder.user_entry(state, self._user_dn if sync_managers else written_dn)
        self._batch.entries[user_id] = entry
        if not missing:
            self._complete.add(user_id)
        return entry

    def _password_written(self, user_id: str) -> None:
        """Note that the user's entry got a password in this batch (its entry changes)."""
        self._password_set.add(user_id)
        self._complete.discard(user_id)

    def _has_directory_password(self, user_id: str) -> bool:
        """Whether the user's entry holds a password (always, unless passwords are clear)."""
        if not self.builder.clear_passwords or user_id in self._password_set:
            return True
        written = self._batch.written_entry(user_id)
        return written is not None and written.password_digest == DIRECTORY_HAS_PASSWORD

    def _user_dn(self, user_id: str) -> str | None:
        """Return the DN of another user's entry (a manager), writing that entry first."""
        written = self._batch.written_entry(user_id)
        if written is not None and not self._batch.unconfirmed(user_id):
            return written.dn
        if user_id in self._resolving or self._batch.user(user_id) is None:
            return None
        self._batch.prefetch_users([user_id])
        self.sync_user(user_id)
        written = self._batch.written_entry(user_id)
        return written.dn if written is not None else None

    def _queued_password(self, payload: dict[str, Any]) -> str | None:
        """Decrypt a password job's secret (None once applied: the secret left with it).

        Checked before the directory is reached: an expired password is parked, and its
        secret dropped, even while the directory is away.
        """
        secret = payload.get("secret")
        if not isinstance(secret, str):
            return None
        if self.cipher is None:
            raise PermanentJobError("no key to decrypt the password with")
        return self.cipher.decrypt(secret)

    def set_password(self, user_id: str, password: str) -> None:
        """Write a queued password to the user's entry, then enable it if it may be."""
        if self._batch.user(user_id) is None:
            return  # deleted meanwhile
        written = self._batch.written_entry(user_id)
        if written is None or self._batch.unconfirmed(user_id):
            self.sync_user(user_id)
            written = self._batch.written_entry(user_id)
            if written is None:
                raise TransientJobError(f"user {user_id} has no entry yet")
        try:
            self.directory.set_unicode_pwd(written.dn, password)
        except ConstraintViolation as exc:
            if exc.password_policy:
                raise PermanentJobError(
                    f"the directory's password policy refused the password: {exc.message}"
                ) from None
            raise
        self._password_written(user_id)
        self.sync_user(user_id)

    def sync_group(self, group_id: str) -> None:
        """Make a group's entry match the store; a new entry gets every current member."""
        row = self._batch.group(group_id)
        if row is None:
            self._remove(group_id)
            return
        entry = self._entry_of(group_id, row)
        self._put("Group", group_id, entry, self._batch.written_entry(group_id), row)

    def _places(self, resource_id: str) -> dict[str, str]:
        """Return the DNs (by key) the entry of a resource may have: recorded, then unconfirmed.

        An unconfirmed DN another resource's record names is not this resource's any more
        (that resource took the entry over).
        """
        written = self._batch.written_entry(resource_id)
        places = {written.dn_key: written.dn} if written is not None else {}
        for key, dn in list(self._batch.unconfirmed(resource_id).items()):
            if key not in places and not self._batch.held_by_another(key, resource_id):
                places[key] = dn
        return places

    def _put(
        self,
        resource_type: str,
        resource_id: str,
        entry: Entry,
        written: WrittenEntry | None,
        group: GroupRow | None = None,
    ) -> None:
        places = self._places(resource_id)
        if written is None or len(places) > 1:
            # Nothing recorded, or an add or rename went out unconfirmed: what the entry holds
            # is unknown, so it is found, moved to its DN, then read and corrected.
            found = self._move(resource_type, resource_id, places, entry.dn) if places else None
            self._create(resource_type, resource_id, entry, group, exists=found is not None)
            return
        before = dict(written.attributes)
        renamed = written.dn != entry.dn
        if renamed:
            source = self._move(resource_type, resource_id, places, entry.dn)
            if source is None:
                # Deleted behind scimbridge's back: write it anew.
                self._create(resource_type, resource_id, entry, group)
                return
            before[entry.rdn_attribute] = _after_rename(
                before.get(entry.rdn_attribute, []), first_rdn(source)[1], entry.rdn_value
            )
        changes = changed_attributes(before, entry.attributes)
        digest = password_digest(entry.password)
        password_attribute = self.builder.password_attribute
        if password_attribute and resource_type == "User" and digest != written.password_digest:
            changes[password_attribute] = [entry.password] if entry.password else []
        changed = bool(changes)
        if changes:
            try:
                if resource_type == "User":
                    self._only_flag_bit(entry.dn, changes, None)
                if changes:
                    self.directory.replace(entry.dn, changes)
            except NoSuchEntry:
                self._create(resource_type, resource_id, entry, group)
                return
        new_password = resource_type == "User" and self._password_set_now(resource_id, written)
        if changed or renamed or new_password:
            self._record(resource_type, resource_id, entry)

    def _password_set_now(self, user_id: str, written: WrittenEntry) -> bool:
        """Whether the record must learn that the entry got a password in this batch."""
        return user_id in self._password_set and written.password_digest != DIRECTORY_HAS_PASSWORD

    def _only_flag_bit(
        self, dn: str, changes: dict[str, list[str]], current: Attributes | None
    ) -> None:
        """Turn a change of a flags attribute into a change of its suspension bit only.

        ``current`` holds the entry's values when already read; else the attribute is read.
        An entry whose bit is right already loses the change.
        """
        suspension = self.builder.map.users.suspension
        if suspension is None or suspension.bit is None:
            return
        name = next((n for n in changes if n.lower() == suspension.attribute.lower()), None)
        if name is None:
            return
        wanted = changes[name]
        if current is None:
            current = self.directory.read(dn, [suspension.attribute]) or {}
        found = next((values for key, values in current.items() if key.lower() == name.lower()), [])
        if not found or not wanted:
            return  # no flags yet: write the whole value
        before = int(found[0])
        after = flags_after(before, suspension.bit, int(wanted[0]))
        if after == before:
            del changes[name]
        else:
            changes[name] = [str(after)]

    def _move(
        self, resource_type: str, resource_id: str, places: dict[str, str], new_dn: str
    ) -> str | None:
        """Move an entry from the first of ``places`` holding it to ``new_dn``.

        Return the DN it was found under, None if under none. Groups naming any of the places
        are repointed to ``new_dn``.
        """
        new_key = dn_key(new_dn)
        # Already there (an earlier attempt got there, only its answer was lost): no rename.
        ordered = sorted(places.items(), key=lambda place: place[0] != new_key)
        found: str | None = None
        for key, dn in ordered:
            if key == new_key:
                if self.directory.exists(new_dn):
                    found = dn
                    break
                continue
            self._batch.sending(resource_type, resource_id, new_dn)
            try:
                self.directory.rename(dn, new_dn)
            except NoSuchEntry:
                continue
            except EntryAlreadyExists:
                self._batch.not_taken(resource_id, new_dn)
                # Usually a deleted resource's entry whose delete is still queued.
                raise TransientJobError(
                    f"cannot rename {dn} to {new_dn}: that name is taken"
                ) from None
            found = dn
            break
        if found is not None:
            for key, dn in places.items():
                if key != new_key:
                    self._repoint_memberships(dn, new_dn)
                    if resource_type == "User":
                        self._repoint_user_references(dn, new_dn)
        return found

    def _create(
        self,
        resource_type: str,
        resource_id: str,
        entry: Entry,
        group: GroupRow | None,
        *,
        exists: bool = False,
    ) -> None:
        """Add a resource's entry, or correct the one at its DN (``exists``, or found there)."""
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
        if exists:
            placeholder = self._converge(resource_type, resource_id, entry, member_dns)
        else:
            self._batch.sending(resource_type, resource_id, entry.dn)
            try:
                self._add(entry.dn, entry.object_classes, attributes)
            except EntryAlreadyExists as exc:
                placeholder = self._converge(
                    resource_type, resource_id, entry, member_dns, refusal=exc
                )
        self._record(
            resource_type, resource_id, entry, placeholder=placeholder, members_as_of=members_as_of
        )

    def _converge(
        self,
        resource_type: str,
        resource_id: str,
        entry: Entry,
        member_dns: list[str] | None,
        *,
        refusal: EntryAlreadyExists | None = None,
    ) -> bool | None:
        """Correct an existing entry to ``entry``; return whether it holds the placeholder.

        ``refusal``: the add's answer that sent us here. When no entry has the DN, the
        directory refused a value that must be unique (Active Directory's sAMAccountName "…
        already in use" is answered with the same code): the job is parked with its message.
        """
        names = [*entry.attributes, "objectClass"]
        password_attribute = self.builder.password_attribute if resource_type == "User" else None
        if password_attribute:
            names.append(password_attribute)
        member_attribute = self.builder.member_attribute
        if member_dns is not None:
            names.append(member_attribute)
        clear_passwords = resource_type == "User" and self.builder.clear_passwords
        if clear_passwords:
            names.append("pwdLastSet")
        current = self.directory.read(entry.dn, names)
        if current is None:
            if refusal is not None:
                self._batch.not_taken(resource_id, entry.dn)
                raise PermanentJobError(
                    f"the directory refused {entry.dn}: {refusal.message or refusal.description}"
                    " (a value that must be unique, such as sAMAccountName, is taken)"
                )
            raise TransientJobError(f"{entry.dn} vanished while being corrected")
        found = {name.lower(): values for name, values in current.items()}
        if clear_passwords and found.get("pwdlastset", ["0"])[0] not in ("0", ""):
            # An entry taken over that already has a password: it may be enabled.
            if resource_id not in self._password_set:
                self._password_written(resource_id)
                row = self._batch.user(resource_id)
                if row is not None:
                    entry = self._full_user_entry(resource_id, row)
        current = {name: values for name, values in current.items() if name.lower() != "pwdlastset"}
        changes = changed_attributes(current, entry.attributes, self.builder.dn_valued)
        if resource_type == "User":
            self._only_flag_bit(entry.dn, changes, current)
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

    def _remove(self, resource_id: str) -> None:
        """Delete the entry of a resource that is gone, under every DN it may have."""
        places = self._places(resource_id)
        if not places:
            return
        for dn in places.values():
            # Leaving the groups first keeps refint from rewriting them behind our back, and
            # lets an emptied group get its placeholder from us.
            for group_dn in self._groups_holding(dn):
                self._remove_member_value(group_dn, dn)
            self._repoint_user_references(dn, None)
            self.directory.delete(dn)
        self._batch.forget(resource_id)

    def _record(
        self,
        resource_type: str,
        resource_id: str,
        entry: Entry,
        *,
        placeholder: bool | None = None,
        members_as_of: int | None = None,
    ) -> None:
        digest = None
        if resource_type == "User":
            digest = password_digest(entry.password)
            if self.builder.clear_passwords and self._has_directory_password(resource_id):
                digest = DIRECTORY_HAS_PASSWORD
        self._batch.record(
            resource_type,
            resource_id,
            entry,
            digest,
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
        if written is None or self._batch.unconfirmed(group_id):
            # A new entry, or one found again, gets every member: these included.
            self.sync_group(group_id)
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
            new_users = [member_id for member_id, kind in kinds.items() if kind == "User"]
            self._batch.prefetch_users(new_users)
            self._note_new_names(("user", member_id) for member_id in new_users)
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

    def _repoint_user_references(self, old_dn: str, new_dn: str | None) -> None:
        """Rename (or remove, for None) a user's DN in the entries naming it as manager.

        Active Directory does it by itself (linked attributes); OpenLDAP without a refint rule
        for the attribute does not.
        """
        attributes = [
            name
            for name, source in self.builder.map.users.attributes.items()
            if source.resolve == "user_dn"
        ]
        for attribute in attributes:
            search_filter = f"({attribute}={escape_filter_value(old_dn)})"
            for dn, _ in list(self.directory.search(self.builder.users_dn, search_filter, ["1.1"])):
                self.directory.replace(dn, {attribute: [new_dn] if new_dn else []})

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
