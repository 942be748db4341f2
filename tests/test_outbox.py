"""The outbox worker: claims, retries with backoff, parking, ordering, leases, concurrency."""

from __future__ import annotations

import threading
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest

from scimbridge.service.operations.metrics import Metrics
from scimbridge.service.outbox.worker import ATTEMPTS
from scimbridge.service.outbox.worker import DONE
from scimbridge.service.outbox.worker import FAILURES
from scimbridge.service.outbox.worker import OLDEST_AGE
from scimbridge.service.outbox.worker import QUEUE_DEPTH
from scimbridge.service.outbox.worker import RETRIES
from scimbridge.service.outbox.worker import OutboxWorker
from scimbridge.service.outbox.worker import PermanentJobError
from scimbridge.service.outbox.worker import RetryPolicy
from scimbridge.service.outbox.worker import TransientJobError
from scimbridge.service.outbox.worker import record_queue_gauges
from scimbridge.store import jobs as job_store
from scimbridge.store.database import Database
from scimbridge.store.jobs import Job
from scimbridge.store.migrations import upgrade
from scimbridge.worker import InProcessWorker

from .outbox_support import START
from .outbox_support import Clock
from .outbox_support import job
from .outbox_support import queue_job


class Recorder:
    """A handler that records what it applies and fails as told."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.applied: list[Job] = []
        self.failures = list(failures or [])
        self.lock = threading.Lock()

    def __call__(self, job: Job) -> dict[str, Any] | None:
        with self.lock:
            self.applied.append(job)
            if self.failures:
                raise self.failures.pop(0)
        return None


def make_worker(database: Database, clock: Clock, handler: Any, **options: Any) -> OutboxWorker:
    options.setdefault("policy", RetryPolicy(max_attempts=4, base_seconds=10, max_seconds=60))
    return OutboxWorker(database, {"test": handler}, clock=clock, jitter=lambda: 1.0, **options)


def test_a_queued_job_is_applied_once_and_marked_done(db: Database) -> None:
    clock = Clock()
    pk = queue_job(db, "test", "k", {"n": 1}, START)
    handler = Recorder()
    worker = make_worker(db, clock, handler)

    assert worker.run_once() == 1
    assert worker.run_once() == 0
    assert [applied.pk for applied in handler.applied] == [pk]
    assert handler.applied[0].payload == {"n": 1}
    assert job(db, pk).status == "done"
    assert job(db, pk).attempts == 1


def test_a_job_queued_for_later_waits(db: Database) -> None:
    clock = Clock()
    queue_job(db, "test", "k", {}, START + timedelta(seconds=30))
    worker = make_worker(db, clock, Recorder())
    assert worker.run_once() == 0
    clock.advance(30)
    assert worker.run_once() == 1


def test_a_transient_failure_is_retried_with_exponential_backoff(db: Database) -> None:
    clock = Clock()
    pk = queue_job(db, "test", "k", {}, START)
    handler = Recorder([TransientJobError("server busy"), TransientJobError("server busy")])
    worker = make_worker(db, clock, handler)

    worker.run_once()
    info = job(db, pk)
    assert (info.status, info.attempts, info.last_error) == ("retrying", 1, "server busy")
    assert info.available_at == START + timedelta(seconds=10)

    clock.advance(9)
    assert worker.run_once() == 0, "not due before its backoff ends"
    clock.advance(1)
    worker.run_once()
    info = job(db, pk)
    assert (info.status, info.attempts) == ("retrying", 2)
    assert info.available_at == clock.now + timedelta(seconds=20)

    clock.advance(20)
    worker.run_once()
    info = job(db, pk)
    assert (info.status, info.attempts, info.last_error) == ("done", 3, None)


def test_backoff_doubles_up_to_its_cap_with_jitter_between_half_and_full() -> None:
    policy = RetryPolicy(max_attempts=10, base_seconds=10, max_seconds=100)
    assert [policy.delay(n, 1.0) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 80, 100]
    assert policy.delay(3, 0.0) == 20
    assert 20 <= policy.delay(3, 0.5) <= 40


def test_a_job_that_keeps_failing_is_parked_with_its_last_error(db: Database) -> None:
    clock = Clock()
    pk = queue_job(db, "test", "k", {}, START)
    handler = Recorder([TransientJobError(f"outage {n}") for n in range(10)])
    worker = make_worker(db, clock, handler)

    for _ in range(3):
        worker.run_once()
        assert job(db, pk).status == "retrying"
        clock.advance(3600)
    worker.run_once()
    info = job(db, pk)
    assert (info.status, info.attempts) == ("failed", 4)
    assert info.last_error == "outage 3 (after 4 attempts)"
    clock.advance(3600)
    assert worker.run_once() == 0, "a parked job stays parked"


def test_a_permanent_failure_is_parked_at_once(db: Database) -> None:
    clock = Clock()
    pk = queue_job(db, "test", "k", {}, START)
    worker = make_worker(db, clock, Recorder([PermanentJobError("HTTP 400: bad address")]))
    worker.run_once()
    info = job(db, pk)
    assert (info.status, info.attempts, info.last_error) == (
        "failed",
        1,
        "HTTP 400: bad address",
    )


def test_an_unexpected_error_is_retried(db: Database) -> None:
    clock = Clock()
    pk = queue_job(db, "test", "k", {}, START)
    worker = make_worker(db, clock, Recorder([KeyError("template")]))
    worker.run_once()
    info = job(db, pk)
    assert (info.status, info.last_error) == ("retrying", "unexpected error: KeyError")


def test_a_failed_job_is_retried_on_request_with_fresh_attempts(db: Database) -> None:
    clock = Clock()
    pk = queue_job(db, "test", "k", {}, START)
    handler = Recorder([PermanentJobError("rejected")])
    worker = make_worker(db, clock, handler)
    worker.run_once()
    with db.write() as conn:
        assert job_store.requeue(conn, clock.now) == [pk]
    assert (job(db, pk).status, job(db, pk).attempts) == ("queued", 0)
    worker.run_once()
    assert (job(db, pk).status, job(db, pk).attempts) == ("done", 1)


def test_jobs_with_one_key_are_applied_in_commit_order(db: Database) -> None:
    clock = Clock()
    first = queue_job(db, "test", "user:1", {"n": 1}, START)
    other = queue_job(db, "test", "user:2", {"n": 2}, START)
    second = queue_job(db, "test", "user:1", {"n": 3}, START)
    handler = Recorder([TransientJobError("busy")])
    worker = make_worker(db, clock, handler)

    worker.run_once()
    assert [applied.pk for applied in handler.applied] == [first, other]
    assert job(db, second).status == "queued", "held back while the first one retries"

    clock.advance(10)
    worker.run_once()
    worker.run_once()
    assert [applied.pk for applied in handler.applied] == [first, other, first, second]


def test_a_parked_job_no_longer_holds_back_its_key(db: Database) -> None:
    clock = Clock()
    first = queue_job(db, "test", "user:1", {}, START)
    second = queue_job(db, "test", "user:1", {}, START)
    worker = make_worker(db, clock, Recorder([PermanentJobError("rejected")]))
    worker.run_once()
    worker.run_once()
    assert job(db, first).status == "failed"
    assert job(db, second).status == "done"


def test_jobs_of_another_kind_do_not_hold_back_a_key(db: Database) -> None:
    """An LDAP outage must not delay a user's password reset email."""
    clock = Clock()
    queue_job(db, "ldap", "user:1", {}, START)
    pk = queue_job(db, "test", "user:1", {}, START)
    worker = make_worker(db, clock, Recorder())
    assert worker.run_once() == 1
    assert job(db, pk).status == "done"


