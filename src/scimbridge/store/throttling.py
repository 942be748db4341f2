"""Counts of requests the per-token rate limit refused, per minute, for the admin pages.

They share the ``rate_limits`` table with the login counters (keys ``throttled:<surface>:<token>``),
whose old windows the maintenance task already removes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy import func
from sqlalchemy import select

from .dialects import conflict_insert
from .tables import rate_limits
from .timestamps import to_db

_PREFIX = "throttled:"


def add_throttled(
    conn: Connection, surface: str, token_name: str, minute: datetime, amount: int
) -> None:
    """Add ``amount`` refused requests of a token to the count of ``minute``."""
    statement = conflict_insert(conn.dialect.name, rate_limits).values(
        key=f"{_PREFIX}{surface}:{token_name}"[:255], window_start=to_db(minute), count=amount
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[rate_limits.c.key, rate_limits.c.window_start],
            set_={"count": rate_limits.c.count + amount},
        )
    )


def recent_throttled(conn: Connection, since: datetime) -> dict[tuple[str, str], int]:
    """Return the refused requests counted since ``since``, by (surface, token name)."""
    rows = conn.execute(
        select(rate_limits.c.key, func.sum(rate_limits.c.count))
        .where(rate_limits.c.key.startswith(_PREFIX), rate_limits.c.window_start >= to_db(since))
        .group_by(rate_limits.c.key)
    )
    counts: dict[tuple[str, str], int] = {}
    for key, total in rows:
        surface, _, token_name = key.removeprefix(_PREFIX).partition(":")
        counts[(surface, token_name)] = int(total)
    return counts
