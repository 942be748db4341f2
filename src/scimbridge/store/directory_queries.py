"""Directory listings: users by state, role and text; groups with member counts; role facts.

Every filter runs in the database: a role is a question about group membership, asked with
recursive queries over ``group_members`` rather than by loading users to test them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import Connection
from sqlalchemy import Select
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import false
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import true

from ..domain.resources import StoredResource
from . import resources as store
from .lifecycle import RoleGrant
from .tables import group_members
from .tables import groups
from .tables import role_grants
from .tables import users
from .timestamps import from_db


@dataclass(frozen=True)
class GroupSelector:
    """Groups named by displayName comparison key or by externalId."""

    name_keys: frozenset[str] = frozenset()
    external_ids: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.name_keys or self.external_ids)


@dataclass(frozen=True)
class RoleCondition:
    """The users whose effective role is one role.

    A user holds the role when a ``granting`` group holds them (directly or through nested
    groups) and no ``outranking`` group does. For the default role, ``lower`` names the groups
    of the remaining roles: a user in none of them holds the default role too.
    """

    granting: GroupSelector
    outranking: GroupSelector
    lower: GroupSelector | None = None


@dataclass(frozen=True)
class UserQuery:
    """Filters of a user listing; None filters nothing."""

    status: str | None = None
    text_key: str | None = None
    """Comparison form (lower-cased) of a fragment of the userName, displayName or email."""
    role: RoleCondition | None = None


@dataclass
class GroupSummary:
    """A group as listings show it."""

    pk: int
    id: str
    display_name: str
    external_id: str | None
    member_count: int
    """Direct members (users and groups)."""


def _user_members_of(selector: GroupSelector, name: str) -> Select[Any]:
    """Ids of the users in the selected groups or in groups nested in them (any depth)."""
    chosen = select(groups.c.pk.label("pk")).where(
        or_(
            groups.c.display_name_key.in_(sorted(selector.name_keys)),
            groups.c.external_id.in_(sorted(selector.external_ids)),
        )
    )
    closure = chosen.cte(name, recursive=True)
    nested = groups.alias(f"{name}_nested")
    # UNION (not UNION ALL) drops groups already reached, which also ends membership cycles.
    closure = closure.union(
        select(nested.c.pk)
        .join(group_members, group_members.c.member_id == nested.c.id)
        .where(group_members.c.group_pk == closure.c.pk)
    )
    return select(group_members.c.member_id).where(
        group_members.c.group_pk.in_(select(closure.c.pk)),
        group_members.c.member_type == "User",
    )


def _role_clause(role: RoleCondition) -> ColumnElement[bool]:
    held: ColumnElement[bool] = (
        users.c.id.in_(_user_members_of(role.granting, "granting")) if role.granting else false()
    )
    if role.lower is not None:
        held = or_(
            held,
            ~users.c.id.in_(_user_members_of(role.lower, "lower")) if role.lower else true(),
        )
    if role.outranking:
        held = and_(held, ~users.c.id.in_(_user_members_of(role.outranking, "outranking")))
    return held


def user_filter(query: UserQuery) -> ColumnElement[bool]:
    """Return the WHERE clause of a user listing (also the admin UI's sorted users table)."""
    conditions: list[ColumnElement[bool]] = []
    if query.status is not None:
        conditions.append(users.c.status == query.status)
    if query.text_key:
        conditions.append(
            or_(
                users.c.user_name_key.contains(query.text_key, autoescape=True),
                users.c.display_name_key.contains(query.text_key, autoescape=True),
                users.c.primary_email_key.contains(query.text_key, autoescape=True),
            )
        )
    if query.role is not None:
        conditions.append(_role_clause(query.role))
    return and_(true(), *conditions)


def list_users(
    conn: Connection,
    query: UserQuery,
    *,
    after_pk: int | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[StoredResource]]:
    """Return how many users match and one page of them, oldest first.

    ``after_pk`` pages by key (the page starts after that user); ``offset`` skips matches.
    """
    where = user_filter(query)
    if after_pk is None:
        return store.search(conn, "User", where, (), offset, limit)
    total = int(conn.execute(select(func.count()).select_from(users).where(where)).scalar_one())
    _, page = store.search(conn, "User", and_(where, users.c.pk > after_pk), (), offset, limit)
    return total, page


def _granting_groups_statement() -> Any:
    """Every group (with its externalId) each user belongs to, directly or nested."""
    climbed = (
        select(
            group_members.c.member_id.label("member_id"),
            group_members.c.group_pk.label("group_pk"),
        )
        .where(group_members.c.member_id.in_(bindparam("member_ids", expanding=True)))
        .cte("climbed", recursive=True)
    )
    inner_group = groups.alias("inner_group")
    parent = group_members.alias("parent")
    climbed = climbed.union(
        select(climbed.c.member_id, parent.c.group_pk)
        .join(inner_group, inner_group.c.pk == climbed.c.group_pk)
        .join(parent, parent.c.member_id == inner_group.c.id)
    )
    return select(climbed.c.member_id, groups.c.display_name, groups.c.external_id).join(
        groups, groups.c.pk == climbed.c.group_pk
    )


_GROUPS_OF_MEMBERS = _granting_groups_statement()


def groups_of_users(
    conn: Connection, user_ids: Sequence[str]
) -> dict[str, list[tuple[str, str | None]]]:
    """Return (displayName, externalId) of every group each user belongs to, nested included."""
    found: dict[str, list[tuple[str, str | None]]] = {user_id: [] for user_id in user_ids}
    if not user_ids:
        return found
    for member_id, display_name, external_id in conn.execute(
        _GROUPS_OF_MEMBERS, {"member_ids": list(user_ids)}
    ):
        found[member_id].append((display_name, external_id))
    return found


def grants_of(conn: Connection, user_pks: Sequence[int]) -> dict[int, RoleGrant]:
    """Return the temporary role of each of these users that has one."""
    if not user_pks:
        return {}
    rows = conn.execute(select(role_grants).where(role_grants.c.user_pk.in_(list(user_pks))))
    return {
        row.user_pk: RoleGrant(
            row.user_pk, row.role, row.previous_role, from_db(row.expires), row.granted_by
        )
        for row in rows
    }


_MEMBER_COUNT = (
    select(func.count())
    .where(group_members.c.group_pk == groups.c.pk)
    .correlate(groups)
    .scalar_subquery()
)
_GROUP_SUMMARY_COLUMNS = (
    groups.c.pk,
    groups.c.id,
    groups.c.display_name,
    groups.c.external_id,
    _MEMBER_COUNT.label("member_count"),
)


def _summary(row: Any) -> GroupSummary:
    return GroupSummary(
        row.pk, row.id, row.display_name, row.external_id, int(row.member_count or 0)
    )


def list_groups(
    conn: Connection, *, after_pk: int | None = None, offset: int = 0, limit: int = 50
) -> tuple[int, list[GroupSummary]]:
    """Return how many groups there are and one page of them with member counts, oldest first."""
    total = int(conn.execute(select(func.count()).select_from(groups)).scalar_one())
    page = select(*_GROUP_SUMMARY_COLUMNS).order_by(groups.c.pk).offset(offset).limit(limit)
    if after_pk is not None:
        page = page.where(groups.c.pk > after_pk)
    return total, [_summary(row) for row in conn.execute(page)]


def groups_matching(conn: Connection, selector: GroupSelector) -> list[GroupSummary]:
    """Return the selected groups that exist, with member counts."""
    if not selector:
        return []
    rows = conn.execute(
        select(*_GROUP_SUMMARY_COLUMNS)
        .where(
            or_(
                groups.c.display_name_key.in_(sorted(selector.name_keys)),
                groups.c.external_id.in_(sorted(selector.external_ids)),
            )
        )
        .order_by(groups.c.pk)
    )
    return [_summary(row) for row in rows]
