"""Outbox lanes against real peers: a hung SMTP relay or a frozen slapd delays only its own kind.

The lanes run as ``scimbridge worker`` and ``serve`` run them (``build_lanes``), on threads,
while users are created through SCIM with invitations on. Each lane's lag is sampled from the
job table, as ``/readyz`` and ``scimbridge jobs status`` report it.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scimbridge.app import create_app
from scimbridge.cli.main import main
from scimbridge.service.ldap.sync import LDAP_JOB
from scimbridge.service.mail.queue import EMAIL_JOB
from scimbridge.service.outbox.status import lane_metrics
from scimbridge.settings import MailSettings
from scimbridge.settings import RolesSettings
from scimbridge.settings import Settings
from scimbridge.store import jobs as job_store
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade
from scimbridge.worker import build_lanes

from .admin_support import Directory
from .admin_support import PageClient
from .conftest import ScimClient
from .conftest import created
from .conftest import make_settings
from .conftest import user_payload
from .ldap_server import SlapdServer
from .ldap_support import fast_worker_settings
from .ldap_support import ldap_settings
from .lifecycle_support import ROLES_FILE
from .lifecycle_support import use_fast_password_hashing
from .mail_server import SmtpServer
from .outbox_support import queue_job

LAG_BOUND = 2.0
"""Seconds a lane may lag while only the other lane's peer is in trouble."""


