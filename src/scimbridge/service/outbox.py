"""The outbox worker: claims due jobs, applies them with the handler of their kind, settles them.

Every side effect (an email now, LDAP changes later) is a job committed with the change that
causes it; handlers are registered by job kind. Delivery is at least once: a worker that dies
between applying a job and recording it leaves the job ``running`` until its lease ends, and
the next claim applies it again, so handlers must tolerate a repeat.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from ..settings import WorkerSettings
from ..store import jobs as job_store
from ..store.database import Database
from ..store.jobs import Job
from .metrics import Labels
from .metrics import Metrics

logger = logging.getLogger(__name__)

JobHandler = Callable[[Job], dict[str, Any] | None]
"""Applies one job. Returns the payload to keep once the job is done (e.g. without its secrets),
or None to keep the payload as it is. Raises :class:`TransientJobError` for a failure worth
retrying, :class:`PermanentJobError` for one that is not; any other exception counts as
transient."""

ATTEMPTS = "scimbridge_outbox_attempts_total"
DONE = "scimbridge_outbox_done_total"
RETRIES = "scimbridge_outbox_retries_total"
FAILURES = "scimbridge_outbox_failures_total"
QUEUE_DEPTH = "scimbridge_outbox_jobs"
OLDEST_AGE = "scimbridge_outbox_oldest_pending_age_seconds"


class TransientJobError(Exception):
    """A failure that may go away: the job is retried after a delay."""


class PermanentJobError(Exception):
    """A failure that retrying cannot cure: the job is parked as failed at once."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a failing job is tried again."""

    max_attempts: int = 10
    base_seconds: float = 10.0
    max_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> RetryPolicy:
        """Build the policy the worker settings describe."""
        return cls(
            settings.max_attempts, settings.backoff_base_seconds, settings.backoff_max_seconds
        )

    def delay(self, attempts: int, jitter: float) -> float:
        """Seconds to wait after the ``attempts``-th failure.

        Exponential, capped, and scaled by a random factor between 0.5 and 1 (``jitter`` is
        drawn from [0, 1)) so that jobs that failed together do not all come back together.
        """
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** (attempts - 1))
        return ceiling * (0.5 + jitter / 2)


