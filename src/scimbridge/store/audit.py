"""The audit trail table: append and query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import Connection
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select

from .prepared import PreparedStatement
from .tables import audit_events
from .timestamps import from_db
from .timestamps import to_db


@dataclass
class AuditEvent:
    """One recorded change."""

    pk: int
    at: datetime
    actor_type: str
    actor_id: str | None
    actor_name: str | None
    action: str
    target_type: str | None
    target_id: str | None
    target_name: str | None
    changes: dict[str, Any] | None
    request_id: str | None
    client_address: str | None


_INSERT_EVENT = PreparedStatement(insert(audit_events))


def append(conn: Connection, event: dict[str, Any]) -> None:
    """Append one event (the keys are the table's columns, ``pk`` aside)."""
    at: datetime = event["at"]
    _INSERT_EVENT.execute(conn, {**event, "at": to_db(at)})


def query(
    conn: Connection,
    *,
    target_id: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
    before_pk: int | None = None,
) -> tuple[int, list[AuditEvent]]:
    """Return the number of matching events and one page of them, newest first.

    ``actor`` matches the actor's id or name, ``target`` the target's id or name (a deleted
    user's events stay findable by the address they had). ``before_pk`` pages by key: the
    page starts after (older than) that event, and the number still counts every match.
    """
    conditions: list[ColumnElement[bool]] = []
    if target_id is not None:
        conditions.append(audit_events.c.target_id == target_id)
    if target is not None:
        conditions.append(
            (audit_events.c.target_id == target) | (audit_events.c.target_name == target)
        )
    if actor is not None:
        conditions.append((audit_events.c.actor_id == actor) | (audit_events.c.actor_name == actor))
    if action is not None:
        conditions.append(audit_events.c.action == action)
    if since is not None:
        conditions.append(audit_events.c.at >= to_db(since))
    if until is not None:
        conditions.append(audit_events.c.at < to_db(until))
    total = conn.execute(
        select(func.count()).select_from(audit_events).where(*conditions)
    ).scalar_one()
    if before_pk is not None:
        conditions.append(audit_events.c.pk < before_pk)
    rows = conn.execute(
        select(audit_events)
        .where(*conditions)
        .order_by(audit_events.c.pk.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return total, [
        AuditEvent(
            pk=row.pk,
            at=from_db(row.at),
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            actor_name=row.actor_name,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            target_name=row.target_name,
            changes=row.changes,
            request_id=row.request_id,
            client_address=row.client_address,
        )
        for row in rows
    ]
