"""``scimbridge worker`` run apart from the app serves its own metrics: a real worker, scraped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import IO
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from scimbridge.service.operations.metrics import scrape_allowed
from scimbridge.settings import MetricsSettings
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade
from scimbridge.worker_metrics import MetricsEndpointRefused
from scimbridge.worker_metrics import endpoint_settings

from .conftest import created
from .conftest import user_payload
from .ldap_support import LdapSyncEnv
from .ldap_support import env
from .mail_server import SmtpServer
from .mail_server import smtp_settings_env
from .outbox_support import queue_invitation
from .services import free_port
from .services import scimbridge_command

METRICS_TOKEN = "worker-scraper-secret-0123456789"
__all__ = ["env"]

LINK = "https://id.example.com/invitation/s3cr3t-link"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def _worker(env: dict[str, str], log: IO[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([*scimbridge_command(), "worker"], env=env, stderr=log)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(refused={"nobody@example.com"}).start()
    yield server
    server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, Database]]:
    url = f"sqlite:///{tmp_path / 'scimbridge.db'}"
    database = Database(url)
    upgrade(database)
    yield url, database
    database.dispose()


def _env(url: str, smtp: SmtpServer, port: int, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "SCIMBRIDGE_DATABASE_URL": url,
        **smtp_settings_env(smtp),
        "SCIMBRIDGE_WORKER__POLL_INTERVAL_SECONDS": "0.1",
        "SCIMBRIDGE_METRICS__WORKER_LISTEN": f"127.0.0.1:{port}",
        **more,
    }


@pytest.mark.parametrize("lane_processes", ["true", "false"])
def test_the_worker_serves_the_counts_of_its_lanes_and_the_queue_from_the_store(
    store: tuple[str, Database], smtp: SmtpServer, tmp_path: Path, lane_processes: str
) -> None:
    """Mails sent and refused are counted by the lane that sent them; the queue by the store."""
    url, database = store
    now = datetime.now(UTC)
    for to in ("ada@example.com", "grace@example.com", "nobody@example.com"):
        queue_invitation(database, to, LINK, now=now)
    port = free_port()
    env = _env(
        url,
        smtp,
        port,
        SCIMBRIDGE_METRICS__TOKEN=METRICS_TOKEN,
        SCIMBRIDGE_WORKER__LANE_PROCESSES=lane_processes,
    )
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}

    def scrape() -> Samples:
        answer = requests.get(metrics_url, headers=auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return _samples(answer.text)

    def settled() -> bool:
        try:
            samples = scrape()
        except requests.ConnectionError:
            return False  # not listening yet
        return _value(samples, "scimbridge_outbox_done_total", kind="email") == 2 and (
            _value(samples, "scimbridge_outbox_failures_total", kind="email") == 1
        )

    with (tmp_path / "worker.log").open("wb") as log, _worker(env, log):
        _wait_for(settled, "the worker to send two mails and park one")
        samples = scrape()

        assert _value(samples, "scimbridge_mails_total", outcome="sent") == 2
        assert _value(samples, "scimbridge_mails_total", outcome="failed") == 1
        # The depth gauge counts the jobs not done (done ones are history), by state.
        assert _value(samples, "scimbridge_outbox_jobs", kind="email", status="failed") == 1
        assert _value(samples, "scimbridge_outbox_jobs", kind="email", status="queued") == 0
        assert _value(samples, "scimbridge_outbox_oldest_pending_age_seconds", kind="email") == 0
        assert any(name == "scimbridge_build_info" for name, _ in samples)

        # The mail server goes away: a job queued a day ago waits, and the scrape shows its age.
        smtp.stop()
        queue_invitation(database, "late@example.com", LINK, now=now - timedelta(days=1))

        def waiting() -> bool:
            ages = scrape()
            return (
                _value(ages, "scimbridge_outbox_oldest_pending_age_seconds", kind="email") >= 86400
            )

        _wait_for(waiting, "the late job's age on the scrape")
    assert len(smtp.received) == 2


def test_the_worker_serves_the_ldap_operations_of_its_lane(
    env: LdapSyncEnv, smtp: SmtpServer, tmp_path: Path
) -> None:
    """Users created over SCIM are applied to slapd by the worker's LDAP lane, and counted."""
    for number in range(3):
        created(env.scim.post("/Users", user_payload(f"lane{number}@example.com")))
    ldap = env.ldap
    assert ldap.bind_password is not None
    port = free_port()
    worker_env = _env(
        env.settings.database_url,
        smtp,
        port,
        SCIMBRIDGE_METRICS__TOKEN=METRICS_TOKEN,
        SCIMBRIDGE_LDAP__URL=ldap.url or "",
        SCIMBRIDGE_LDAP__BIND_DN=ldap.bind_dn or "",
        SCIMBRIDGE_LDAP__BIND_PASSWORD=ldap.bind_password.get_secret_value(),
        SCIMBRIDGE_LDAP__USERS_DN=ldap.users_dn or "",
        SCIMBRIDGE_LDAP__GROUPS_DN=ldap.groups_dn or "",
    )
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}

    def applied() -> float:
        try:
            answer = requests.get(f"http://127.0.0.1:{port}/metrics", headers=auth, timeout=10)
        except requests.ConnectionError:
            return 0.0
        samples = _samples(answer.text)
        return _value(samples, "scimbridge_ldap_operations_total", operation="user", outcome="ok")

    with (tmp_path / "worker.log").open("wb") as log, _worker(worker_env, log):
        _wait_for(lambda: applied() >= 3, "the LDAP lane to apply three users")
        assert applied() == 3
    assert {"lane0@example.com", "lane1@example.com", "lane2@example.com"} <= {
        values["uid"][0] for values in env.view.users("uid").values()
    }


