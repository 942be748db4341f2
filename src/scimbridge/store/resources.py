"""Queries on users, groups and memberships. Each function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement
from sqlalchemy import Connection
from sqlalchemy import Integer
from sqlalchemy import Row
from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy import bindparam
from sqlalchemy import case
from sqlalchemy import cast
from sqlalchemy import delete
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import literal
from sqlalchemy import literal_column
from sqlalchemy import select
from sqlalchemy import true
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from ..domain.paging import PagePosition
from ..domain.resources import Membership
from ..domain.resources import StoredResource
from . import keyset
from .dialects import conflict_insert
from .filters import user_name_eq_where
from .keyset import SortKey
from .prepared import PreparedStatement
from .tables import group_members
from .tables import groups
from .tables import user_emails
from .tables import users
from .timestamps import from_db
from .timestamps import to_db


class DuplicateKey(Exception):
    """A unique column already holds the value written."""


@dataclass
class UserColumns:
    """The indexed columns of a user, extracted from its SCIM representation."""

    user_name: str
    user_name_key: str
    external_id: str | None
    display_name: str | None
    display_name_key: str | None
    active: bool
    emails: list[dict[str, Any]]
    """One dict per email: value, value_key, type, primary, display."""

    @property
    def primary_email_key(self) -> str | None:
        """The primary email's key, or the first one's when none is marked primary."""
        chosen = next((e for e in self.emails if e["primary"]), None)
        chosen = chosen or (self.emails[0] if self.emails else None)
        return chosen["value_key"] if chosen else None


@dataclass
class GroupColumns:
    """The indexed columns of a group."""

    display_name: str
    display_name_key: str
    external_id: str | None


def _record(row: Sequence[Any], resource_type: str) -> StoredResource:
    """Build a resource from a row of ``_record_columns(resource_type)``, in that order."""
    pk, resource_id, doc, created, last_modified, version, *lifecycle = row
    status, password_change_required, last_login = lifecycle or (None, False, None)
    return StoredResource(
        status=status,
        password_change_required=bool(password_change_required),
        last_login=from_db(last_login),
        pk=pk,
        id=resource_id,
        resource_type=resource_type,
        doc=doc,
        created=from_db(created),
        last_modified=from_db(last_modified),
        version=version,
    )


def _table(resource_type: str) -> Table:
    return users if resource_type == "User" else groups


_COMMON_COLUMNS = ("pk", "id", "doc", "created", "last_modified", "version")
_LIFECYCLE_COLUMNS = ("status", "password_change_required", "last_login")


def _record_columns(resource_type: str) -> list[Any]:
    """Return the columns a stored resource is read from (users carry their lifecycle too)."""
    table = _table(resource_type)
    names = _COMMON_COLUMNS + (_LIFECYCLE_COLUMNS if resource_type == "User" else ())
    return [table.c[name] for name in names]


# -- users ---------------------------------------------------------------------------------


def insert_user(
    conn: Connection,
    resource_id: str,
    columns: UserColumns,
    doc: dict[str, Any],
    password_hash: str | None,
    now: datetime,
    *,
    status: str = "active",
    password_change_required: bool = False,
) -> StoredResource:
    """Insert a user; raise DuplicateKey when its userName is taken."""
    try:
        pk = _INSERT_USER.scalar(
            conn,
            {
                "id": resource_id,
                "user_name": columns.user_name,
                "user_name_key": columns.user_name_key,
                "external_id": columns.external_id,
                "display_name": columns.display_name,
                "display_name_key": columns.display_name_key,
                "primary_email_key": columns.primary_email_key,
                "active": columns.active,
                "password_hash": password_hash,
                "status": status,
                "password_change_required": password_change_required,
                "created": to_db(now),
                "last_modified": to_db(now),
                "version": 1,
                "doc": doc,
            },
        )
    except IntegrityError as exc:
        raise DuplicateKey(str(exc.orig)) from exc
    _write_emails(conn, pk, columns.emails)
    return StoredResource(
        pk,
        resource_id,
        "User",
        doc,
        now,
        now,
        1,
        status=status,
        password_change_required=password_change_required,
    )


def _write_emails(conn: Connection, user_pk: int, emails: list[dict[str, Any]]) -> None:
    if emails:
        _INSERT_EMAIL.execute_many(
            conn,
            [{"user_pk": user_pk, "position": i, **email} for i, email in enumerate(emails)],
        )


# Only the columns a write changes are SET: SQLite rewrites the index entries of every column
# an UPDATE names, changed or not, and each such entry dirties a page that the commit writes to
# the log and syncs. Compiled with the names given (``column_keys``), this statement SETs
# exactly the parameters passed besides ``at_pk`` and ``at_version``.
_UPDATE_USER = PreparedStatement(
    update(users).where(
        users.c.pk == bindparam("at_pk"), users.c.version == bindparam("at_version")
    )
)
_DELETE_EMAILS = PreparedStatement(
    delete(user_emails).where(user_emails.c.user_pk == bindparam("user_pk"))
)
_INSERT_USER = PreparedStatement(insert(users).returning(users.c.pk))
_INSERT_EMAIL = PreparedStatement(insert(user_emails))


def update_user(
    conn: Connection,
    record: StoredResource,
    columns: UserColumns,
    doc: dict[str, Any],
    password_hash: str | None,
    now: datetime,
    *,
    status: str | None = None,
) -> StoredResource:
    """Write a new version of a user read in this transaction.

    The version check in the WHERE clause makes a concurrent writer that read the same version
    lose instead of overwriting silently. ``status``, when given, is the user's new lifecycle
    state, written in the same statement (the returned record keeps the one read).
    """
    before = record.doc
    values: dict[str, Any] = {}
    # Each indexed column follows one attribute of the document (see user_columns): it is
    # written when that attribute changed.
    if before.get("userName") != doc.get("userName"):
        values["user_name"] = columns.user_name
        values["user_name_key"] = columns.user_name_key
    if before.get("externalId") != doc.get("externalId"):
        values["external_id"] = columns.external_id
    if before.get("displayName") != doc.get("displayName"):
        values["display_name"] = columns.display_name
        values["display_name_key"] = columns.display_name_key
    emails_changed = before.get("emails") != doc.get("emails")
    if emails_changed:
        values["primary_email_key"] = columns.primary_email_key
    if (before.get("active") is not False) != columns.active:
        values["active"] = columns.active
    values["last_modified"] = to_db(now)
    values["version"] = record.version + 1
    values["doc"] = doc
    if password_hash is not None:
        values["password_hash"] = password_hash
    if status is not None:
        values["status"] = status
    try:
        changed = _UPDATE_USER.execute(
            conn, {**values, "at_pk": record.pk, "at_version": record.version}
        )
    except IntegrityError as exc:
        raise DuplicateKey(str(exc.orig)) from exc
    if changed != 1:
        raise ConcurrentUpdate(record.id)
    # The email rows only change with the document's emails; most writes (active=false,
    # a new title) leave them alone.
    if emails_changed:
        _DELETE_EMAILS.execute(conn, {"user_pk": record.pk})
        _write_emails(conn, record.pk, columns.emails)
    return StoredResource(
        record.pk,
        record.id,
        "User",
        doc,
        record.created,
        now,
        record.version + 1,
        status=record.status,
        password_change_required=record.password_change_required,
        last_login=record.last_login,
    )


class ConcurrentUpdate(Exception):
    """The resource changed between the read and the write of one transaction."""


# The statements of the hot paths are built once: SQLAlchemy then reuses their compiled form,
# which saves most of the per-request cost of building a query.
_GET = {
    resource_type: select(*_record_columns(resource_type)).where(
        table.c.id == bindparam("resource_id")
    )
    for resource_type, table in (("User", users), ("Group", groups))
}
_PREPARED_GET = {
    (resource_type, for_update): PreparedStatement(query.with_for_update() if for_update else query)
    for resource_type, query in _GET.items()
    for for_update in (False, True)
}
_DELETE = {
    resource_type: PreparedStatement(delete(table).where(table.c.pk == bindparam("pk")))
    for resource_type, table in (("User", users), ("Group", groups))
}
_DELETE_MEMBERSHIPS_OF = PreparedStatement(
    delete(group_members).where(group_members.c.member_id == bindparam("member_id"))
)


def get(
    conn: Connection, resource_type: str, resource_id: str, *, for_update: bool = False
) -> StoredResource | None:
    """Read one user or group by id (locking its row on PostgreSQL when ``for_update``)."""
    locking = for_update and conn.dialect.name == "postgresql"
    row = _PREPARED_GET[resource_type, locking].first(conn, {"resource_id": resource_id})
    return _record(row, resource_type) if row else None


_GET_USER_AND_WHETHER_GROUPED = PreparedStatement(
    select(
        *_record_columns("User"),
        exists().where(group_members.c.member_id == users.c.id).label("grouped"),
    ).where(users.c.id == bindparam("resource_id"))
)


def get_with_memberships(
    conn: Connection, resource_type: str, resource_id: str
) -> StoredResource | None:
    """Read one user with its groups, or one group with its members.

    A user's row says whether any group names it, so the groups query (a recursive one,
    for nested groups) runs only for users who belong to some group.
    """
    if resource_type == "Group":
        record = get(conn, "Group", resource_id)
        if record is not None:
            load_members(conn, [record])
        return record
    row = _GET_USER_AND_WHETHER_GROUPED.first(conn, {"resource_id": resource_id})
    if row is None:
        return None
    record = _record(row[:-1], "User")
    if row[-1]:
        load_groups_of(conn, [record])
    else:
        record.memberships = []
    return record


def _deleted_and_whether_grouped(table: Table, name: Any) -> PreparedStatement:
    """Delete a user or group by id, returning its name and whether any group names it."""
    # On SQLite the RETURNING clause names columns without their table, so the subquery
    # reads "member_id = id": group_members has no ``id`` column, so ``id`` is the deleted
    # row's (tests/test_scim_delete.py deletes members of groups on both databases).
    grouped = exists().where(group_members.c.member_id == table.c.id)
    return PreparedStatement(
        delete(table).where(table.c.id == bindparam("resource_id")).returning(name, grouped)
    )


_DELETE_BY_ID = {
    "User": _deleted_and_whether_grouped(users, users.c.user_name),
    "Group": _deleted_and_whether_grouped(groups, groups.c.display_name),
}


def delete_by_id(conn: Connection, resource_type: str, resource_id: str) -> str | None:
    """Delete a user or group and every membership naming it.

    The memberships are deleted by a second statement only when the row said there are
    some: most deleted users belong to no group.

    :returns: the userName or displayName it had, or None when there was no such resource.
    """
    row = _DELETE_BY_ID[resource_type].first(conn, {"resource_id": resource_id})
    if row is None:
        return None
    name, grouped = row
    if grouped:
        _DELETE_MEMBERSHIPS_OF.execute(conn, {"member_id": resource_id})
    return str(name)


def delete_resource(conn: Connection, record: StoredResource) -> None:
    """Delete a user or group and every membership naming it."""
    _DELETE_MEMBERSHIPS_OF.execute(conn, {"member_id": record.id})
    _DELETE[record.resource_type].execute(conn, {"pk": record.pk})


_USER_NAME_PAGE = PreparedStatement(
    select(*_record_columns("User"))
    .where(user_name_eq_where(bindparam("user_name_key", type_=String())))
    .order_by(users.c.pk)
    .limit(bindparam("limit", type_=Integer()))
)
_USER_NAME_COUNT = PreparedStatement(
    select(func.count())
    .select_from(users)
    .where(user_name_eq_where(bindparam("user_name_key", type_=String())))
)


def search_user_name(conn: Connection, key: str, limit: int) -> tuple[int, list[StoredResource]]:
    """Return what :func:`search` does for ``userName eq`` (``key``: see ``user_name_eq_key``).

    The same statements with the filter's clause, compiled once: the lookup identity
    providers make before every create spares building and compiling them.
    """
    rows = _USER_NAME_PAGE.all(conn, {"user_name_key": key, "limit": limit}) if limit > 0 else []
    if len(rows) < limit:
        total = len(rows)
    else:
        total = int(_USER_NAME_COUNT.scalar(conn, {"user_name_key": key}))
    return total, [_record(row, "User") for row in rows]


def search(
    conn: Connection,
    resource_type: str,
    where: ColumnElement[bool] | None,
    order_by: Sequence[ColumnElement[Any]],
    offset: int,
    limit: int,
) -> tuple[int, list[StoredResource]]:
    """Return the number of matches and one page of them."""
    table = _table(resource_type)
    count_query = select(func.count()).select_from(table)
    page_query = select(*_record_columns(resource_type))
    if where is not None:
        count_query = count_query.where(where)
        page_query = page_query.where(where)
    rows: Sequence[Row[Any]] = []
    if limit > 0:
        rows = conn.execute(
            page_query.order_by(*order_by, table.c.pk).offset(offset).limit(limit)
        ).all()
    if offset == 0 and len(rows) < limit:
        # A first page that is not full holds every match: no need to count them. This
        # spares a query on the lookups identity providers make all day (userName eq "…").
        total = len(rows)
    else:
        total = conn.execute(count_query).scalar_one()
    return total, [_record(row, resource_type) for row in rows]


def search_after(
    conn: Connection,
    resource_type: str,
    where: ColumnElement[bool] | None,
    sort: SortKey | None,
    position: PagePosition,
    limit: int,
) -> tuple[int, list[tuple[StoredResource, Any]]]:
    """Return the number of matches and up to ``limit`` of them from ``position`` on.

    Each match comes with its sort value, from which the next position is made. A backward
    position returns the rows nearest to it first (the caller puts them back in order).
    """
    table = _table(resource_type)
    sort_value = sort.expr if sort is not None else literal(None)
    page_query = select(*_record_columns(resource_type), sort_value.label("sort_value"))
    count_query = select(func.count()).select_from(table)
    if where is not None:
        count_query = count_query.where(where)
        page_query = page_query.where(where)
    if not position.start:
        page_query = page_query.where(keyset.beyond(sort, table.c.pk, position))
    page_query = page_query.order_by(
        *keyset.page_order(sort, table.c.pk, backward=position.backward)
    )
    rows = conn.execute(page_query.limit(limit)).all() if limit > 0 else []
    if position.start and len(rows) < limit:
        total = len(rows)
    else:
        total = conn.execute(count_query).scalar_one()
    return total, [(_record(row[:-1], resource_type), row[-1]) for row in rows]


def user_name_taken(conn: Connection, user_name_key: str, except_id: str | None = None) -> bool:
    """Whether another user holds this userName (compared by key)."""
    query = select(users.c.id).where(users.c.user_name_key == user_name_key)
    found = conn.execute(query).scalar()
    return found is not None and found != except_id


def group_name_taken(conn: Connection, name_key: str, except_id: str | None = None) -> bool:
    """Whether another group holds this displayName (compared by key)."""
    query = select(groups.c.id).where(groups.c.display_name_key == name_key)
    found = conn.execute(query).scalar()
    return found is not None and found != except_id


# -- groups ----------------------------------------------------------------------------------


def insert_group(
    conn: Connection,
    resource_id: str,
    columns: GroupColumns,
    doc: dict[str, Any],
    now: datetime,
) -> StoredResource:
    """Insert a group; raise DuplicateKey when its displayName is taken."""
    try:
        pk = conn.execute(
            insert(groups).returning(groups.c.pk),
            {
                "id": resource_id,
                "display_name": columns.display_name,
                "display_name_key": columns.display_name_key,
                "external_id": columns.external_id,
                "created": to_db(now),
                "last_modified": to_db(now),
                "version": 1,
                "doc": doc,
            },
        ).scalar_one()
    except IntegrityError as exc:
        raise DuplicateKey(str(exc.orig)) from exc
    return StoredResource(pk, resource_id, "Group", doc, now, now, 1)


_BUMP_GROUP = PreparedStatement(
    update(groups)
    .where(groups.c.pk == bindparam("at_pk"), groups.c.version == bindparam("old_version"))
    .values(last_modified=bindparam("last_modified"), version=bindparam("new_version"))
)


def update_group(
    conn: Connection,
    record: StoredResource,
    columns: GroupColumns | None,
    doc: dict[str, Any] | None,
    now: datetime,
) -> StoredResource:
    """Write a new version of a group; ``columns``/``doc`` None keeps them (member change)."""
    if columns is None or doc is None:
        # A member change: only the version and the modification time move.
        bumped = _BUMP_GROUP.execute(
            conn,
            {
                "at_pk": record.pk,
                "old_version": record.version,
                "last_modified": to_db(now),
                "new_version": record.version + 1,
            },
        )
        if bumped != 1:
            raise ConcurrentUpdate(record.id)
        return StoredResource(
            record.pk, record.id, "Group", record.doc, record.created, now, record.version + 1
        )
    values: dict[str, Any] = {
        "last_modified": to_db(now),
        "version": record.version + 1,
    }
    if columns is not None and doc is not None:
        values.update(
            display_name=columns.display_name,
            display_name_key=columns.display_name_key,
            external_id=columns.external_id,
            doc=doc,
        )
    try:
        result = conn.execute(
            update(groups)
            .where(groups.c.pk == record.pk, groups.c.version == record.version)
            .values(**values)
        )
    except IntegrityError as exc:
        raise DuplicateKey(str(exc.orig)) from exc
    if result.rowcount != 1:
        raise ConcurrentUpdate(record.id)
    return StoredResource(
        record.pk,
        record.id,
        "Group",
        doc if doc is not None else record.doc,
        record.created,
        now,
        record.version + 1,
    )


def _ids_given(dialect_name: str) -> Any:
    """Return the rows of ids sent as one JSON array parameter, ``ids``, as column ``value``.

    One parameter whatever the number of ids: the statement is compiled once and stays
    under the databases' bound-parameter limits, where an ``IN`` list would be rebuilt for
    every length.
    """
    given = bindparam("ids", type_=String())
    if dialect_name == "postgresql":
        return func.jsonb_array_elements_text(cast(given, JSONB)).table_valued("value")
    return func.json_each(given).table_valued("value")


def _resource_types_statement(dialect_name: str) -> PreparedStatement:
    """Each id given with ``User``, ``Group`` or NULL (neither), in one pass over the ids.

    The groups table is looked at only for ids that name no user: a member PATCH names
    mostly users, and runs this holding the writer lock.
    """
    given = _ids_given(dialect_name)
    resource_type = case(
        (exists().where(users.c.id == given.c.value), literal("User")),
        (exists().where(groups.c.id == given.c.value), literal("Group")),
    )
    return PreparedStatement(select(given.c.value, resource_type))


_RESOURCE_TYPES = {name: _resource_types_statement(name) for name in ("sqlite", "postgresql")}


def resource_types_of(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    """Map each id that names an existing user or group to ``User`` or ``Group``."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = _RESOURCE_TYPES[conn.dialect.name].all(conn, {"ids": orjson.dumps(wanted).decode()})
    return {resource_id: kind for resource_id, kind in rows if kind is not None}


