"""Queries of LDAP sync: what the directory should hold, and what scimbridge last wrote there.

``ldap_entries`` keeps, per user and group, the DN and managed attributes last written to the
directory. A resource's DN is unique among the rows: a resource that takes over an entry (a
new user named like a deleted one whose delete is still queued) takes its row too.

``ldap_unconfirmed_dns`` keeps the DNs sent as a resource's new name (an add, a rename) that
no record confirms yet: noted, and committed, before the operation is sent; dropped in the
transaction that records its outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from .dialects import conflict_insert
from .tables import group_members
from .tables import groups
from .tables import jobs
from .tables import ldap_entries
from .tables import ldap_unconfirmed_dns
from .tables import users
from .timestamps import from_db
from .timestamps import to_db


@dataclass(frozen=True)
class UserRow:
    """A user as the directory mirrors it."""

    id: str
    doc: dict[str, Any]
    status: str
    password_hash: str | None


@dataclass(frozen=True)
class GroupRow:
    """A group as the directory mirrors it."""

    pk: int
    id: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class WrittenEntry:
    """What scimbridge last wrote for one resource."""

    resource_type: str
    resource_id: str
    dn: str
    dn_key: str
    """The DN's comparison form (see ``adapters.ldap.names.dn_key``)."""
    attributes: dict[str, list[str]]
    password_digest: str | None
    placeholder: bool
    """Groups: whether the entry holds the empty-group placeholder member."""
    members_as_of: int
    """Groups: the newest job of the group the last whole member list written contains."""
    members_written: datetime | None
    """Groups: when that member list was written."""

    def contains_member_job(self, job_pk: int, job_created: datetime) -> bool:
        """Whether the last write of the whole member list already applied a member job."""
        return (
            self.members_written is not None
            and job_pk <= self.members_as_of
            and job_created <= self.members_written
        )


def _written(row: Any) -> WrittenEntry:
    return WrittenEntry(
        row.resource_type,
        row.resource_id,
        row.dn,
        row.dn_key,
        row.attributes,
        row.password_digest,
        bool(row.placeholder),
        row.members_as_of,
        from_db(row.members_written),
    )


_USER = select(users.c.id, users.c.doc, users.c.status, users.c.password_hash)
_GROUP = select(groups.c.pk, groups.c.id, groups.c.doc)
_WRITTEN = select(ldap_entries)


def user_row(conn: Connection, user_id: str) -> UserRow | None:
    """Return a user's mirrored state, or None when there is no such user."""
    row = conn.execute(_USER.where(users.c.id == user_id)).first()
    return UserRow(row.id, row.doc, row.status, row.password_hash) if row else None


def group_row(conn: Connection, group_id: str) -> GroupRow | None:
    """Return a group's mirrored state, or None when there is no such group."""
    row = conn.execute(_GROUP.where(groups.c.id == group_id)).first()
    return GroupRow(row.pk, row.id, row.doc) if row else None


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    # Chunks keep the statements under the databases' bound-parameter limits.
    wanted = list(set(ids))
    for start in range(0, len(wanted), 500):
        yield wanted[start : start + 500]


def user_rows(conn: Connection, user_ids: Iterable[str]) -> dict[str, UserRow]:
    """Return the users among ``user_ids`` that exist, by id."""
    found = {}
    for chunk in _chunks(user_ids):
        for row in conn.execute(_USER.where(users.c.id.in_(chunk))):
            found[row.id] = UserRow(row.id, row.doc, row.status, row.password_hash)
    return found


def group_rows(conn: Connection, group_ids: Iterable[str]) -> dict[str, GroupRow]:
    """Return the groups among ``group_ids`` that exist, by id."""
    found = {}
    for chunk in _chunks(group_ids):
        for row in conn.execute(_GROUP.where(groups.c.id.in_(chunk))):
            found[row.id] = GroupRow(row.pk, row.id, row.doc)
    return found


def written_entries(conn: Connection, resource_ids: Iterable[str]) -> dict[str, WrittenEntry]:
    """Return what was last written for the resources among ``resource_ids``, by id."""
    found = {}
    for chunk in _chunks(resource_ids):
        for row in conn.execute(_WRITTEN.where(ldap_entries.c.resource_id.in_(chunk))):
            found[row.resource_id] = _written(row)
    return found


def written_by_dn_key(conn: Connection, dn_key: str) -> WrittenEntry | None:
    """Return the record naming an entry by its DN key, if any."""
    row = conn.execute(_WRITTEN.where(ldap_entries.c.dn_key == dn_key)).first()
    return _written(row) if row else None


def written_entry(conn: Connection, resource_type: str, resource_id: str) -> WrittenEntry | None:
    """Return what was last written for a resource, or None when nothing was."""
    row = conn.execute(
        _WRITTEN.where(
            ldap_entries.c.resource_type == resource_type,
            ldap_entries.c.resource_id == resource_id,
        )
    ).first()
    return _written(row) if row else None


