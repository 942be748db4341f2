"""The outbox worker: claims due jobs, applies them with the handler of their kind, settles them.

Every side effect (an email now, LDAP changes later) is a job committed with the change that
causes it; handlers are registered by job kind. Delivery is at least once: a worker that dies
between applying a job and recording it leaves the job ``running`` until its lease ends (a few
seconds: live workers renew theirs, see ``outbox_leases.py``), and the next claim applies it
again, so handlers must tolerate a repeat.

An :class:`OutboxWorker` drains the kinds it has handlers for on the caller's thread;
``outbox_lanes.py`` runs one per kind, each on its own thread.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Protocol

from ...settings import WorkerSettings
from ...store import jobs as job_store
from ...store.database import Database
from ...store.database import Transaction
from ...store.jobs import Job
from ..operations.metrics import GaugeReader
from ..operations.metrics import Labels
from ..operations.metrics import Metrics
from .leases import LeaseKeeper

logger = logging.getLogger(__name__)

JobHandler = Callable[[Job], dict[str, Any] | None]
"""Applies one job. Returns the payload to keep once the job is done (e.g. without its secrets),
or None to keep the payload as it is. Raises :class:`TransientJobError` for a failure worth
retrying, :class:`PermanentJobError` for one that is not; any other exception counts as
transient."""


@dataclass(frozen=True)
class JobResult:
    """What became of one job a batch handler was given."""

    error: Exception | None = None
    """None when the job was applied; otherwise the failure, classified like an exception a
    :data:`JobHandler` raises."""
    payload: dict[str, Any] | None = None
    """When applied: the payload to keep (None keeps it as it is)."""
    started: bool = True
    """False for a job the handler did not get to because it was asked to stop."""


@dataclass
class BatchResult:
    """The answer of a batch handler: one result per job, in order."""

    results: list[JobResult]
    persist: Callable[[Transaction], None] | None = None
    """The handler's own writes, committed in the transaction that settles the jobs."""


class BatchJobHandler(Protocol):
    """A handler that takes the claimed jobs of its kind together (also a :data:`JobHandler`).

    The jobs have distinct ordering keys, so they are independent; applying them with shared
    reads and settling them in one transaction saves the per-job cost of the store. The
    handler checks ``must_stop`` between jobs and marks the rest ``started=False``.
    """

    def apply_batch(self, jobs: Sequence[Job], must_stop: Callable[[], bool]) -> BatchResult:
        """Apply the jobs in order; never raise for one job's failure."""
        ...


ATTEMPTS = "scimbridge_outbox_attempts_total"
DONE = "scimbridge_outbox_done_total"
RETRIES = "scimbridge_outbox_retries_total"
FAILURES = "scimbridge_outbox_failures_total"
UNAVAILABLE = "scimbridge_outbox_unavailable_total"
QUEUE_DEPTH = "scimbridge_outbox_jobs"
OLDEST_AGE = "scimbridge_outbox_oldest_pending_age_seconds"


class TransientJobError(Exception):
    """A failure that may go away: the job is retried after a delay."""


class PermanentJobError(Exception):
    """A failure that retrying cannot cure: the job is parked as failed at once."""


class UnavailableJobError(TransientJobError):
    """The system a job writes to cannot be used now (unreachable, down, refusing the bind).

    Not the job's fault, so it does not use up one of the job's attempts: the job is handed
    back, and the worker stops claiming jobs of its kind for a pause that doubles while the
    system stays away (up to :data:`UNAVAILABLE_PAUSE_MAX_SECONDS`). An outage of any length
    delays those jobs; it never parks them, and other kinds keep flowing.
    """