class WorkerDied(BaseException):
    """The process ends between applying a job and recording it."""


def test_a_job_whose_worker_died_is_applied_again_once_its_lease_ends(db: Database) -> None:
    clock = Clock()
    pk = queue_job(db, "test", "k", {}, START)
    dying = make_worker(db, clock, Recorder([WorkerDied()]), lease=timedelta(seconds=60))
    with pytest.raises(WorkerDied):
        dying.run_once()
    assert job(db, pk).status == "running"

    handler = Recorder()
    restarted = make_worker(db, clock, handler, lease=timedelta(seconds=60))
    clock.advance(59)
    assert restarted.run_once() == 0, "not claimed twice while the lease holds"
    clock.advance(1)
    assert restarted.run_once() == 1
    assert [applied.attempts for applied in handler.applied] == [2]
    assert job(db, pk).status == "done"


def test_a_worker_that_lost_its_claim_cannot_settle_the_job(db: Database) -> None:
    clock = Clock()
    pk = queue_job(db, "test", "k", {}, START)
    lease_until = clock.now + timedelta(seconds=60)
    with db.write() as conn:
        (stale,) = job_store.claim_jobs(conn, ["test"], clock.now, lease_until, 10)
    clock.advance(61)
    with db.write() as conn:
        (fresh,) = job_store.claim_jobs(
            conn, ["test"], clock.now, clock.now + timedelta(seconds=60), 10
        )
    with db.write() as conn:
        assert not job_store.park(conn, stale, clock.now, "late")
        assert job_store.mark_done(conn, fresh, clock.now)
    assert (job(db, pk).status, job(db, pk).attempts) == ("done", 2)


