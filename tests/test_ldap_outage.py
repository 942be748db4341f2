"""Directory outages: SCIM keeps working, jobs wait unparked, the directory catches up."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scimbridge.adapters.ldap import LdapDirectory
from scimbridge.adapters.ldap import entry_builder
from scimbridge.service.ldap.reconcile import LdapReconciler
from scimbridge.service.outbox.worker import BatchResult
from scimbridge.service.outbox.worker import JobResult
from scimbridge.service.outbox.worker import OutboxWorker
from scimbridge.service.outbox.worker import RetryPolicy
from scimbridge.service.outbox.worker import UnavailableJobError
from scimbridge.store import jobs as job_store
from scimbridge.store.database import Database
from scimbridge.store.jobs import Job
from scimbridge.store.migrations import upgrade

from .conftest import group_payload
from .conftest import patch_payload
from .conftest import user_payload
from .ldap_server import SlapdServer
from .ldap_support import LdapSyncEnv
from .ldap_support import env
from .ldap_support import pending_jobs
from .outbox_support import Clock
from .outbox_support import job
from .outbox_support import queue_job

__all__ = ["env"]


class _Writes:
    """A deterministic mix of SCIM writes an identity provider makes, counted as they go."""

    def __init__(self, env: LdapSyncEnv) -> None:
        self.scim = env.scim
        self.users: list[str] = []
        self.groups: list[str] = []
        self.statuses: list[int] = []

    def send(self, method: str, path: str, body: Any = None) -> Any:
        response = self.scim.request(method, path, body)
        self.statuses.append(response.status_code)
        return response

    def next(self, step: int) -> None:
        """Make write number ``step``: creates first, then changes of every kind."""
        if step < 150:
            body = user_payload(f"user{step}", title="Engineer", displayName=f"User {step}")
            self.users.append(self.send("POST", "/Users", body).json["id"])
        elif step < 160:
            members = self.users[(step - 150) * 10 : (step - 150) * 10 + 5]
            self.groups.append(
                self.send("POST", "/Groups", group_payload(f"g{step}", members)).json["id"]
            )
        else:
            user = self.users[step % 150]
            group = self.groups[step % 10]
            kind = step % 7
            if kind == 0:
                operation = {"op": "replace", "path": "title", "value": f"Title {step}"}
                self.send("PATCH", f"/Users/{user}", patch_payload(operation))
            elif kind == 1:
                operation = {"op": "replace", "path": "active", "value": step % 2 == 0}
                self.send("PATCH", f"/Users/{user}", patch_payload(operation))
            elif kind == 2:
                operation = {"op": "add", "path": "members", "value": [{"value": user}]}
                self.send("PATCH", f"/Groups/{group}", patch_payload(operation))
            elif kind == 3:
                operation = {"op": "remove", "path": f'members[value eq "{user}"]'}
                self.send("PATCH", f"/Groups/{group}", patch_payload(operation))
            elif kind == 4:
                operation = {"op": "replace", "path": "userName", "value": f"user{step}-renamed"}
                self.send("PATCH", f"/Users/{user}", patch_payload(operation))
            elif kind == 5:
                operation = {"op": "replace", "path": "displayName", "value": f"g{step}"}
                self.send("PATCH", f"/Groups/{group}", patch_payload(operation))
            else:
                body = user_payload(f"late{step}")
                self.users[step % 150] = self.send("POST", "/Users", body).json["id"]
                self.send("DELETE", f"/Users/{user}")


def test_a_directory_outage_fails_no_scim_write_and_the_directory_converges(
    env: LdapSyncEnv, slapd: SlapdServer
) -> None:
    """1,000 SCIM writes with slapd stopped in the middle are all accepted.

    Once slapd is back the directory converges, and reconcile finds nothing to repair.
    """
    stop = threading.Event()
    worker = threading.Thread(target=env.worker.run, args=(stop, 0.02), daemon=True)
    worker.start()
    writes = _Writes(env)
    try:
        step = 0
        while len(writes.statuses) < 1000:
            if step == 400:
                slapd.stop()
            writes.next(step)
            step += 1
        assert pending_jobs(env.database) > 0  # the directory is behind while it is down
        slapd.start()
        deadline = time.monotonic() + 60
        while pending_jobs(env.database) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(10)
    assert [status for status in writes.statuses if status >= 300] == []
    with env.database.read() as conn:
        infos = job_store.list_jobs(conn, kind="ldap", limit=10_000)
    assert [info.last_error for info in infos if info.status != "done"] == []
    with LdapDirectory(env.ldap) as directory:
        report = LdapReconciler(env.database, directory, entry_builder(env.ldap)).run(dry_run=True)
    assert [str(difference) for difference in report.differences] == []
    assert report.entries_compared > 300


def test_readiness_reports_the_directory_degraded_while_it_is_unreachable(
    env: LdapSyncEnv, slapd: SlapdServer
) -> None:
    """/readyz stays 200: an unreachable directory degrades scimbridge, SCIM still writes."""
    client = env.app.test_client()
    env.app.extensions["scimbridge.directory_health"].cache_seconds = 0
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["status"] == "ok"
    assert ready.json["checks"]["directory"]["status"] == "ok"
    slapd.stop()
    try:
        assert env.scim.post("/Users", user_payload("while-down")).status_code == 201
        degraded = client.get("/readyz")
        assert degraded.status_code == 200
        assert degraded.json["status"] == "degraded"
        directory = degraded.json["checks"]["directory"]
        assert directory["status"] == "unreachable"
        assert "cannot reach" in directory["error"]
        assert directory["pending_jobs"] == 1
        assert env.worker.run_once() == 1  # tried, handed back, nothing parked
        assert pending_jobs(env.database) == 1
    finally:
        slapd.start()
    env.worker._paused_until.clear()
    env.drain()
    assert client.get("/readyz").json["status"] == "ok"


def test_readiness_without_a_directory_only_checks_the_store(client_app: Any) -> None:
    """LDAP sync off: the directory is reported off, the instance ready."""
    ready = client_app.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {
        "status": "ok",
        "checks": {
            "database": {"status": "ok"},
            "directory": {"status": "off"},
            "outbox": {"status": "ok", "lanes": {"email": _IDLE_LANE}},
        },
    }


_IDLE_LANE = {"depth": 0, "running": 0, "retrying": 0, "failed": 0, "lag_seconds": 0.0}


@pytest.fixture
def client_app(app: Any) -> Any:
    return app.test_client()


class _Unreachable:
    """A batch handler whose system is down until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False
        self.applied: list[int] = []

    def __call__(self, job: Job) -> None:
        raise AssertionError("batch handlers are called with batches")

    def apply_batch(self, jobs: Any, must_stop: Any) -> BatchResult:
        if not self.up:
            first = JobResult(error=UnavailableJobError("connection refused"))
            return BatchResult([first, *[JobResult(started=False) for _ in jobs[1:]]])
        self.applied.extend(job.pk for job in jobs)
        return BatchResult([JobResult() for _ in jobs])


