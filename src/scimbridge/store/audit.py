"""The audit trail table: append and query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import Connection
from sqlalchemy import Select
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select

from .prepared import PreparedStatement
from .tables import audit_events
from .tables import users
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


@dataclass(frozen=True)
class AuditCriteria:
    """Which events to find; None matches every event.

    ``actor`` matches the actor's id or name, ``target`` the target's id or name (a deleted
    user's events stay findable by the address they had). With ``actor_key`` /
    ``target_key`` (the comparison form of a login) they also match every event of the user
    who has that login now, and of any user recorded under that name then: a user's events
    are found whatever their address was at the time.
    """

    target_id: str | None = None
    target: str | None = None
    target_key: str | None = None
    actor: str | None = None
    actor_key: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _ids_of_user(key: str) -> Select[Any]:
    return select(users.c.id).where(
        (users.c.user_name_key == key) | (users.c.primary_email_key == key)
    )


def _conditions(criteria: AuditCriteria) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if criteria.target_id is not None:
        conditions.append(audit_events.c.target_id == criteria.target_id)
    if criteria.target is not None:
        target = criteria.target
        match = (audit_events.c.target_id == target) | (audit_events.c.target_name == target)
        if criteria.target_key is not None:
            named_then = select(audit_events.c.target_id).where(
                audit_events.c.target_name == target, audit_events.c.target_id.is_not(None)
            )
            match = (
                match
                | audit_events.c.target_id.in_(_ids_of_user(criteria.target_key))
                | audit_events.c.target_id.in_(named_then)
            )
        conditions.append(match)
    if criteria.actor is not None:
        actor = criteria.actor
        match = (audit_events.c.actor_id == actor) | (audit_events.c.actor_name == actor)
        if criteria.actor_key is not None:
            match = match | audit_events.c.actor_id.in_(_ids_of_user(criteria.actor_key))
        conditions.append(match)
    if criteria.action is not None:
        conditions.append(audit_events.c.action == criteria.action)
    if criteria.since is not None:
        conditions.append(audit_events.c.at >= to_db(criteria.since))
    if criteria.until is not None:
        conditions.append(audit_events.c.at < to_db(criteria.until))
    return conditions


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
    target_key: str | None = None,
    actor_key: str | None = None,
) -> tuple[int, list[AuditEvent]]:
    """Return the number of matching events and one page of them, newest first.

    The filters are those of :class:`AuditCriteria`. ``before_pk`` pages by key: the page
    starts after (older than) that event, and the number still counts every match.
    """
    criteria = AuditCriteria(target_id, target, target_key, actor, actor_key, action, since, until)
    conditions = _conditions(criteria)
    total = conn.execute(
        select(func.count()).select_from(audit_events).where(*conditions)
    ).scalar_one()
    return total, _events(conn, conditions, before_pk, offset, limit)


def events_before(
    conn: Connection, criteria: AuditCriteria, before_pk: int | None, limit: int
) -> list[AuditEvent]:
    """Return up to ``limit`` matching events older than ``before_pk``, newest first, uncounted.

    Paging by key costs the same on the last page as on the first: an export walks every
    match this way.
    """
    return _events(conn, _conditions(criteria), before_pk, 0, limit)


def _events(
    conn: Connection,
    conditions: list[ColumnElement[bool]],
    before_pk: int | None,
    offset: int,
    limit: int,
) -> list[AuditEvent]:
    if before_pk is not None:
        conditions = [*conditions, audit_events.c.pk < before_pk]
    rows = conn.execute(
        select(audit_events)
        .where(*conditions)
        .order_by(audit_events.c.pk.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return [
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