def _add_members_sqlite() -> PreparedStatement:
    """Insert every member row, sent as one JSON array of ``[id, type, display]``, at once.

    One statement rather than one per member: a PATCH adding a hundred members holds the
    writer lock for about half as long. SQLite counts the rows it really added (the rest
    already were members), so no RETURNING is needed.
    """
    given = func.json_each(bindparam("members", type_=String())).table_valued("value")
    rows = select(
        bindparam("group_pk", type_=Integer()),
        func.json_extract(given.c.value, "$[0]"),
        func.json_extract(given.c.value, "$[1]"),
        func.json_extract(given.c.value, "$[2]"),
    ).where(true())  # SQLite reads "SELECT … ON CONFLICT" as a join without a WHERE
    statement = conflict_insert("sqlite", group_members).from_select(
        ["group_pk", "member_id", "member_type", "display"], rows
    )
    return PreparedStatement(statement.on_conflict_do_nothing())


_ADD_MEMBERS_SQLITE = _add_members_sqlite()


def add_members(
    conn: Connection,
    group_pk: int,
    members: dict[str, str],
    displays: dict[str, str] | None = None,
) -> int:
    """Add members (id → type), ignoring those already there; return how many were new."""
    if not members:
        return 0
    displays = displays or {}
    if conn.dialect.name == "sqlite":
        given = [
            [member_id, member_type, displays.get(member_id)]
            for member_id, member_type in members.items()
        ]
        return _ADD_MEMBERS_SQLITE.execute(
            conn, {"group_pk": group_pk, "members": orjson.dumps(given).decode()}
        )
    rows = [
        {
            "group_pk": group_pk,
            "member_id": member_id,
            "member_type": member_type,
            "display": displays.get(member_id),
        }
        for member_id, member_type in members.items()
    ]
    # psycopg reports no rowcount for an INSERT (-1): count the rows it returns.
    statement = conflict_insert(conn.dialect.name, group_members).on_conflict_do_nothing()
    result = conn.execute(statement.returning(group_members.c.member_id), rows)
    return len(result.all())


