"""Bearer tokens, stored as SHA-256 digests; and the mark every revocation leaves."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from .database import Database
from .prepared import PreparedStatement
from .resources import DuplicateKey
from .tables import api_tokens
from .timestamps import from_db
from .timestamps import to_db


@dataclass
class TokenInfo:
    """What is known of a token, never the token itself."""

    name: str
    kind: str
    profile: str
    created: datetime
    last_used: datetime | None
    scopes: frozenset[str] = frozenset()
    """What a System API token may do (``users:read``…); empty for SCIM tokens."""


_TOKEN_COLUMNS = (
    api_tokens.c.name,
    api_tokens.c.kind,
    api_tokens.c.profile,
    api_tokens.c.created,
    api_tokens.c.last_used,
    api_tokens.c.scopes,
)
"""What a :class:`TokenInfo` is read from, in :func:`_info`'s order."""


def _info(row: Any) -> TokenInfo:
    """Read a :class:`TokenInfo` from a row of :data:`_TOKEN_COLUMNS` (any sequence)."""
    name, kind, profile, created, last_used, scopes = row
    return TokenInfo(
        name, kind, profile, from_db(created), from_db(last_used), frozenset((scopes or "").split())
    )


def insert_token(
    conn: Connection,
    name: str,
    token_hash: str,
    kind: str,
    profile: str,
    now: datetime,
    scopes: frozenset[str] = frozenset(),
) -> None:
    """Store a new token; raise DuplicateKey when the name is taken."""
    try:
        conn.execute(
            insert(api_tokens),
            {
                "name": name,
                "token_hash": token_hash,
                "kind": kind,
                "profile": profile,
                "scopes": " ".join(sorted(scopes)) or None,
                "created": to_db(now),
            },
        )
    except IntegrityError as exc:
        raise DuplicateKey(name) from exc


_FIND_TOKEN = PreparedStatement(
    select(*_TOKEN_COLUMNS).where(api_tokens.c.token_hash == bindparam("token_hash"))
)


def find_token(conn: Connection, token_hash: str) -> TokenInfo | None:
    """Return the token with this digest, if any."""
    row = _FIND_TOKEN.first(conn, {"token_hash": token_hash})
    return None if row is None else _info(row)


def touch_token(conn: Connection, name: str, now: datetime) -> None:
    """Record that a token was used."""
    conn.execute(update(api_tokens).where(api_tokens.c.name == name).values(last_used=to_db(now)))


def list_tokens(conn: Connection) -> list[TokenInfo]:
    """Return every token, oldest first."""
    rows = conn.execute(select(*_TOKEN_COLUMNS).order_by(api_tokens.c.pk))
    return [_info(row) for row in rows]


def delete_token(conn: Connection, name: str) -> bool:
    """Delete a token by name; return whether it existed."""
    return conn.execute(delete(api_tokens).where(api_tokens.c.name == name)).rowcount == 1


def revocation_mark_path(database: Database) -> str | None:
    """Return the file whose size counts the revocations of a SQLite file database.

    Every process serving one SQLite file runs on the same machine, so a file beside it is
    a sign they all see at the cost of a ``stat``: a process that trusts tokens it checked
    earlier compares the mark before each use, and reads the database again once it moved.
    PostgreSQL (and an in-memory SQLite) has no such file: None, check the database.
    """
    url = database.url
    if database.dialect != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return url.database + ".token-revocations"


def revocation_mark(path: str) -> int:
    """Return the mark (how many revocations the file has counted; 0 before the first)."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def leave_revocation_mark(path: str) -> None:
    """Count one revocation, after its transaction committed.

    One byte appended: the size only grows, and appends from several processes never
    overwrite each other (a timestamp could stay the same within a clock tick).
    """
    with open(path, "ab") as mark:
        mark.write(b"\n")