def test_a_job_abandoned_too_often_is_parked_without_another_try(db: Database) -> None:
    clock = Clock()
    pk = queue_job(db, "test", "k", {}, START)
    for _ in range(4):
        with db.write() as conn:
            job_store.claim_jobs(conn, ["test"], clock.now, clock.now, 10)
    handler = Recorder()
    make_worker(db, clock, handler).run_once()
    assert handler.applied == []
    assert job(db, pk).status == "failed"
    assert job(db, pk).last_error == "gave up after 4 attempts without an outcome"


def test_stopping_hands_back_the_jobs_not_started(db: Database) -> None:
    clock = Clock()
    first = queue_job(db, "test", "a", {}, START)
    second = queue_job(db, "test", "b", {}, START)
    stop = threading.Event()

    def stop_after_first(applied: Job) -> None:
        stop.set()

    make_worker(db, clock, stop_after_first).run_once(stop)
    assert job(db, first).status == "done"
    assert (job(db, second).status, job(db, second).attempts) == ("queued", 0)


def test_jobs_left_when_half_the_lease_is_spent_are_handed_back(db: Database) -> None:
    clock = Clock()
    first = queue_job(db, "test", "a", {}, START)
    second = queue_job(db, "test", "b", {}, START)

    def slow(applied: Job) -> None:
        clock.advance(31)

    make_worker(db, clock, slow, lease=timedelta(seconds=60)).run_once()
    assert job(db, first).status == "done"
    assert (job(db, second).status, job(db, second).attempts) == ("queued", 0)


def test_two_workers_apply_each_job_exactly_once_in_key_order(database_url: str) -> None:
    setup = Database(database_url)
    upgrade(setup)
    keys = [f"user:{n}" for n in range(8)]
    now = datetime.now(UTC)
    queued = [queue_job(setup, "test", keys[n % 8], {"n": n}, now) for n in range(96)]
    applied: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def handler(job: Job) -> None:
        with lock:
            applied.append((threading.current_thread().name, job.pk, job.ordering_key))
        time.sleep(0.001)

    def drain(name: str) -> None:
        database = Database(database_url)
        worker = OutboxWorker(database, {"test": handler}, batch_size=5)
        try:
            idle = 0
            while idle < 3:
                idle = 0 if worker.run_once() else idle + 1
                time.sleep(0.002)
        finally:
            database.dispose()

    threads = [threading.Thread(target=drain, args=(name,), name=name) for name in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(pk for _, pk, _ in applied) == queued, "every job once, none twice"
    for key in keys:
        in_key = [pk for _, pk, k in applied if k == key]
        assert in_key == sorted(in_key), f"{key} applied out of order"
    assert {name for name, _, _ in applied} == {"A", "B"}, "both workers took part"
    with setup.read() as conn:
        assert {info.status for info in job_store.list_jobs(conn, limit=1000)} == {"done"}
    setup.dispose()


def test_metrics_count_attempts_outcomes_and_measure_the_queue(db: Database) -> None:
    clock = Clock()
    metrics = Metrics()
    queue_job(db, "test", "a", {}, START)
    queue_job(db, "test", "b", {}, START)
    queue_job(db, "test", "c", {}, START + timedelta(seconds=5))
    handler = Recorder([TransientJobError("busy"), PermanentJobError("no")])
    worker = make_worker(db, clock, handler, metrics=metrics)

    clock.advance(90)
    record_queue_gauges(db, metrics, clock.now)
    assert metrics.value(QUEUE_DEPTH, {"kind": "test", "status": "queued"}) == 3
    assert metrics.value(OLDEST_AGE, {"kind": "test"}) == 90

    worker.run_once()
    labels = {"kind": "test"}
    assert metrics.value(ATTEMPTS, labels) == 3
    assert metrics.value(RETRIES, labels) == 1
    assert metrics.value(FAILURES, labels) == 1
    assert metrics.value(DONE, labels) == 1

    record_queue_gauges(db, metrics, clock.now)
    assert metrics.value(QUEUE_DEPTH, {"kind": "test", "status": "queued"}) == 0
    assert metrics.value(QUEUE_DEPTH, {"kind": "test", "status": "retrying"}) == 1
    assert metrics.value(QUEUE_DEPTH, {"kind": "test", "status": "failed"}) == 1
    assert metrics.value(OLDEST_AGE, {"kind": "test"}) == 90


def test_only_one_in_process_worker_runs_per_database(database: Database, tmp_path: Any) -> None:
    lock_path = tmp_path / "outbox.lock"
    workers = [
        InProcessWorker(OutboxWorker(database, {"test": Recorder()}), lock_path, poll_interval=0.01)
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        deadline = time.monotonic() + 5
        while not any(worker.elected.is_set() for worker in workers):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.05)
        assert sum(worker.elected.is_set() for worker in workers) == 1
    finally:
        for worker in workers:
            worker.stop()