def remove_members(conn: Connection, group_pk: int, member_ids: Iterable[str] | None) -> int:
    """Remove the named members, or every member when ``member_ids`` is None."""
    query = delete(group_members).where(group_members.c.group_pk == group_pk)
    if member_ids is None:
        return conn.execute(query).rowcount
    wanted = list(set(member_ids))
    removed = 0
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        removed += conn.execute(query.where(group_members.c.member_id.in_(chunk))).rowcount
    return removed


def members_matching(conn: Connection, group_pk: int, predicate: ColumnElement[bool]) -> list[str]:
    """Return the ids of the members of a group that satisfy a compiled member filter."""
    query = select(group_members.c.member_id).where(group_members.c.group_pk == group_pk, predicate)
    return list(conn.execute(query).scalars())


member_user = users.alias("member_user")
"""The users table as a group's member rows join it (``member_user.c.id == member_id``)."""
_member_group = groups.alias("member_group")


def member_display() -> Any:
    """Return the display name of a member row joined to :data:`member_user`.

    The name the client sent with the member, else the user's displayName or userName, else
    the nested group's displayName. The group's name is a correlated subquery rather than a
    second outer join: COALESCE stops at its first non-NULL argument on both databases, so
    the groups table is read only for members that are no user.
    """
    group_name = (
        select(_member_group.c.display_name)
        .where(_member_group.c.id == group_members.c.member_id)
        .scalar_subquery()
    )
    return func.coalesce(
        group_members.c.display, member_user.c.display_name, member_user.c.user_name, group_name
    )


