"""Counts of the RFC 7644 deviations each SCIM token's client has sent (see ``scim/quirks.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy import bindparam
from sqlalchemy import select

from .dialects import conflict_insert
from .prepared import PreparedStatement
from .tables import client_deviations
from .timestamps import from_db
from .timestamps import to_db


@dataclass(frozen=True)
class DeviationCount:
    """How many requests of one token met one deviation, and when."""

    token_name: str
    deviation: str
    tolerated: int
    """Requests whose deviation the token's profile accepted."""
    refused: int
    """Requests refused because the token's profile does not accept the deviation."""
    first_seen: datetime
    last_seen: datetime


def _upsert_count(dialect_name: str) -> PreparedStatement:
    """Add one request's hits to a (token, deviation) count, creating it the first time."""
    statement = conflict_insert(dialect_name, client_deviations).values(
        token_name=bindparam("token_name"),
        deviation=bindparam("deviation"),
        tolerated=bindparam("tolerated"),
        refused=bindparam("refused"),
        first_seen=bindparam("at"),
        last_seen=bindparam("at"),
    )
    return PreparedStatement(
        statement.on_conflict_do_update(
            index_elements=[client_deviations.c.token_name, client_deviations.c.deviation],
            set_={
                "tolerated": client_deviations.c.tolerated + statement.excluded.tolerated,
                "refused": client_deviations.c.refused + statement.excluded.refused,
                "last_seen": statement.excluded.last_seen,
            },
        )
    )


_UPSERT_COUNT = {dialect: _upsert_count(dialect) for dialect in ("postgresql", "sqlite")}


def count_deviations(
    conn: Connection,
    token_name: str,
    tolerated: Iterable[str],
    refused: Iterable[str],
    now: datetime,
) -> None:
    """Count one request of ``token_name`` against each deviation it met.

    One driver call for all of them: an Entra deactivation meets two on every PATCH.
    """
    outcomes = [(name, 1, 0) for name in tolerated] + [(name, 0, 1) for name in refused]
    at = to_db(now)
    _UPSERT_COUNT[conn.dialect.name].execute_many(
        conn,
        [
            {
                "token_name": token_name,
                "deviation": deviation,
                "tolerated": tolerated_hits,
                "refused": refused_hits,
                "at": at,
            }
            for deviation, tolerated_hits, refused_hits in outcomes
        ],
    )


def recent_deviations(conn: Connection, limit: int = 100) -> list[DeviationCount]:
    """Return the counts met most recently first."""
    rows = conn.execute(
        select(client_deviations)
        .order_by(client_deviations.c.last_seen.desc(), client_deviations.c.token_name)
        .limit(limit)
    )
    return [
        DeviationCount(
            token_name=row.token_name,
            deviation=row.deviation,
            tolerated=row.tolerated,
            refused=row.refused,
            first_seen=from_db(row.first_seen),
            last_seen=from_db(row.last_seen),
        )
        for row in rows
    ]
