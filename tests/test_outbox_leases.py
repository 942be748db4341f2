"""Short renewed leases: a killed worker's jobs come back in seconds, a live one keeps its own.

Also: SMTP connections reused across messages, and SQLite's durability setting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from scimbridge.app import create_app
from scimbridge.service.outbox.lanes import OutboxLanes
from scimbridge.service.outbox.worker import OutboxWorker
from scimbridge.settings import MailSettings
from scimbridge.settings import Settings
from scimbridge.store import jobs as job_store
from scimbridge.store.database import Database
from scimbridge.store.jobs import Job
from scimbridge.store.migrations import upgrade
from scimbridge.worker import email_delivery

from .conftest import ScimClient
from .conftest import created
from .conftest import make_settings
from .conftest import user_payload
from .ldap_server import SlapdServer
from .ldap_support import ldap_settings
from .lifecycle_support import ROLES_FILE
from .mail_server import SmtpServer
from .outbox_support import queue_invitation
from .outbox_support import queue_job
from .services import scimbridge_command

USERS = 300


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _statuses(database: Database) -> dict[int, tuple[str, str]]:
    return {pk: (kind, status) for pk, (kind, status, _) in _jobs(database).items()}


def _jobs(database: Database) -> dict[int, tuple[str, str, int]]:
    with database.read() as conn:
        infos = job_store.list_jobs(conn, limit=100_000)
    return {info.pk: (info.kind, info.status, info.attempts) for info in infos}


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not reaped by its new parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _lanes_running(log: Path, pid: int) -> bool:
    """Whether the worker process ``pid`` logged that its lanes run."""
    return any(
        f"[{pid}] INFO scimbridge." in line and "outbox lanes running" in line
        for line in log.read_text().splitlines()
    )


def test_two_workers_never_run_a_job_twice_though_some_outlast_the_lease(
    database_url: str,
) -> None:
    """Two lane sets on their own engines share the queue; slow jobs keep their lease.

    The lease is 1 s and three jobs take 2.5 s: without renewal the other worker would
    claim them again and apply them a second time.
    """
    setup = Database(database_url)
    upgrade(setup)
    now = datetime.now(UTC)
    keys = [f"user:{n}" for n in range(12)]
    queued = [
        queue_job(setup, "test", keys[n % 12], {"slow": n in (3, 40, 77)}, now) for n in range(120)
    ]
    applied: list[tuple[str, int, str]] = []
    running: set[int] = set()
    overlaps: list[int] = []
    lock = threading.Lock()

    def handler_of(name: str) -> Callable[[Job], None]:
        def apply(job: Job) -> None:
            with lock:
                if job.pk in running:
                    overlaps.append(job.pk)
                running.add(job.pk)
                applied.append((name, job.pk, job.ordering_key))
            time.sleep(2.5 if job.payload["slow"] else 0.002)
            with lock:
                running.discard(job.pk)

        return apply

    stop = threading.Event()
    databases = [Database(database_url) for _ in "AB"]
    lanes = [
        OutboxLanes.build(db, {"test": handler_of(name)}, lease=timedelta(seconds=1), batch_size=5)
        for db, name in zip(databases, "AB", strict=True)
    ]
    threads = [threading.Thread(target=lane.run, args=(stop, 0.01)) for lane in lanes]
    for thread in threads:
        thread.start()
    try:
        _wait(
            lambda: {status for _, status in _statuses(setup).values()} == {"done"},
            60,
            "every job to be done",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        for db in [setup, *databases]:
            db.dispose()

    assert overlaps == [], "a job ran twice at the same time"
    assert sorted(pk for _, pk, _ in applied) == queued, "every job once, none twice"
    for key in keys:
        in_key = [pk for _, pk, k in applied if k == key]
        assert in_key == sorted(in_key), f"{key} applied out of order"
    assert {name for name, _, _ in applied} == {"A", "B"}, "both workers took part"


def test_a_worker_killed_mid_batch_has_its_jobs_resumed_within_10_s_of_restart(
    slapd: SlapdServer, tmp_path: Path
) -> None:
    """``kill -9`` while LDAP and mail jobs are in hand; the restarted worker finishes them.

    The default lease applies (no lease setting): the dead worker's claims end seconds
    after its last renewal, not minutes.
    """
    url = f"sqlite:///{tmp_path / 'scimbridge.db'}"
    hold = threading.Event()
    smtp = SmtpServer(hold=hold).start()
    ldap = ldap_settings(slapd)
    settings = make_settings(
        url, ldap=ldap, lifecycle={"on_scim_create": "invite"}, roles={"file": ROLES_FILE}
    )
    database = Database(url)
    upgrade(database)
    app = create_app(settings, database)
    scim = ScimClient(app.test_client(), app.extensions["scimbridge"].tokens.create("idp"))
    for n in range(USERS):
        body = user_payload(f"k{n}", emails=[{"value": f"k{n}@example.com", "primary": True}])
        created(scim.post("/Users", body))
    env = {
        **os.environ,
        "SCIMBRIDGE_DATABASE_URL": url,
        "SCIMBRIDGE_PUBLIC_URL": settings.public_url,
        "SCIMBRIDGE_ROLES__FILE": str(ROLES_FILE),
        "SCIMBRIDGE_MAIL__TRANSPORT": "smtp",
        "SCIMBRIDGE_MAIL__SMTP_HOST": "127.0.0.1",
        "SCIMBRIDGE_MAIL__SMTP_PORT": str(smtp.port),
        "SCIMBRIDGE_MAIL__SMTP_SECURITY": "none",
        "SCIMBRIDGE_LDAP__URL": ldap.url or "",
        "SCIMBRIDGE_LDAP__BIND_DN": ldap.bind_dn or "",
        "SCIMBRIDGE_LDAP__BIND_PASSWORD": slapd.admin_password,
        "SCIMBRIDGE_LDAP__USERS_DN": ldap.users_dn or "",
        "SCIMBRIDGE_LDAP__GROUPS_DN": ldap.groups_dn or "",
        "SCIMBRIDGE_WORKER__POLL_INTERVAL_SECONDS": "0.1",
    }
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    second: subprocess.Popen[bytes] | None = None
    try:
        # Both peers hold the job in hand: slapd is frozen (the LDAP lane waits for its
        # answer), the SMTP server keeps the message without confirming it.
        assert slapd.process is not None
        os.kill(slapd.process.pid, signal.SIGSTOP)
        try:
            first = subprocess.Popen([*scimbridge_command(), "worker"], env=env, stderr=log)
            try:

                def both_kinds_in_hand() -> bool:
                    ldap_running = ("ldap", "running") in _statuses(database).values()
                    return smtp.data_arrived.is_set() and ldap_running

                _wait(both_kinds_in_hand, 60, "a worker holding LDAP and mail jobs mid-batch")
                lanes = _children(first.pid)
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait()
        finally:
            os.kill(slapd.process.pid, signal.SIGCONT)
        assert len(lanes) == 2, "a process per lane"
        _wait(lambda: not any(_alive(pid) for pid in lanes), 10, "the lanes to die with it")
        hold.set()
        orphans = {
            pk: (kind, attempts)
            for pk, (kind, status, attempts) in _jobs(database).items()
            if status == "running"
        }
        assert {kind for kind, _ in orphans.values()} == {"ldap", "email"}, "held both kinds"

        second = subprocess.Popen([*scimbridge_command(), "worker"], env=env, stderr=log)
        # Python's start-up on a loaded machine is not the lease's doing: count from the
        # moment the restarted worker runs its lanes.
        _wait(lambda: _lanes_running(log_path, second.pid), 120, "the restarted worker")
        restarted = time.monotonic()

        def resumed() -> bool:
            jobs = _jobs(database)
            return all(
                jobs[pk][1] == "done" or jobs[pk][2] > attempts
                for pk, (_, attempts) in orphans.items()
            )

        _wait(resumed, 30, "the restarted worker to claim the dead worker's jobs again")
        resumed_after = time.monotonic() - restarted
        _wait(
            lambda: {status for _, status in _statuses(database).values()} == {"done"},
            120,
            "every job to be done",
        )
    finally:
        if second is not None:
            second.terminate()
            second.wait(30)
        log.close()
        smtp.stop()
        database.dispose()
    assert resumed_after < 10, f"the dead worker's jobs took {resumed_after:.1f} s to resume"
    invited = {tuple(received.rcpt_tos) for received in smtp.received}
    assert len(invited) == USERS, "every invitation arrived (some twice: at least once)"


class _CountingSmtpServer(SmtpServer):
    """An SMTP server that notes the client connection each message came on."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