UNAVAILABLE_PAUSE_MAX_SECONDS = 60.0
"""Longest pause of a job kind whose system is unavailable: how soon a recovery is noticed."""


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
        lease: timedelta = timedelta(seconds=6),
        renew_interval: float | None = None,
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
        self.renew_interval = renew_interval
        """Real seconds between two renewals of the leases in hand (a quarter of the lease
        when None)."""
        self.batch_size = batch_size
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.jitter = jitter
        self._kinds = sorted(self.handlers)
        # Kinds whose system was found unavailable: claimed again once the pause ends.
        self._paused_until: dict[str, datetime] = {}
        self._unavailable_streak: dict[str, int] = {}
        self._busy = False
        self._leases: LeaseKeeper | None = None

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Claim a batch of due jobs and apply them; return how many were claimed.

        When ``stop`` is set, or the batch's lease runs short, the jobs not started yet are
        handed back for the next claim.
        """
        now = self.clock()
        kinds = [kind for kind in self._kinds if not self._paused(kind, now)]
        if not kinds:
            return 0
        # Looking before claiming keeps an idle worker off SQLite's single write lock; a
        # worker whose last claim was full is busy, and claims straight away.
        if not self._busy:
            with self.database.read() as conn:
                if not job_store.has_due_jobs(conn, kinds, now):
                    return 0
        lease_until = now + self.lease
        with self.database.write() as conn:
            claimed = job_store.claim_jobs(conn, kinds, now, lease_until, self.batch_size)
        self._busy = len(claimed) == self.batch_size
        if not claimed:
            return 0
        leases = LeaseKeeper(
            self.database, claimed, lease_until, self.lease, self.clock, self.renew_interval
        )
        self._leases = leases
        try:
            with leases:
                self._apply_claimed(claimed, stop, leases)
        finally:
            self._leases = None
        return len(claimed)

    def _apply_claimed(
        self, claimed: list[Job], stop: threading.Event | None, leases: LeaseKeeper
    ) -> None:
        def must_stop() -> bool:
            return (stop is not None and stop.is_set()) or leases.running_short()

        pending = list(claimed)
        while pending:
            if must_stop():
                self._release(pending)
                break
            job = pending[0]
            if self._paused(job.kind, self.clock()):
                # An earlier job of this batch found the system unavailable.
                self._release([pending.pop(0)])
                continue
            apply_batch = getattr(self.handlers[job.kind], "apply_batch", None)
            if apply_batch is None:
                self._apply(pending.pop(0))
                continue
            # A claim holds one job per ordering key: the jobs of a kind are independent.
            batch = [item for item in pending if item.kind == job.kind]
            pending = [item for item in pending if item.kind != job.kind]
            self._apply_batch(batch, apply_batch, must_stop)

    def close(self) -> None:
        """Release what the handlers keep between jobs (connections)."""
        for handler in self.handlers.values():
            close = getattr(handler, "close", None)
            if close is not None:
                close()

    def _paused(self, kind: str, now: datetime) -> bool:
        until = self._paused_until.get(kind)
        return until is not None and now < until

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
        if job.attempts > self.policy.max_attempts:
            # Only workers that died mid-job leave a job to be claimed this often.
            self._park(job, f"gave up after {job.attempts - 1} attempts without an outcome")
            return
        self.metrics.increment(ATTEMPTS, {"kind": job.kind})
        try:
            result = JobResult(payload=self.handlers[job.kind](job))
        except Exception as exc:
            if not isinstance(exc, TransientJobError | PermanentJobError):
                logger.exception("job %d (%s) raised an unexpected error", job.pk, job.kind)
            result = JobResult(error=exc)
        self._let_go([job])
        with self.database.write() as conn:
            outcome = self._settle(conn, job, result)
        self._report(job, outcome)

    def _apply_batch(
        self,
        jobs: list[Job],
        apply_batch: Callable[[Sequence[Job], Callable[[], bool]], BatchResult],
        must_stop: Callable[[], bool],
    ) -> None:
        """Apply jobs of one kind with one call, and settle them in one transaction."""
        runnable = []
        for job in jobs:
            if job.attempts > self.policy.max_attempts:
                self._park(job, f"gave up after {job.attempts - 1} attempts without an outcome")
            else:
                runnable.append(job)
        if not runnable:
            return
        for job in runnable:
            self.metrics.increment(ATTEMPTS, {"kind": job.kind})
        try:
            batch = apply_batch(runnable, must_stop)
            results, persist = list(batch.results), batch.persist
            if len(results) != len(runnable):
                raise ValueError(f"{len(results)} results for {len(runnable)} jobs")
        except Exception as exc:
            logger.exception(
                "a batch of %d %s jobs raised an unexpected error", len(jobs), jobs[0].kind
            )
            results, persist = [JobResult(error=exc) for _ in runnable], None
        done = [
            job
            for job, result in zip(runnable, results, strict=True)
            if result.started and result.error is None and result.payload is None
        ]
        done_pks = {job.pk for job in done}
        self._let_go(runnable)
        with self.database.write() as conn:
            if persist is not None:
                persist(conn)
            # The common case, every job applied, costs one statement for the whole batch.
            settled = job_store.mark_all_done(conn, done, self.clock())
            outcomes = [
                _Outcome(job.pk in settled, "done", DONE)
                if job.pk in done_pks
                else self._settle(conn, job, result)
                for job, result in zip(runnable, results, strict=True)
            ]
        if done and self._unavailable_streak.pop(done[0].kind, 0):
            self._paused_until.pop(done[0].kind, None)
            logger.info("jobs of kind %s are applied again", done[0].kind)
        for job, outcome in zip(runnable, outcomes, strict=True):
            self._report(job, outcome)

    def _settle(self, conn: Transaction, job: Job, result: JobResult) -> _Outcome:
        """Record what became of a job, in the caller's transaction."""
        now = self.clock()
        error = result.error
        if not result.started:
            return _Outcome(job_store.release(conn, job, now), "handed back", None, logging.DEBUG)
        if error is None:
            if self._unavailable_streak.pop(job.kind, 0):
                self._paused_until.pop(job.kind, None)
                logger.info("jobs of kind %s are applied again", job.kind)
            return _Outcome(job_store.mark_done(conn, job, now, result.payload), "done", DONE)
        if isinstance(error, PermanentJobError):
            settled = job_store.park(conn, job, now, str(error))
            return _Outcome(settled, f"failed: {error}", FAILURES, logging.WARNING)
        if isinstance(error, UnavailableJobError):
            self._pause(job.kind, str(error))
            settled = job_store.release(conn, job, now, str(error))
            return _Outcome(settled, f"handed back: {error}", UNAVAILABLE, logging.DEBUG)
        if isinstance(error, TransientJobError):
            text = str(error)
        else:
            text = f"unexpected error: {type(error).__name__}"
        if job.attempts >= self.policy.max_attempts:
            text = f"{text} (after {job.attempts} attempts)"
            return _Outcome(
                job_store.park(conn, job, now, text), f"failed: {text}", FAILURES, logging.WARNING
            )
        delay = self.policy.delay(job.attempts, self.jitter())
        settled = job_store.schedule_retry(conn, job, now, now + timedelta(seconds=delay), text)
        return _Outcome(settled, f"retrying in {delay:.0f} s after: {text}", RETRIES)

    def _report(self, job: Job, outcome: _Outcome) -> None:
        if outcome.metric is not None:
            self.metrics.increment(outcome.metric, {"kind": job.kind})
        self._log_settled(job, outcome.settled, outcome.message, outcome.level)

    def _pause(self, kind: str, error: str) -> None:
        """Stop claiming jobs of a kind for a while: its system is unavailable."""
        streak = self._unavailable_streak.get(kind, 0) + 1
        self._unavailable_streak[kind] = streak
        delay = min(self.policy.delay(streak, self.jitter()), UNAVAILABLE_PAUSE_MAX_SECONDS)
        self._paused_until[kind] = self.clock() + timedelta(seconds=delay)
        # Once per outage at WARNING; the pauses that follow only at INFO.
        level = logging.WARNING if streak == 1 else logging.INFO
        logger.log(level, "jobs of kind %s paused for %.0f s: %s", kind, delay, error)

    def _let_go(self, jobs: list[Job]) -> None:
        """Stop renewing the lease of jobs about to be settled."""
        if self._leases is not None:
            self._leases.let_go(jobs)

    def _park(self, job: Job, error: str) -> None:
        self._let_go([job])
        with self.database.write() as conn:
            settled = job_store.park(conn, job, self.clock(), error)
        self.metrics.increment(FAILURES, {"kind": job.kind})
        self._log_settled(job, settled, f"failed: {error}", level=logging.WARNING)

    def _release(self, unstarted: list[Job]) -> None:
        self._let_go(unstarted)
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


@dataclass(frozen=True)
class _Outcome:
    settled: bool
    """False when the claim had expired and another worker owns the job now."""
    message: str
    metric: str | None
    level: int = logging.INFO


def queue_gauges(database: Database) -> GaugeReader:
    """Return a reader of the outbox queue gauges, measured from the store at each scrape.

    Every process that serves metrics (the app's ``/metrics``, ``scimbridge worker``'s
    endpoint) reports the same depth and age, whichever process applies the jobs.
    """

    def read() -> Metrics:
        measured = Metrics()
        record_queue_gauges(database, measured, datetime.now(UTC))
        return measured

    return read


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
