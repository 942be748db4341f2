"""Idempotency keys: a retried System API request gets the first answer instead of acting twice.

A key belongs to one token. The first request with a key reserves it, acts, then keeps its
answer; a repeat with the same request gets that answer back, a different request with the
same key is refused. The reservation and the answer are separate transactions from the
action itself (which belongs to the lifecycle service): should a process die between acting
and keeping the answer, a retry after ``stale_after`` acts again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from ...store import idempotency as key_store
from ...store.database import Database


class IdempotencyKeyReused(Exception):
    """The key was used before with a different request."""


class IdempotencyKeyInProgress(Exception):
    """The first request with this key is still being answered."""


@dataclass
class Replay:
    """The answer kept from the first request with a key."""

    status: int
    body: Any
    headers: dict[str, str]


class IdempotencyKeys:
    """Reserve keys, keep answers, replay them."""

    def __init__(
        self,
        database: Database,
        *,
        keep_for: timedelta = timedelta(hours=24),
        stale_after: timedelta = timedelta(minutes=5),
    ) -> None:
        self.database = database
        self.keep_for = keep_for
        self.stale_after = stale_after

    def begin(self, token_name: str, key: str, request_hash: str) -> Replay | None:
        """Reserve ``key`` for this request (None: go on and act) or return the kept answer.

        Raises IdempotencyKeyReused for another request, IdempotencyKeyInProgress while the
        first one is still running.
        """
        now = datetime.now(UTC)
        with self.database.write() as conn:
            key_store.forget_before(conn, now - self.keep_for)
            stored = key_store.claim(conn, token_name, key, request_hash, now)
            if stored is None:
                return None
            if stored.request_hash != request_hash:
                raise IdempotencyKeyReused(key)
            if stored.status != key_store.IN_PROGRESS:
                return Replay(stored.status, stored.body, stored.headers)
            if now - stored.created < self.stale_after:
                raise IdempotencyKeyInProgress(key)
            key_store.take_over(conn, token_name, key, request_hash, now)
            return None

    def finish(
        self, token_name: str, key: str, status: int, body: Any, headers: dict[str, str]
    ) -> None:
        """Keep the answer of a reserved key."""
        with self.database.write() as conn:
            key_store.record(conn, token_name, key, status, body, headers)

    def abandon(self, token_name: str, key: str) -> None:
        """Drop a reservation whose request kept no answer (it failed before acting)."""
        with self.database.write() as conn:
            key_store.release(conn, token_name, key)