def test_one_smtp_connection_carries_many_messages(database: Database) -> None:
    server = _CountingSmtpServer().start()
    try:
        settings: Settings = make_settings(
            str(database.url),
            mail=MailSettings(
                transport="smtp", smtp_host="127.0.0.1", smtp_port=server.port, smtp_security="none"
            ),
        )
        for n in range(5):
            queue_invitation(
                database, f"u{n}@example.com", f"http://scim.test/i/{n}", now=datetime.now(UTC)
            )
        worker = OutboxWorker(database, {"email": email_delivery(settings)})
        assert worker.run_once() == 5
        worker.close()
    finally:
        server.stop()
    assert len(server.received) == 5
    assert len(set(server.peers)) == 1, "all five messages went over one connection"


@pytest.mark.parametrize(("setting", "syncs"), [("FULL", True), ("NORMAL", False)])
def test_sqlite_commits_are_synced_as_the_setting_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, syncs: bool
) -> None:
    """FULL: each write syncs the log itself once committed; NORMAL: only checkpoints do."""
    path = tmp_path / "db.sqlite"
    database = Database(f"sqlite:///{path}", sqlite_synchronous=setting)
    synced: list[str] = []
    real_fdatasync = os.fdatasync

    def fdatasync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fdatasync(descriptor)

    try:
        with database.write() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with database.read() as conn:
            # SQLite's own per-commit sync is off either way: FULL is done by write().
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
        monkeypatch.setattr(os, "fdatasync", fdatasync)
        with database.write() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            assert synced == []  # not before the commit
    finally:
        database.dispose()
    assert synced == ([os.path.realpath(f"{path}-wal")] if syncs else [])


