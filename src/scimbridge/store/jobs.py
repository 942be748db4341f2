"""The outbox table: enqueue side effects in the caller's transaction; claim and settle them.

A job is ``queued``, then ``running`` while a worker holds it, then ``done``; a transient
failure makes it ``retrying`` until its next attempt, and a job that cannot succeed is parked
as ``failed`` (``scimbridge jobs retry`` queues it again). While a job is ``running``,
``available_at`` is the end of its worker's lease, which a live worker renews every few
seconds (:func:`renew_leases`): a job whose worker died is claimed again once the short lease
ends (at-least-once delivery), a slow but live worker keeps it. ``attempts`` counts claims
and fences the worker's result: a worker that lost its lease cannot settle a job claimed
again since.

Jobs of one kind with the same ordering key are applied one at a time, in primary-key order.
That is commit order for jobs about one entry, because each transaction that queues such a
job has first written the entry's row, which serialises them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import Connection
from sqlalchemy import delete
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import tuple_
from sqlalchemy import update
from sqlalchemy.sql.elements import TextClause

from .prepared import PreparedStatement
from .tables import PENDING_CONDITION
from .tables import jobs
from .timestamps import from_db
from .timestamps import to_db

_ENQUEUE = PreparedStatement(insert(jobs).returning(jobs.c.pk))


def enqueue(
    conn: Connection, kind: str, ordering_key: str, payload: dict[str, Any], now: datetime
) -> int:
    """Queue a job in the current transaction; it exists only if the transaction commits.

    :param kind: Which worker handler applies it, e.g. ``"email"`` or ``"ldap"``.
    :param ordering_key: Jobs with the same key are applied in commit order (e.g.
        ``"user:<id>"``).
    :param payload: JSON-serialisable description of the side effect.
    :returns: The job's primary key.
    """
    at = to_db(now)
    pk = _ENQUEUE.scalar(
        conn,
        {
            "kind": kind,
            "ordering_key": ordering_key,
            "payload": payload,
            "status": "queued",
            "attempts": 0,
            "available_at": at,
            "created": at,
            "updated": at,
        },
    )
    return int(pk)


class JobStatus(StrEnum):
    """Where a job is in its life (the ``status`` column)."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"


PENDING = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING)
"""States of a job still to be applied; such a job holds back later jobs with its key."""


@dataclass(frozen=True)
class Job:
    """A claimed job, as its handler sees it."""

    pk: int
    kind: str
    ordering_key: str
    payload: dict[str, Any]
    attempts: int
    """Claims so far, this one included."""
    created: datetime


@dataclass(frozen=True)
class JobInfo:
    """A job as ``scimbridge jobs list`` shows it (never its payload, which may hold secrets)."""

    pk: int
    kind: str
    ordering_key: str
    status: str
    attempts: int
    available_at: datetime
    created: datetime
    updated: datetime
    last_error: str | None


@dataclass(frozen=True)
class QueueCount:
    """How many jobs of one kind are in one state, and when the oldest of them was queued."""

    kind: str
    status: str
    count: int
    oldest_created: datetime


def _due(kinds: Sequence[str], now: datetime) -> list[ColumnElement[bool] | TextClause]:
    earlier = jobs.alias("earlier")
    held_back = exists().where(
        earlier.c.kind == jobs.c.kind,
        earlier.c.ordering_key == jobs.c.ordering_key,
        earlier.c.pk < jobs.c.pk,
        earlier.c.status.in_(PENDING),
    )
    # A running job whose lease has ended is due again: its worker is presumed dead.
    return [
        jobs.c.kind.in_(kinds),
        # Literal, to match the partial index a lane's claim walks (ix_jobs_pending_kind_pk).
        text(f"jobs.{PENDING_CONDITION}"),
        jobs.c.available_at <= to_db(now),
        ~held_back,
    ]