class SilentRelay:
    """A TCP server that accepts connections and never sends a byte (a hung SMTP relay)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.accepted.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self.accepted:
            connection.close()


class Pipeline:
    """scimbridge with LDAP sync and SMTP invitations, its SCIM client and running lanes."""

    def __init__(self, database_url: str, settings: Settings) -> None:
        self.settings = settings
        self.database = Database(database_url)
        upgrade(self.database)
        app = create_app(settings, self.database)
        self.scim = ScimClient(app.test_client(), app.extensions["scimbridge"].tokens.create("i"))
        self.lanes = build_lanes(settings, self.database)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.lanes.run, args=(self._stop, 0.02), name="lanes", daemon=True
        )
        self.max_lag: dict[str, float] = {EMAIL_JOB: 0.0, LDAP_JOB: 0.0}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self.database.dispose()

    def sample_lag(self) -> dict[str, float]:
        """Record each lane's lag now; return it."""
        lags = {lane.kind: lane.lag_seconds for lane in lane_metrics(self.database)}
        for kind, lag in lags.items():
            self.max_lag[kind] = max(self.max_lag.get(kind, 0.0), lag)
        return lags

    def create_users(self, count: int, prefix: str, seconds: float) -> None:
        """Create ``count`` invited users spread over ``seconds``, sampling lags meanwhile."""
        for n in range(count):
            body = user_payload(
                f"{prefix}{n}", emails=[{"value": f"{prefix}{n}@example.com", "primary": True}]
            )
            created(self.scim.post("/Users", body))
            self.sample_lag()
            time.sleep(seconds / count)

    def wait_until_drained(self, kind: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sample_lag()
            if not _depth(self.database, kind):
                return
            time.sleep(0.05)
        raise AssertionError(f"the {kind} lane did not drain in {timeout} s")


def _depth(database: Database, kind: str) -> int:
    return sum(lane.pending for lane in lane_metrics(database) if lane.kind == kind)


def _settings(database_url: str, slapd: SlapdServer, smtp_port: int, **mail: Any) -> Settings:
    return make_settings(
        database_url,
        ldap=ldap_settings(slapd),
        worker=fast_worker_settings(),
        roles=RolesSettings(file=ROLES_FILE),
        lifecycle={"on_scim_create": "invite"},
        mail=MailSettings(
            transport="smtp",
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_security="none",
            **mail,
        ),
    )


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def test_a_relay_that_never_answers_delays_mail_but_not_ldap_sync(
    slapd: SlapdServer, tmp_path: Path
) -> None:
    """Users created while the SMTP relay hangs reach LDAP within 2 s; invitations wait."""
    relay = SilentRelay()
    url = f"sqlite:///{tmp_path / 'scimbridge.db'}"
    pipeline = Pipeline(url, _settings(url, slapd, relay.port, timeout_seconds=3.0))
    pipeline.start()
    try:
        pipeline.create_users(40, "hung", seconds=6.0)
        pipeline.wait_until_drained(LDAP_JOB, timeout=LAG_BOUND)
        assert relay.accepted, "the mail lane was expected to try the relay"
        assert _depth(pipeline.database, EMAIL_JOB) > 0, "no invitation can have gone out"
    finally:
        pipeline.stop()
        relay.close()
    assert pipeline.max_lag[LDAP_JOB] < LAG_BOUND, pipeline.max_lag
    assert pipeline.max_lag[EMAIL_JOB] > LAG_BOUND, "the relay was expected to hold the mail"


def test_a_frozen_directory_delays_ldap_sync_but_not_invitations(
    slapd: SlapdServer, smtp: SmtpServer, tmp_path: Path
) -> None:
    """With slapd stopped by SIGSTOP (it accepts, never answers), invitations go out in 2 s."""
    url = f"sqlite:///{tmp_path / 'scimbridge.db'}"
    pipeline = Pipeline(url, _settings(url, slapd, smtp.port))
    pipeline.start()
    assert slapd.process is not None
    try:
        pipeline.create_users(2, "before", seconds=0.2)
        pipeline.wait_until_drained(LDAP_JOB, timeout=10)  # the LDAP lane holds a connection
        os.kill(slapd.process.pid, signal.SIGSTOP)
        try:
            pipeline.create_users(40, "frozen", seconds=6.0)
            pipeline.wait_until_drained(EMAIL_JOB, timeout=LAG_BOUND)
            assert _depth(pipeline.database, LDAP_JOB) > 0, "the directory cannot have answered"
        finally:
            os.kill(slapd.process.pid, signal.SIGCONT)
        pipeline.wait_until_drained(LDAP_JOB, timeout=60)
    finally:
        pipeline.stop()
    assert len(smtp.received) >= 42
    assert pipeline.max_lag[EMAIL_JOB] < LAG_BOUND, pipeline.max_lag
    assert pipeline.max_lag[LDAP_JOB] > LAG_BOUND, "the frozen slapd was expected to hold LDAP"


def test_lane_metrics_report_depth_running_and_lag_of_every_lane(database: Database) -> None:
    """A lane that runs is reported with depth 0; another kind's jobs are measured."""
    now = datetime.now(UTC)
    queue_job(database, LDAP_JOB, "user:a", {}, now - timedelta(seconds=30))
    queue_job(database, LDAP_JOB, "user:b", {}, now - timedelta(seconds=10))
    with database.write() as conn:
        job_store.claim_jobs(conn, [LDAP_JOB], now, now + timedelta(seconds=6), 1)

    ldap, email = sorted(lane_metrics(database, [EMAIL_JOB], now), key=lambda lane: lane.kind)[::-1]
    assert (email.kind, email.pending, email.running, email.lag_seconds) == (EMAIL_JOB, 0, 0, 0)
    assert (ldap.kind, ldap.pending, ldap.running) == (LDAP_JOB, 2, 1)
    assert ldap.lag_seconds == pytest.approx(30, abs=0.01)


def test_jobs_status_prints_one_line_per_lane(database: Database) -> None:
    queue_job(database, EMAIL_JOB, "user:a", {}, datetime.now(UTC) - timedelta(seconds=5))
    result = CliRunner().invoke(
        main, ["jobs", "status"], env={"SCIMBRIDGE_DATABASE_URL": str(database.url)}
    )
    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()  # LDAP sync is off: only the mail lane runs
    fields = line.split("\t")
    assert fields[:5] == ["lane email", "depth 1", "running 0", "retrying 0", "parked 0"]
    assert fields[5].startswith("lag 5.") or fields[5].startswith("lag 6."), fields[5]


def test_readyz_shows_the_lanes(app: Any, database: Database) -> None:
    queue_job(database, EMAIL_JOB, "user:a", {}, datetime.now(UTC))
    lanes = app.test_client().get("/readyz").json["checks"]["outbox"]["lanes"]
    assert lanes["email"]["depth"] == 1
    assert set(lanes["email"]) == {"depth", "running", "retrying", "failed", "lag_seconds"}


def test_the_sync_and_mail_page_shows_each_lane_with_its_jobs_in_hand(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fast_password_hashing(monkeypatch)
    settings = make_settings(sqlite_url, roles={"file": ROLES_FILE})
    database = Database(settings.database_url)
    upgrade(database)
    try:
        directory = Directory(create_app(settings, database), database)
        directory.admin()
        now = datetime.now(UTC)
        queue_job(database, EMAIL_JOB, "user:x", {}, now)
        with database.write() as conn:
            (in_hand,) = job_store.claim_jobs(conn, [EMAIL_JOB], now, now + timedelta(seconds=6), 1)
        waiting = sum(lane.pending for lane in lane_metrics(database))
        browser = PageClient(directory.app)
        browser.login("ada.admin@example.com")
        page = browser.get("/admin/status").text
    finally:
        database.dispose()
    assert "Lanes" in page
    assert f'<td data-label="Waiting" class="num">{waiting}</td>' in page
    assert '<td data-label="Of which in hand" class="num">1</td>' in page