class OutboxWorker:
    """Drains the outbox for the kinds it has handlers for; ``run_once`` is one step."""

    def __init__(
        self,
        database: Database,
        handlers: Mapping[str, JobHandler],
        *,
        policy: RetryPolicy | None = None,
        lease: timedelta = timedelta(minutes=5),
        batch_size: int = 10,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = _utc_now,
        jitter: Callable[[], float] = random.random,
        upkeep: Callable[[], object] | None = None,
        upkeep_interval: timedelta = timedelta(minutes=1),
    ) -> None:
        self.upkeep = upkeep
        self.upkeep_interval = upkeep_interval
        self._next_upkeep = clock()
        self.database = database
        self.handlers = dict(handlers)
        self.policy = policy or RetryPolicy()
        self.lease = lease
        self.batch_size = batch_size
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.jitter = jitter
        self._kinds = sorted(self.handlers)

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Claim a batch of due jobs and apply them; return how many were claimed.

        When ``stop`` is set, or the batch's lease runs short, the jobs not started yet are
        handed back for the next claim.
        """
        now = self.clock()
        # Looking before claiming keeps an idle worker off SQLite's single write lock.
        with self.database.read() as conn:
            if not job_store.has_due_jobs(conn, self._kinds, now):
                return 0
        lease_until = now + self.lease
        with self.database.write() as conn:
            claimed = job_store.claim_jobs(conn, self._kinds, now, lease_until, self.batch_size)
        for position, job in enumerate(claimed):
            # Half the lease left is a safe margin for one more job; past it, another worker
            # could claim the job again while this one is still applying it.
            if (stop is not None and stop.is_set()) or self.clock() >= now + self.lease / 2:
                self._release(claimed[position:])
                break
            self._apply(job)
        return len(claimed)

    def run(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        """Apply jobs until ``stop`` is set, waiting ``poll_interval`` seconds when idle."""
        failing = False
        while not stop.is_set():
            self._run_upkeep()
            try:
                claimed = self.run_once(stop)
            except Exception:
                # The database is unreachable, most likely: say so once, then keep trying.
                if not failing:
                    logger.exception("outbox worker cannot reach the job table; retrying")
                failing = True
                claimed = 0
            else:
                if failing:
                    logger.info("outbox worker reaches the job table again")
                failing = False
            if not claimed:
                stop.wait(poll_interval)

    def _run_upkeep(self) -> None:
        """Run the periodic upkeep (timed role grants, stale sessions…) when it is due."""
        if self.upkeep is None or self.clock() < self._next_upkeep:
            return
        self._next_upkeep = self.clock() + self.upkeep_interval
        try:
            self.upkeep()
        except Exception:
            # Upkeep must never stop the delivery of jobs; it runs again next interval.
            logger.exception("periodic upkeep failed; retrying next interval")

    def _apply(self, job: Job) -> None:
        labels = {"kind": job.kind}
        if job.attempts > self.policy.max_attempts:
            # Only workers that died mid-job leave a job to be claimed this often.
            self._park(job, f"gave up after {job.attempts - 1} attempts without an outcome")
            return
        self.metrics.increment(ATTEMPTS, labels)
        try:
            kept_payload = self.handlers[job.kind](job)
        except PermanentJobError as exc:
            self._park(job, str(exc))
        except TransientJobError as exc:
            self._retry_or_park(job, str(exc))
        except Exception as exc:
            logger.exception("job %d (%s) raised an unexpected error", job.pk, job.kind)
            self._retry_or_park(job, f"unexpected error: {type(exc).__name__}")
        else:
            with self.database.write() as conn:
                settled = job_store.mark_done(conn, job, self.clock(), kept_payload)
            self.metrics.increment(DONE, labels)
            self._log_settled(job, settled, "done")

    def _retry_or_park(self, job: Job, error: str) -> None:
        if job.attempts >= self.policy.max_attempts:
            self._park(job, f"{error} (after {job.attempts} attempts)")
            return
        now = self.clock()
        delay = self.policy.delay(job.attempts, self.jitter())
        with self.database.write() as conn:
            settled = job_store.schedule_retry(
                conn, job, now, now + timedelta(seconds=delay), error
            )
        self.metrics.increment(RETRIES, {"kind": job.kind})
        self._log_settled(job, settled, f"retrying in {delay:.0f} s after: {error}")

    def _park(self, job: Job, error: str) -> None:
        with self.database.write() as conn:
            settled = job_store.park(conn, job, self.clock(), error)
        self.metrics.increment(FAILURES, {"kind": job.kind})
        self._log_settled(job, settled, f"failed: {error}", level=logging.WARNING)

    def _release(self, unstarted: list[Job]) -> None:
        with self.database.write() as conn:
            for job in unstarted:
                job_store.release(conn, job, self.clock())

    @staticmethod
    def _log_settled(job: Job, settled: bool, outcome: str, level: int = logging.INFO) -> None:
        if settled:
            logger.log(level, "job %d (%s) %s", job.pk, job.kind, outcome)
        else:
            # The lease ran out and another worker claimed the job: its outcome wins.
            logger.warning("job %d (%s) %s, but its claim had expired", job.pk, job.kind, outcome)


def record_queue_gauges(database: Database, metrics: Metrics, now: datetime) -> None:
    """Measure, from the job table, queue depth by kind and state and the oldest pending age."""
    with database.read() as conn:
        counts = job_store.count_jobs(conn)
    depth: dict[Labels, float] = {}
    oldest: dict[Labels, float] = {}
    for count in counts:
        depth[(("kind", count.kind), ("status", count.status))] = count.count
        if count.status in job_store.PENDING:
            age = max(0.0, (now - count.oldest_created).total_seconds())
            labels = (("kind", count.kind),)
            oldest[labels] = max(oldest.get(labels, 0.0), age)
    metrics.replace_gauge(QUEUE_DEPTH, depth)
    metrics.replace_gauge(OLDEST_AGE, oldest)
