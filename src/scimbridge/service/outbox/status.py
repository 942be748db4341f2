"""How the outbox stands, for admins: queue depth and lag per kind, parked jobs, retrying them.

Jobs are what the workers still owe LDAP and the mail server (see ``service/outbox/worker.py``).
Each kind has its own lane (``outbox_lanes.py``); :func:`lane_metrics` measures every lane's
depth and lag for the status page, the CLI, ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from ...domain.lifecycle import Actor
from ...domain.lifecycle import RequestInfo
from ...store import jobs as job_store
from ...store import ldap_entries
from ...store.database import Database
from ...store.jobs import JobInfo
from ...store.ldap_entries import ParkedJob
from ..directory import audit
from ..ldap.sync import LDAP_JOB
from ..ldap.sync import user_key

__all__ = ["JobInfo", "OutboxStatus", "QueueSummary", "lane_metrics"]


@dataclass(frozen=True)
class QueueSummary:
    """The jobs of one kind (``email``, ``ldap``…) still to be applied, and the parked ones."""

    kind: str
    pending: int
    """The lane's depth: queued, running or waiting to be retried."""
    running: int
    """Of the pending ones, those a worker holds now."""
    retrying: int
    """Of the pending ones, those that failed at least once and wait for their next try."""
    failed: int
    """Parked after too many attempts or a permanent error; they wait for a retry by hand."""
    lag: timedelta | None
    """Age of the oldest pending job (None when nothing is pending)."""

    @property
    def lag_seconds(self) -> float:
        """The lane's lag in seconds: how long its oldest pending job has waited (0 if none)."""
        return 0.0 if self.lag is None else self.lag.total_seconds()


def lane_metrics(
    database: Database, kinds: Iterable[str] = (), now: datetime | None = None
) -> list[QueueSummary]:
    """Measure each lane's depth and lag from the job table, one summary per kind.

    :param kinds: Kinds to report even when they have no job (the lanes that run); kinds
        with jobs not done are reported anyway.
    """
    now = now or datetime.now(UTC)
    with database.read() as conn:
        counts = job_store.count_jobs(conn)
    by_kind: dict[str, dict[str, int]] = {kind: {} for kind in kinds}
    oldest: dict[str, datetime] = {}
    for count in counts:
        by_kind.setdefault(count.kind, {})[count.status] = count.count
        if count.status in job_store.PENDING:
            previous = oldest.get(count.kind)
            if previous is None or count.oldest_created < previous:
                oldest[count.kind] = count.oldest_created
    return [
        QueueSummary(
            kind=kind,
            pending=sum(by_status.get(status, 0) for status in job_store.PENDING),
            running=by_status.get(job_store.JobStatus.RUNNING, 0),
            retrying=by_status.get(job_store.JobStatus.RETRYING, 0),
            failed=by_status.get(job_store.JobStatus.FAILED, 0),
            lag=max(now - oldest[kind], timedelta(0)) if kind in oldest else None,
        )
        for kind, by_status in sorted(by_kind.items())
    ]


class OutboxStatus:
    """Reads the job table and queues parked jobs again."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def queues(self, now: datetime | None = None) -> list[QueueSummary]:
        """Return one summary per job kind that has jobs not yet done."""
        return lane_metrics(self.database, (), now)

    def parked(self, limit: int = 100) -> list[JobInfo]:
        """Return the failed jobs, oldest first (never their payloads, which may hold secrets)."""
        with self.database.read() as conn:
            return job_store.list_jobs(conn, [job_store.JobStatus.FAILED], limit=limit)

    def parked_sync_of_user(self, user_id: str) -> list[ParkedJob]:
        """Return the parked LDAP jobs of a user (the directory's refusals, e.g. a taken name)."""
        with self.database.read() as conn:
            return ldap_entries.parked_jobs(conn, LDAP_JOB, user_key(user_id))

    def retry(
        self,
        job_ids: Sequence[int] | None,
        actor: Actor,
        request: RequestInfo | None = None,
    ) -> list[int]:
        """Queue failed jobs again now (every failed job when ``job_ids`` is None); audited.

        :returns: The jobs queued again (a job retried meanwhile by someone else is left out).
        """
        now = datetime.now(UTC)
        with self.database.write() as conn:
            requeued = job_store.requeue(conn, now, job_ids)
            if requeued:
                audit.record(
                    conn,
                    actor,
                    "jobs.retried",
                    target_type="Job",
                    target_id=str(requeued[0]) if len(requeued) == 1 else None,
                    changes={"jobs": requeued[:100], "count": len(requeued)},
                    request=request,
                    now=now,
                )
        return requeued