def has_due_jobs(conn: Connection, kinds: Sequence[str], now: datetime) -> bool:
    """Tell whether a claim would find a job, without locking anything."""
    return conn.execute(select(jobs.c.pk).where(*_due(kinds, now)).limit(1)).first() is not None


def claim_jobs(
    conn: Connection, kinds: Sequence[str], now: datetime, lease_until: datetime, limit: int
) -> list[Job]:
    """Claim up to ``limit`` due jobs of ``kinds`` until ``lease_until``; oldest first.

    Run it in a write transaction. On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets concurrent
    workers claim disjoint jobs, and a job claimed meanwhile fails the re-check of its lease;
    SQLite serialises write transactions, so claims never overlap there. A claim holds at most
    one job per ordering key, since a job's earlier siblings are still pending when it is due.
    """
    rows = conn.execute(
        select(
            jobs.c.pk,
            jobs.c.kind,
            jobs.c.ordering_key,
            jobs.c.payload,
            jobs.c.attempts,
            jobs.c.created,
        )
        .where(*_due(kinds, now))
        .order_by(jobs.c.pk)
        .limit(limit)
        .with_for_update(skip_locked=True, of=jobs)
    ).all()
    if not rows:
        return []
    conn.execute(
        update(jobs)
        .where(jobs.c.pk.in_([row.pk for row in rows]))
        .values(
            status=JobStatus.RUNNING,
            attempts=jobs.c.attempts + 1,
            available_at=to_db(lease_until),
            updated=to_db(now),
        )
    )
    return [
        Job(
            pk=row.pk,
            kind=row.kind,
            ordering_key=row.ordering_key,
            payload=row.payload,
            attempts=row.attempts + 1,
            created=from_db(row.created),
        )
        for row in rows
    ]


def _settle(conn: Connection, job: Job, now: datetime, **values: Any) -> bool:
    """Update a job still held by this claim; return False when the claim was lost."""
    result = conn.execute(
        update(jobs)
        .where(
            jobs.c.pk == job.pk,
            jobs.c.status == JobStatus.RUNNING,
            jobs.c.attempts == job.attempts,
        )
        .values(updated=to_db(now), **values)
    )
    return result.rowcount == 1


def mark_done(
    conn: Connection, job: Job, now: datetime, payload: dict[str, Any] | None = None
) -> bool:
    """Record that a job was applied, keeping ``payload`` instead of its own when given."""
    values: dict[str, Any] = {"status": JobStatus.DONE, "last_error": None}
    if payload is not None:
        values["payload"] = payload
    return _settle(conn, job, now, **values)


def _still_claimed(claimed: Sequence[Job]) -> tuple[ColumnElement[bool], ...]:
    """Match the jobs still held by the claim that gave ``claimed`` (same attempt, running)."""
    return (
        tuple_(jobs.c.pk, jobs.c.attempts).in_([(job.pk, job.attempts) for job in claimed]),
        jobs.c.status == JobStatus.RUNNING,
    )


def mark_all_done(conn: Connection, done: Sequence[Job], now: datetime) -> set[int]:
    """Record that jobs were applied (payloads kept), in one statement.

    :returns: The primary keys of the jobs still held by their claim, hence settled.
    """
    if not done:
        return set()
    result = conn.execute(
        update(jobs)
        .where(
            *_still_claimed(done),
        )
        .values(status=JobStatus.DONE, last_error=None, updated=to_db(now))
        .returning(jobs.c.pk)
    )
    return set(result.scalars())


def renew_leases(
    conn: Connection, held: Sequence[Job], now: datetime, lease_until: datetime
) -> set[int]:
    """Extend the lease of jobs a live worker still applies, in one statement.

    :returns: The primary keys of the jobs still held by their claim, hence renewed; a job
        left out was settled meanwhile or claimed again by another worker.
    """
    if not held:
        return set()
    result = conn.execute(
        update(jobs)
        .where(
            *_still_claimed(held),
        )
        .values(available_at=to_db(lease_until), updated=to_db(now))
        .returning(jobs.c.pk)
    )
    return set(result.scalars())