_MEMBERS_OF = (
    select(
        group_members.c.group_pk,
        group_members.c.member_id,
        group_members.c.member_type,
        member_display().label("display"),
    )
    .outerjoin(member_user, member_user.c.id == group_members.c.member_id)
    .where(group_members.c.group_pk.in_(bindparam("group_pks", expanding=True)))
    .order_by(group_members.c.group_pk, group_members.c.member_id)
)


def _groups_of_statement(*, one: bool) -> Any:
    """Every group each member belongs to, directly or through nested groups.

    A recursive query climbs from the direct memberships to the groups that contain those
    groups; UNION (not UNION ALL) drops repeated rows, which also ends membership cycles.
    ``one`` is for a single member (``member_id``), the others take a list (``member_ids``).
    """
    member_id = group_members.c.member_id
    climbed = (
        select(
            member_id.label("member_id"),
            group_members.c.group_pk.label("group_pk"),
            literal("direct").label("type"),
        )
        .where(
            member_id == bindparam("member_id")
            if one
            else member_id.in_(bindparam("member_ids", expanding=True))
        )
        .cte("memberships", recursive=True)
    )
    inner_group = groups.alias("inner_group")
    parent = group_members.alias("parent")
    climbed = climbed.union(
        select(climbed.c.member_id, parent.c.group_pk, literal("indirect"))
        .join(inner_group, inner_group.c.pk == climbed.c.group_pk)
        .join(parent, parent.c.member_id == inner_group.c.id)
    )
    return (
        select(
            climbed.c.member_id,
            groups.c.id,
            groups.c.display_name,
            # "direct" sorts before "indirect": a direct membership wins over a nested one.
            func.min(climbed.c.type).label("type"),
        )
        .join(groups, groups.c.pk == climbed.c.group_pk)
        .group_by(
            climbed.c.member_id, groups.c.id, groups.c.display_name, groups.c.display_name_key
        )
        .order_by(climbed.c.member_id, groups.c.display_name_key)
    )