def all_written(conn: Connection) -> list[WrittenEntry]:
    """Return every record."""
    return [_written(row) for row in conn.execute(_WRITTEN)]


def written_dns(conn: Connection, resource_ids: Iterable[str]) -> dict[str, str]:
    """Map the resources among ``resource_ids`` that have an entry to its DN."""
    found: dict[str, str] = {}
    for chunk in _chunks(resource_ids):
        query = select(ldap_entries.c.resource_id, ldap_entries.c.dn).where(
            ldap_entries.c.resource_id.in_(chunk)
        )
        found.update({resource_id: dn for resource_id, dn in conn.execute(query)})
    return found


def _upsert(dialect: str) -> Any:
    statement = conflict_insert(dialect, ldap_entries)
    columns = [c.name for c in ldap_entries.c if c.name not in ("resource_type", "resource_id")]
    return statement.on_conflict_do_update(
        index_elements=["resource_type", "resource_id"],
        set_={name: statement.excluded[name] for name in columns},
    )


# Built once: a batch of jobs writes its records with one executemany per statement.
_UPSERTS = {dialect: _upsert(dialect) for dialect in ("sqlite", "postgresql")}
_DROP_OTHER_HOLDERS = delete(ldap_entries).where(
    ldap_entries.c.dn_key == bindparam("dn_key"),
    ldap_entries.c.resource_id != bindparam("resource_id"),
)
_FORGET = delete(ldap_entries).where(ldap_entries.c.resource_id == bindparam("resource_id"))


def write_entries(
    conn: Connection, entries: Iterable[WrittenEntry], forgotten: Iterable[str], now: datetime
) -> None:
    """Store the records of a batch at once: ``entries`` as they are now, ``forgotten`` gone.

    Other records naming the DN of one of ``entries`` are dropped (it has taken the entry).
    """
    rows = [
        {
            "resource_type": entry.resource_type,
            "resource_id": entry.resource_id,
            "dn": entry.dn,
            "dn_key": entry.dn_key,
            "attributes": entry.attributes,
            "password_digest": entry.password_digest,
            "placeholder": entry.placeholder,
            "members_as_of": entry.members_as_of,
            "members_written": to_db(entry.members_written) if entry.members_written else None,
            "written": to_db(now),
        }
        for entry in entries
    ]
    gone = [{"resource_id": resource_id} for resource_id in forgotten]
    if rows:
        conn.execute(
            _DROP_OTHER_HOLDERS,
            [{"dn_key": row["dn_key"], "resource_id": row["resource_id"]} for row in rows],
        )
    if gone:
        conn.execute(_FORGET, gone)
    if rows:
        conn.execute(_UPSERTS[conn.dialect.name], rows)


@dataclass(frozen=True)
class UnconfirmedDn:
    """A DN about to be sent as the new name of a resource's entry."""

    resource_type: str
    resource_id: str
    dn: str
    dn_key: str