def test_a_commit_is_synced_after_the_writer_lock_and_before_write_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one writer waits for its sync, the next commits; the first returns after its sync."""
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}", sqlite_synchronous="FULL")
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    in_sync, release = threading.Event(), threading.Event()
    real_fdatasync = os.fdatasync
    first_thread = threading.get_ident()
    events: list[str] = []

    def fdatasync(descriptor: int) -> None:
        if threading.get_ident() == first_thread:
            in_sync.set()
            assert release.wait(30)
        real_fdatasync(descriptor)

    monkeypatch.setattr(os, "fdatasync", fdatasync)

    def second_writer() -> None:
        assert in_sync.wait(30)
        with database.write() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        events.append("second committed")
        release.set()

    other = threading.Thread(target=second_writer)
    other.start()
    try:
        with database.write() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        events.append("first returned")
    finally:
        release.set()
        other.join(30)
    with database.read() as conn:
        assert sorted(conn.exec_driver_sql("SELECT x FROM t").scalars()) == [1, 2]
    database.dispose()
    assert events == ["second committed", "first returned"]


def test_sqlite_survives_power_loss_by_default() -> None:
    """FULL unless told otherwise, in the store and in the settings."""
    assert Settings().sqlite_synchronous == "FULL"
    with pytest.raises(ValueError, match="sqlite_synchronous"):
        Database("sqlite://", sqlite_synchronous="OFF")