_GROUPS_OF = _groups_of_statement(one=False)
# A single user's groups: every GET, PATCH and PUT of a user reads them.
_GROUPS_OF_ONE = PreparedStatement(_groups_of_statement(one=True))


def load_members(conn: Connection, records: Sequence[StoredResource]) -> None:
    """Fill ``memberships`` of groups with their members and display names."""
    if not records:
        return
    by_pk = {record.pk: record for record in records}
    for record in records:
        record.memberships = []
    # Fetched at once and unpacked as tuples: a group may hold tens of thousands of members.
    rows = conn.execute(_MEMBERS_OF, {"group_pks": list(by_pk)}).all()
    for group_pk, member_id, member_type, display in rows:
        memberships = by_pk[group_pk].memberships
        assert memberships is not None
        memberships.append(Membership(member_id, member_type, display))


def load_groups_of(conn: Connection, records: Sequence[StoredResource]) -> None:
    """Fill ``memberships`` of users with the groups they belong to, directly or not."""
    if not records:
        return
    by_id = {record.id: record for record in records}
    for record in records:
        record.memberships = []
    rows: Sequence[Sequence[Any]]
    if len(records) == 1:
        rows = _GROUPS_OF_ONE.all(conn, {"member_id": records[0].id})
    else:
        rows = conn.execute(_GROUPS_OF, {"member_ids": list(by_id)}).all()
    for member_id, group_id, display_name, kind in rows:
        memberships = by_id[member_id].memberships
        assert memberships is not None
        memberships.append(Membership(group_id, "Group", display_name, kind))