def test_an_unreachable_system_pauses_its_kind_without_using_attempts(tmp_path: Path) -> None:
    """Jobs of an unavailable kind wait, attempts untouched; other kinds keep flowing."""
    database = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    upgrade(database)
    clock = Clock()
    ldap = _Unreachable()
    emails: list[int] = []
    worker = OutboxWorker(
        database,
        {"ldap": ldap, "email": lambda job: emails.append(job.pk)},
        policy=RetryPolicy(max_attempts=2, base_seconds=10, max_seconds=600),
        clock=clock,
        jitter=lambda: 1.0,
    )
    first = queue_job(database, "ldap", "user:1", {}, clock.now)
    second = queue_job(database, "ldap", "user:2", {}, clock.now)
    mail = queue_job(database, "email", "user:1", {}, clock.now)
    for _ in range(5):  # an outage far longer than max_attempts would allow
        worker.run_once()
        clock.advance(61)
    assert emails == [mail]
    assert (job(database, first).status, job(database, first).attempts) == ("queued", 0)
    assert job(database, first).last_error == "connection refused"
    assert job(database, second).status == "queued"
    worker.run_once()
    assert worker.run_once() == 0  # paused: nothing claimed until the pause ends
    ldap.up = True
    clock.advance(61)
    worker.run_once()
    assert ldap.applied == [first, second]
    assert job(database, first).status == job(database, second).status == "done"
    database.dispose()
