"""Listings of the admin User Directory: the sorted users table, one group and its members.

Everything is filtered, sorted and paged in the database, so a page costs about the same with
a hundred users or a hundred thousand. A page is found in two steps: the keys of the page
(sorting only the key columns), then those rows in full.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import Connection
from sqlalchemy import func
from sqlalchemy import select

from ..domain.resources import StoredResource
from . import resources as store
from .directory_queries import GroupSummary
from .directory_queries import UserQuery
from .directory_queries import user_filter
from .tables import audit_events
from .tables import group_members
from .tables import groups
from .tables import users


class UserSort(StrEnum):
    """Columns the users table sorts by."""

    NAME = "name"
    EMAIL = "email"
    STATUS = "status"
    LAST_LOGIN = "last_login"
    CREATED = "created"


_SORT_COLUMNS: dict[UserSort, ColumnElement[Any]] = {
    UserSort.NAME: users.c.display_name_key,
    UserSort.EMAIL: users.c.primary_email_key,
    UserSort.STATUS: users.c.status,
    UserSort.LAST_LOGIN: users.c.last_login,
    UserSort.CREATED: users.c.pk,
}


def _user_order(sort: UserSort, descending: bool) -> list[ColumnElement[Any]]:
    column = _SORT_COLUMNS[sort]
    # Users without the value (no name yet, never logged in) come last either way: they are
    # the least interesting rows of a sorted table. The key breaks ties in the same direction.
    return [
        column.is_(None),
        column.desc() if descending else column.asc(),
        users.c.pk.desc() if descending else users.c.pk.asc(),
    ]


def users_page(
    conn: Connection,
    query: UserQuery,
    sort: UserSort,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[StoredResource]]:
    """Return how many users match and one sorted page of them."""
    where = user_filter(query)
    keys = list(
        conn.execute(
            select(users.c.pk)
            .where(where)
            .order_by(*_user_order(sort, descending))
            .offset(offset)
            .limit(limit)
        ).scalars()
    )
    if offset == 0 and len(keys) < limit:
        total = len(keys)
    else:
        total = int(conn.execute(select(func.count()).select_from(users).where(where)).scalar_one())
    if not keys:
        return total, []
    _, records = store.search(conn, "User", users.c.pk.in_(keys), (), 0, len(keys) + 1)
    position = {pk: index for index, pk in enumerate(keys)}
    records.sort(key=lambda record: position[record.pk])
    return total, records


def users_after(
    conn: Connection, query: UserQuery, after_pk: int | None, limit: int
) -> list[StoredResource]:
    """Return up to ``limit`` matching users created after ``after_pk``, oldest first.

    Paging by key, uncounted: an export walks every match at the same cost per chunk.
    """
    where = user_filter(query)
    if after_pk is not None:
        where = where & (users.c.pk > after_pk)
    keys = list(
        conn.execute(select(users.c.pk).where(where).order_by(users.c.pk).limit(limit)).scalars()
    )
    if not keys:
        return []
    _, records = store.search(conn, "User", users.c.pk.in_(keys), (), 0, len(keys) + 1)
    return sorted(records, key=lambda record: record.pk)


def display_names(conn: Connection, user_ids: Sequence[str]) -> dict[str, str]:
    """Return the display names of those of these users who have one, by id."""
    if not user_ids:
        return {}
    rows = conn.execute(
        select(users.c.id, users.c.display_name).where(
            users.c.id.in_(list(user_ids)), users.c.display_name.is_not(None)
        )
    )
    return {row.id: row.display_name for row in rows if row.display_name}


# -- groups --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupMember:
    """A direct member of a group: a user or a nested group."""

    id: str
    type: str
    """``User`` or ``Group``."""
    name: str | None
    """The user's display name or the group's displayName (None: the member is gone)."""
    email: str | None
    """A user's userName (their login, usually the email address)."""
    status: str | None


def group_summary(conn: Connection, group_id: str) -> GroupSummary | None:
    """Return one group with its direct member count, or None."""
    row = conn.execute(
        select(
            groups.c.pk,
            groups.c.id,
            groups.c.display_name,
            groups.c.external_id,
            select(func.count())
            .where(group_members.c.group_pk == groups.c.pk)
            .correlate(groups)
            .scalar_subquery()
            .label("member_count"),
        ).where(groups.c.id == group_id)
    ).first()
    if row is None:
        return None
    return GroupSummary(
        row.pk, row.id, row.display_name, row.external_id, int(row.member_count or 0)
    )


def group_members_page(
    conn: Connection, group_pk: int, offset: int, limit: int
) -> list[GroupMember]:
    """Return one page of a group's direct members: groups first, then users by name."""
    nested = groups.alias("nested")
    rows = conn.execute(
        select(
            group_members.c.member_id,
            group_members.c.member_type,
            func.coalesce(users.c.display_name, nested.c.display_name).label("name"),
            users.c.user_name,
            users.c.status,
        )
        .select_from(group_members)
        .outerjoin(users, users.c.id == group_members.c.member_id)
        .outerjoin(nested, nested.c.id == group_members.c.member_id)
        .where(group_members.c.group_pk == group_pk)
        .order_by(
            group_members.c.member_type,
            func.coalesce(users.c.display_name_key, users.c.user_name_key, nested.c.id),
            group_members.c.member_id,
        )
        .offset(offset)
        .limit(limit)
    )
    return [
        GroupMember(row.member_id, row.member_type, row.name, row.user_name, row.status)
        for row in rows
    ]


def groups_created_by_scim(conn: Connection, group_ids: Sequence[str]) -> set[str]:
    """Return which of these groups an identity provider created (through a SCIM token)."""
    if not group_ids:
        return set()
    rows = conn.execute(
        select(audit_events.c.target_id).where(
            audit_events.c.target_id.in_(list(group_ids)),
            audit_events.c.action == "group.created",
            audit_events.c.actor_type == "scim",
        )
    )
    return {row.target_id for row in rows}