def schedule_retry(
    conn: Connection, job: Job, now: datetime, retry_at: datetime, error: str
) -> bool:
    """Record a transient failure; the job is due again at ``retry_at``."""
    return _settle(
        conn,
        job,
        now,
        status=JobStatus.RETRYING,
        available_at=to_db(retry_at),
        last_error=error,
    )


def park(conn: Connection, job: Job, now: datetime, error: str) -> bool:
    """Give up on a job: ``failed`` with its reason, until someone retries it."""
    return _settle(conn, job, now, status=JobStatus.FAILED, last_error=error)


def release(conn: Connection, job: Job, now: datetime, error: str | None = None) -> bool:
    """Hand back a claimed job that was not started; the claim does not count as an attempt.

    :param error: Why it could not start (its system is unavailable), shown as its last error.
    """
    values: dict[str, Any] = {} if error is None else {"last_error": error}
    return _settle(
        conn,
        job,
        now,
        status=JobStatus.QUEUED if job.attempts == 1 else JobStatus.RETRYING,
        attempts=job.attempts - 1,
        available_at=to_db(now),
        **values,
    )


def requeue(conn: Connection, now: datetime, pks: Sequence[int] | None = None) -> list[int]:
    """Queue failed (or waiting) jobs again now, with a fresh budget of attempts.

    :param pks: The jobs to requeue; every failed job when None.
    :returns: The primary keys of the jobs requeued.
    """
    condition = (
        jobs.c.status == JobStatus.FAILED
        if pks is None
        else jobs.c.pk.in_(pks) & jobs.c.status.in_((JobStatus.FAILED, JobStatus.RETRYING))
    )
    at = to_db(now)
    result = conn.execute(
        update(jobs)
        .where(condition)
        .values(status=JobStatus.QUEUED, attempts=0, available_at=at, updated=at)
        .returning(jobs.c.pk)
    )
    return sorted(result.scalars())


def list_jobs(
    conn: Connection,
    statuses: Sequence[str] | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[JobInfo]:
    """Return jobs in ``statuses`` (every state when None), oldest first."""
    query = select(
        jobs.c.pk,
        jobs.c.kind,
        jobs.c.ordering_key,
        jobs.c.status,
        jobs.c.attempts,
        jobs.c.available_at,
        jobs.c.created,
        jobs.c.updated,
        jobs.c.last_error,
    )
    if statuses is not None:
        query = query.where(jobs.c.status.in_(statuses))
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    rows = conn.execute(query.order_by(jobs.c.pk).limit(limit))
    return [
        JobInfo(
            pk=row.pk,
            kind=row.kind,
            ordering_key=row.ordering_key,
            status=row.status,
            attempts=row.attempts,
            available_at=from_db(row.available_at),
            created=from_db(row.created),
            updated=from_db(row.updated),
            last_error=row.last_error,
        )
        for row in rows
    ]


def count_jobs(conn: Connection) -> list[QueueCount]:
    """Count the jobs not done, by kind and state, with the age of the oldest."""
    rows = conn.execute(
        select(jobs.c.kind, jobs.c.status, func.count(), func.min(jobs.c.created))
        .where(jobs.c.status != JobStatus.DONE)
        .group_by(jobs.c.kind, jobs.c.status)
        .order_by(jobs.c.kind, jobs.c.status)
    )
    return [
        QueueCount(kind, status, count, from_db(oldest)) for kind, status, count, oldest in rows
    ]


def purge_done(conn: Connection, before: datetime) -> int:
    """Delete jobs delivered before ``before``; return how many (their history is the audit)."""
    result = conn.execute(
        delete(jobs).where(jobs.c.status == JobStatus.DONE, jobs.c.updated < to_db(before))
    )
    return int(result.rowcount)
