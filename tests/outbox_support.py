"""Helpers for outbox tests: a clock the test moves, queueing and reading jobs."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from scimbridge.service.mail.queue import queue_email
from scimbridge.store import jobs as job_store
from scimbridge.store.database import Database
from scimbridge.store.jobs import JobInfo

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    """Time that only moves when the test says so."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def queue_invitation(
    database: Database,
    to: str,
    link: str,
    now: datetime = START,
    ordering_key: str | None = None,
) -> int:
    """Queue an invitation email the way the lifecycle service does, in its own transaction."""
    with database.write() as conn:
        return queue_email(
            conn,
            "invitation",
            to,
            {"name": "Ada Lovelace", "link": link, "expires": "2030-01-08T12:00+00:00"},
            now,
            ordering_key=ordering_key or f"user:{to}",
            secret_keys=("link",),
        )


def queue_job(
    database: Database, kind: str, ordering_key: str, payload: dict[str, Any], now: datetime
) -> int:
    with database.write() as conn:
        return job_store.enqueue(conn, kind, ordering_key, payload, now)


def job(database: Database, pk: int) -> JobInfo:
    with database.read() as conn:
        (found,) = [info for info in job_store.list_jobs(conn, limit=10_000) if info.pk == pk]
    return found


def payload(database: Database, pk: int) -> dict[str, Any]:
    from sqlalchemy import select

    from scimbridge.store.tables import jobs

    with database.read() as conn:
        value: dict[str, Any] = conn.execute(
            select(jobs.c.payload).where(jobs.c.pk == pk)
        ).scalar_one()
    return value
