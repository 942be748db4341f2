"""Idempotency keys of System API requests: the first answer, kept per token and key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update

from .dialects import conflict_insert
from .tables import idempotency_keys
from .timestamps import from_db
from .timestamps import to_db

IN_PROGRESS = 0
"""``status`` of a key whose first request is still being answered."""


@dataclass
class StoredAnswer:
    """What is kept of a request made with a key."""

    request_hash: str
    status: int
    body: Any
    headers: dict[str, str]
    created: datetime


def _key(token_name: str, key: str) -> Any:
    return (idempotency_keys.c.token_name == token_name) & (idempotency_keys.c.key == key)


def claim(
    conn: Connection, token_name: str, key: str, request_hash: str, now: datetime
) -> StoredAnswer | None:
    """Reserve a key for a new request; return what is stored when the key is already known.

    Concurrent claims of one key are settled by the primary key: exactly one inserts.
    """
    statement = conflict_insert(conn.dialect.name, idempotency_keys)
    inserted = conn.execute(
        statement.values(
            token_name=token_name,
            key=key,
            request_hash=request_hash,
            status=IN_PROGRESS,
            created=to_db(now),
        )
        .on_conflict_do_nothing(
            index_elements=[idempotency_keys.c.token_name, idempotency_keys.c.key]
        )
        # RETURNING rather than rowcount: drivers disagree on rowcount after ON CONFLICT.
        .returning(idempotency_keys.c.key)
    )
    if inserted.first() is not None:
        return None
    row = conn.execute(select(idempotency_keys).where(_key(token_name, key))).one()
    created = from_db(row.created)
    return StoredAnswer(row.request_hash, row.status, row.body, row.headers or {}, created)


def take_over(
    conn: Connection, token_name: str, key: str, request_hash: str, now: datetime
) -> None:
    """Reserve again a key whose first request never finished (its process died)."""
    conn.execute(
        update(idempotency_keys)
        .where(_key(token_name, key))
        .values(request_hash=request_hash, status=IN_PROGRESS, created=to_db(now))
    )


def record(
    conn: Connection,
    token_name: str,
    key: str,
    status: int,
    body: Any,
    headers: dict[str, str],
) -> None:
    """Keep the answer of a reserved key."""
    conn.execute(
        update(idempotency_keys)
        .where(_key(token_name, key))
        .values(status=status, body=body, headers=headers)
    )


def release(conn: Connection, token_name: str, key: str) -> None:
    """Forget a reservation whose request kept no answer, so that a retry acts again."""
    conn.execute(delete(idempotency_keys).where(_key(token_name, key)))


def forget_before(conn: Connection, before: datetime) -> int:
    """Drop keys older than ``before``; return how many."""
    return conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.created < to_db(before))
    ).rowcount