# -- roles ------------------------------------------------------------------------------------


@dataclass
class GroupRef:
    """A group as role rules see it."""

    pk: int
    id: str
    display_name: str
    external_id: str | None
    direct: bool
    """Whether the member belongs to it directly (not only through a nested group)."""


def groups_of_member(conn: Connection, member_id: str) -> list[GroupRef]:
    """Return every group a user (or group) belongs to, directly or through nested groups."""
    climbed = (
        # 1/0 rather than booleans: PostgreSQL has no max(boolean).
        select(group_members.c.group_pk.label("group_pk"), literal_column("1").label("direct"))
        .where(group_members.c.member_id == member_id)
        .cte("climbed", recursive=True)
    )
    inner_group = groups.alias("inner_group")
    parent = group_members.alias("parent")
    climbed = climbed.union(
        select(parent.c.group_pk, literal_column("0"))
        .select_from(climbed)
        .join(inner_group, inner_group.c.pk == climbed.c.group_pk)
        .join(parent, parent.c.member_id == inner_group.c.id)
    )
    rows = conn.execute(
        select(
            groups.c.pk,
            groups.c.id,
            groups.c.display_name,
            groups.c.external_id,
            func.max(climbed.c.direct).label("direct"),
        )
        .join(climbed, climbed.c.group_pk == groups.c.pk)
        .group_by(groups.c.pk, groups.c.id, groups.c.display_name, groups.c.external_id)
    ).all()
    return [
        GroupRef(row.pk, row.id, row.display_name, row.external_id, bool(row.direct))
        for row in rows
    ]


def group_by_name_or_external_id(
    conn: Connection, display_name_key: str | None, external_id: str | None
) -> StoredResource | None:
    """Return the group with this displayName key, or this externalId."""
    columns = _record_columns("Group")
    if display_name_key is not None:
        row = conn.execute(
            select(*columns).where(groups.c.display_name_key == display_name_key)
        ).first()
    else:
        row = conn.execute(select(*columns).where(groups.c.external_id == external_id)).first()
    return _record(row, "Group") if row else None