def test_a_scrape_without_the_token_is_refused(
    store: tuple[str, Database], smtp: SmtpServer, tmp_path: Path
) -> None:
    """No token, a wrong token, another scheme: 401; other paths 404."""
    url, _ = store
    port = free_port()
    env = _env(url, smtp, port, SCIMBRIDGE_METRICS__TOKEN=METRICS_TOKEN)
    metrics_url = f"http://127.0.0.1:{port}/metrics"

    def listening() -> bool:
        try:
            requests.get(metrics_url, timeout=5)
        except requests.ConnectionError:
            return False
        return True

    with (tmp_path / "worker.log").open("wb") as log, _worker(env, log):
        _wait_for(listening, "the worker's metrics endpoint")
        refused: list[dict[str, Any]] = [
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Basic {METRICS_TOKEN}"},
        ]
        for headers in refused:
            answer = requests.get(metrics_url, headers=headers, timeout=5)
            assert answer.status_code == 401, headers
            assert "scimbridge_" not in answer.text
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        good = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        elsewhere = requests.get(f"http://127.0.0.1:{port}/", headers=good, timeout=5)
        assert elsewhere.status_code == 404
        assert requests.get(metrics_url, headers=good, timeout=5).status_code == 200


def test_an_open_address_without_a_token_is_refused_at_start(
    store: tuple[str, Database], smtp: SmtpServer, tmp_path: Path
) -> None:
    """Listening beyond loopback needs the token: the worker will not start without it."""
    url, _ = store
    port = free_port()
    env = _env(url, smtp, port, SCIMBRIDGE_METRICS__WORKER_LISTEN=f"0.0.0.0:{port}")
    env.pop("SCIMBRIDGE_METRICS__TOKEN", None)
    done = subprocess.run(
        [*scimbridge_command(), "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "metrics.token" in done.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


@pytest.mark.parametrize(
    ("listen", "token", "served"),
    [
        (None, "t", False),
        ("127.0.0.1:9101", None, True),
        ("[::1]:9101", None, True),
        ("localhost:9101", None, True),
        ("0.0.0.0:9101", "t", True),
        ("metrics.example.com:9101", "t", True),
    ],
)
def test_where_the_worker_serves_its_metrics(
    listen: str | None, token: str | None, served: bool
) -> None:
    """Unset: not served; loopback: with or without a token; elsewhere: only with one."""
    settings = Settings(metrics=MetricsSettings(worker_listen=listen, token=token))
    where = endpoint_settings(settings)
    assert (where is not None) == served
    if where is not None:
        assert where.port == 9101 and where.token == token


@pytest.mark.parametrize("listen", ["0.0.0.0:9101", "[::]:9101", "metrics.example.com:9101"])
@pytest.mark.parametrize("token", [None, ""])
def test_an_address_beyond_loopback_needs_a_token(listen: str, token: str | None) -> None:
    """An unset token and one set to nothing (an empty variable) are alike: refused."""
    with pytest.raises(MetricsEndpointRefused, match="metrics.token"):
        endpoint_settings(Settings(metrics=MetricsSettings(worker_listen=listen, token=token)))


@pytest.mark.parametrize(
    ("header", "token", "allowed"),
    [
        (f"Bearer {METRICS_TOKEN}", METRICS_TOKEN, True),
        (f"bearer  {METRICS_TOKEN} ", METRICS_TOKEN, True),
        (f"Bearer {METRICS_TOKEN}x", METRICS_TOKEN, False),
        (f"Basic {METRICS_TOKEN}", METRICS_TOKEN, False),
        (None, METRICS_TOKEN, False),
        ("Bearer ", "", False),
        ("Bearer", "", False),
        (None, "", False),
    ],
)
def test_a_scrape_is_allowed_only_with_the_bearer_token(
    header: str | None, token: str, allowed: bool
) -> None:
    """Both metrics endpoints check this way; an empty token lets no one in."""
    assert scrape_allowed(header, token) is allowed


def test_the_worker_metrics_are_off_with_metrics_off() -> None:
    settings = Settings(
        metrics=MetricsSettings(enabled=False, worker_listen="127.0.0.1:9101", token="t")
    )
    assert endpoint_settings(settings) is None