def unconfirmed_dns(conn: Connection, resource_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Return the DNs sent for resources among ``resource_ids`` but not confirmed, by id.

    Each resource's DNs map their key to the DN, oldest first.
    """
    found: dict[str, dict[str, str]] = {}
    table = ldap_unconfirmed_dns.c
    for chunk in _chunks(resource_ids):
        query = (
            select(table.resource_id, table.dn_key, table.dn)
            .where(table.resource_id.in_(chunk))
            .order_by(table.sent)
        )
        for resource_id, key, dn in conn.execute(query):
            found.setdefault(resource_id, {})[key] = dn
    return found


_NOTE_UNCONFIRMED = {
    dialect: conflict_insert(dialect, ldap_unconfirmed_dns).on_conflict_do_nothing()
    for dialect in ("sqlite", "postgresql")
}
_CONFIRM_ALL = delete(ldap_unconfirmed_dns).where(
    ldap_unconfirmed_dns.c.resource_id == bindparam("resource_id")
)
_CONFIRM_ONE = delete(ldap_unconfirmed_dns).where(
    ldap_unconfirmed_dns.c.resource_id == bindparam("resource_id"),
    ldap_unconfirmed_dns.c.dn_key == bindparam("dn_key"),
)


def note_unconfirmed_dns(conn: Connection, names: Iterable[UnconfirmedDn], now: datetime) -> None:
    """Note DNs about to be sent as new names (a DN noted already stays as it was)."""
    rows = [
        {
            "resource_type": name.resource_type,
            "resource_id": name.resource_id,
            "dn": name.dn,
            "dn_key": name.dn_key,
            "sent": to_db(now),
        }
        for name in names
    ]
    if rows:
        conn.execute(_NOTE_UNCONFIRMED[conn.dialect.name], rows)


def drop_unconfirmed_dns(
    conn: Connection, settled: Iterable[str], dropped: Iterable[tuple[str, str]]
) -> None:
    """Drop every unconfirmed DN of the ``settled`` ids, and the (id, DN key) pairs ``dropped``."""
    every = [{"resource_id": resource_id} for resource_id in settled]
    single = [{"resource_id": resource_id, "dn_key": key} for resource_id, key in dropped]
    if every:
        conn.execute(_CONFIRM_ALL, every)
    if single:
        conn.execute(_CONFIRM_ONE, single)


def group_id_of(conn: Connection, group_dn_key: str) -> str | None:
    """Return the id of the group whose entry has this DN key, if scimbridge wrote it."""
    query = select(ldap_entries.c.resource_id).where(
        ldap_entries.c.resource_type == "Group", ldap_entries.c.dn_key == group_dn_key
    )
    return conn.execute(query).scalars().first()


def groups_of_member(conn: Connection, member_id: str) -> set[str]:
    """Return the ids of the groups a user or group belongs to directly."""
    query = (
        select(groups.c.id)
        .join(group_members, group_members.c.group_pk == groups.c.pk)
        .where(group_members.c.member_id == member_id)
    )
    return set(conn.execute(query).scalars())


def forget_all(conn: Connection) -> None:
    """Drop every record and unconfirmed DN (reconcile writes records from the directory)."""
    conn.execute(delete(ldap_entries))
    conn.execute(delete(ldap_unconfirmed_dns))


def members_of(conn: Connection, group_pk: int) -> list[tuple[str, str]]:
    """Return the direct members of a group as (id, ``User`` or ``Group``)."""
    query = select(group_members.c.member_id, group_members.c.member_type).where(
        group_members.c.group_pk == group_pk
    )
    return [(member_id, member_type) for member_id, member_type in conn.execute(query)]


def member_ids(conn: Connection, group_pk: int) -> set[str]:
    """Return the ids of a group's direct members."""
    query = select(group_members.c.member_id).where(group_members.c.group_pk == group_pk)
    return set(conn.execute(query).scalars())


def last_job(conn: Connection, kind: str, ordering_key: str) -> int:
    """Return the primary key of the newest job with this kind and key (0 without one)."""
    query = select(func.max(jobs.c.pk)).where(
        jobs.c.kind == kind, jobs.c.ordering_key == ordering_key
    )
    return int(conn.execute(query).scalar() or 0)


def pending_jobs(
    conn: Connection, kind: str, ordering_key: str
) -> list[tuple[str, dict[str, Any]]]:
    """Return (status, payload) of the jobs with this kind and key not done yet, oldest first."""
    query = (
        select(jobs.c.status, jobs.c.payload)
        .where(
            jobs.c.kind == kind,
            jobs.c.ordering_key == ordering_key,
            jobs.c.status.in_(("queued", "retrying", "running")),
        )
        .order_by(jobs.c.pk)
    )
    return [(row.status, dict(row.payload)) for row in conn.execute(query)]


@dataclass(frozen=True)
class ParkedJob:
    """A parked (failed) job, without its payload."""

    pk: int
    last_error: str | None
    updated: datetime


def parked_jobs(conn: Connection, kind: str, ordering_key: str) -> list[ParkedJob]:
    """Return the parked jobs with this kind and key (an entry's refusals), oldest first."""
    query = (
        select(jobs.c.pk, jobs.c.last_error, jobs.c.updated)
        .where(jobs.c.kind == kind, jobs.c.ordering_key == ordering_key, jobs.c.status == "failed")
        .order_by(jobs.c.pk)
    )
    return [ParkedJob(row.pk, row.last_error, from_db(row.updated)) for row in conn.execute(query)]


def replace_job_payloads(conn: Connection, payloads: dict[int, dict[str, Any]]) -> None:
    """Replace the payloads of jobs (a password job's secret leaves when the job settles)."""
    for pk, payload in payloads.items():
        conn.execute(update(jobs).where(jobs.c.pk == pk).values(payload=payload))


def set_password_digest(conn: Connection, resource_id: str, digest: str) -> bool:
    """Note in a user's record that its entry got a password; False without a record."""
    query = (
        update(ldap_entries)
        .where(ldap_entries.c.resource_id == resource_id)
        .values(password_digest=digest)
    )
    return bool(conn.execute(query).rowcount)


# -- whole-directory reads, for reconcile ---------------------------------------------------------


def all_users(conn: Connection) -> Iterator[UserRow]:
    """Yield every user."""
    for row in conn.execute(_USER.order_by(users.c.pk)):
        yield UserRow(row.id, row.doc, row.status, row.password_hash)


def all_groups(conn: Connection) -> Iterator[GroupRow]:
    """Yield every group."""
    for row in conn.execute(_GROUP.order_by(groups.c.pk)):
        yield GroupRow(row.pk, row.id, row.doc)


def all_memberships(conn: Connection) -> list[tuple[int, str, str]]:
    """Return every direct membership as (group pk, member id, member type)."""
    query = select(group_members.c.group_pk, group_members.c.member_id, group_members.c.member_type)
    return [(group_pk, member_id, kind) for group_pk, member_id, kind in conn.execute(query)]
