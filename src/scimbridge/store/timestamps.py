"""Timestamps as the store keeps them: UTC wall time, without a zone.

Every timestamp column is written through :func:`to_db` and read back through
:func:`from_db`: SQLite hands a stored timestamp back without its zone. PostgreSQL sessions
run in UTC (see ``database._create_engine``), so it reads these naive values as UTC too.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import overload


def to_db(value: datetime) -> datetime:
    """Return the UTC wall time of an aware ``value``, the form the columns hold."""
    return value.astimezone(UTC).replace(tzinfo=None)


@overload
def from_db(value: datetime) -> datetime: ...


@overload
def from_db(value: None) -> None: ...


@overload
def from_db(value: datetime | None) -> datetime | None: ...


def from_db(value: datetime | None) -> datetime | None:
    """Return a timestamp read from a column as an aware UTC instant (None stays None)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
