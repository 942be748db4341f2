"""Deleting a user or group together with its memberships and its audit tombstone.

A SCIM DELETE without a precondition removes the row, every membership naming it and appends
the audit event that keeps its name. On PostgreSQL that is one statement (data-modifying
common table expressions), so one round trip to the server instead of three; SQLite has no
data-modifying CTEs, and there each statement is a call into the library, not a round trip.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy import String
from sqlalchemy import bindparam
from sqlalchemy import cast
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select

from .audit import append
from .prepared import PreparedStatement
from .resources import delete_by_id
from .tables import audit_events
from .tables import group_members
from .tables import groups
from .tables import users
from .timestamps import to_db

EVENT_COLUMNS = (
    "at",
    "actor_type",
    "actor_id",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "request_id",
    "client_address",
)
"""The tombstone's columns the caller gives; its target name and changes come from the row."""


def tombstone_changes(resource_id: str, name: str | None) -> dict[str, Any]:
    """Return the ``changes`` a deletion's audit event records."""
    return {"tombstone": {"id": resource_id, "name": name}}


def _in_one_statement(resource_type: str) -> PreparedStatement:
    table, name_column = (
        (users, users.c.user_name) if resource_type == "User" else (groups, groups.c.display_name)
    )
    resource_id = bindparam("resource_id", type_=String())
    gone = (
        delete(table)
        .where(table.c.id == resource_id)
        .returning(name_column.label("name"))
        .cte("gone")
    )
    gone_memberships = delete(group_members).where(group_members.c.member_id == resource_id)
    # Casts without a length: a cast to VARCHAR(n) would cut a long value where the
    # column refuses it, as the insert of the other databases does.
    given = [
        cast(bindparam(name), audit_events.c[name].type if name == "at" else String())
        for name in EVENT_COLUMNS
    ]
    changes = func.jsonb_build_object(
        "tombstone", func.jsonb_build_object("id", cast(resource_id, String()), "name", gone.c.name)
    )
    event = select(*given, gone.c.name, changes).select_from(gone)
    statement = (
        insert(audit_events)
        .from_select([*EVENT_COLUMNS, "target_name", "changes"], event)
        .returning(audit_events.c.target_name)
        .add_cte(gone_memberships.cte("gone_memberships"))
    )
    return PreparedStatement(statement)


_IN_ONE_STATEMENT = {kind: _in_one_statement(kind) for kind in ("User", "Group")}


def delete_with_tombstone(
    conn: Connection, resource_type: str, resource_id: str, event: dict[str, Any]
) -> str | None:
    """Delete a resource, the memberships naming it, and append its audit tombstone.

    ``event`` holds :data:`EVENT_COLUMNS`. Nothing is written when there is no such resource.

    :returns: the userName or displayName it had, or None when there was no such resource.
    """
    if conn.dialect.name == "postgresql":
        params = {**event, "at": to_db(event["at"]), "resource_id": resource_id}
        rows = _IN_ONE_STATEMENT[resource_type].all(conn, params)
        return str(rows[0][0]) if rows else None
    name = delete_by_id(conn, resource_type, resource_id)
    if name is not None:
        append(
            conn,
            {**event, "target_name": name, "changes": tombstone_changes(resource_id, name)},
        )
    return name
