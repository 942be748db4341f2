"""Email through a real SMTP server (aiosmtpd): content, outages, TLS and login, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from scimbridge.service.mail.queue import EMAIL_JOB
from scimbridge.service.outbox.worker import OutboxWorker
from scimbridge.service.outbox.worker import RetryPolicy
from scimbridge.settings import MailSettings
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade
from scimbridge.worker import email_delivery

from .conftest import make_settings
from .mail_server import Certificate
from .mail_server import SmtpServer
from .mail_server import make_certificate
from .outbox_support import Clock
from .outbox_support import job
from .outbox_support import payload
from .outbox_support import queue_invitation
from .services import scimbridge_command

SENDER = "Acme Portal <no-reply@acme.test>"
LINK = "http://scim.test/invitation/s3cr3t-t0ken"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def smtp_settings(database: Database, server: SmtpServer, **mail: Any) -> Settings:
    options: dict[str, Any] = {
        "transport": "smtp",
        "sender": SENDER,
        "product_name": "Acme Portal",
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_security": "none",
        "timeout_seconds": 5,
        **mail,
    }
    return make_settings(str(database.url), mail=MailSettings(**options))


def email_worker(database: Database, settings: Settings, clock: Clock) -> OutboxWorker:
    return OutboxWorker(
        database,
        {EMAIL_JOB: email_delivery(settings)},
        policy=RetryPolicy(max_attempts=5, base_seconds=10, max_seconds=60),
        clock=clock,
        jitter=lambda: 1.0,
    )


def test_a_queued_invitation_arrives_with_text_html_and_its_absolute_link(
    database: Database, smtp: SmtpServer
) -> None:
    pk = queue_invitation(database, "ada@example.com", LINK)
    email_worker(database, smtp_settings(database, smtp), Clock()).run_once()

    (received,) = smtp.received
    message = received.message
    assert received.rcpt_tos == ["ada@example.com"]
    assert received.mail_from == "no-reply@acme.test"
    assert message["From"] == SENDER
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "You are invited to Acme Portal"
    assert message["Message-ID"].startswith(f"<job-{pk}.")
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert LINK in text.get_content()
    assert f'href="{LINK}"' in html.get_content()
    assert "Hello Ada Lovelace," in text.get_content()
    assert job(database, pk).status == "done"


def test_a_delivered_message_leaves_no_secret_in_the_outbox(
    database: Database, smtp: SmtpServer
) -> None:
    pk = queue_invitation(database, "ada@example.com", LINK)
    assert payload(database, pk)["context"]["link"] == LINK
    email_worker(database, smtp_settings(database, smtp), Clock()).run_once()
    stored = payload(database, pk)
    assert "link" not in stored["context"]
    assert stored["context"]["name"] == "Ada Lovelace"
    assert LINK not in str(stored)


def test_while_the_smtp_server_is_down_jobs_wait_and_each_is_delivered_once_after(
    database: Database, smtp: SmtpServer
) -> None:
    clock = Clock()
    worker = email_worker(database, smtp_settings(database, smtp), clock)
    smtp.stop()
    first = queue_invitation(database, "ada@example.com", LINK + "1", ordering_key="user:ada")
    second = queue_invitation(database, "ada@example.com", LINK + "2", ordering_key="user:ada")
    other = queue_invitation(database, "bob@example.com", LINK + "3", ordering_key="user:bob")

    for attempt in (1, 2, 3):
        worker.run_once()
        for pk in (first, other):
            info = job(database, pk)
            assert (info.status, info.attempts) == ("retrying", attempt)
            assert info.last_error and "cannot connect" in info.last_error
        assert job(database, second).status == "queued", "waits behind the first one"
        clock.advance(60)

    smtp.start()
    for _ in range(5):
        worker.run_once()
        clock.advance(60)

    links = sorted(
        LINK + n
        for received in smtp.received
        for n in "123"
        if LINK + n in str(received.message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    )
    assert links == [LINK + "1", LINK + "2", LINK + "3"], "each job delivered exactly once"
    ada = [r.message["Message-ID"] for r in smtp.received if r.rcpt_tos == ["ada@example.com"]]
    assert ada == sorted(ada, key=lambda value: int(value[5:].split(".")[0])), "in key order"
    assert {job(database, pk).status for pk in (first, second, other)} == {"done"}


def test_a_recipient_refused_for_good_is_parked_with_the_reason(
    database: Database, smtp: SmtpServer
) -> None:
    smtp.refused.add("nobody@example.com")
    pk = queue_invitation(database, "nobody@example.com", LINK)
    email_worker(database, smtp_settings(database, smtp), Clock()).run_once()
    info = job(database, pk)
    assert info.status == "failed"
    assert info.last_error is not None and "550" in info.last_error
    assert "No such user" in info.last_error


def test_starttls_with_login(database: Database, certificate: Certificate) -> None:
    server = SmtpServer(users={"mailer": "pa55"}, certificate=certificate).start()
    try:
        settings = smtp_settings(
            database,
            server,
            smtp_security="starttls",
            smtp_ca_file=certificate.cert_file,
            smtp_username="mailer",
            smtp_password="pa55",
        )
        pk = queue_invitation(database, "ada@example.com", LINK)
        email_worker(database, settings, Clock()).run_once()
    finally:
        server.stop()
    assert job(database, pk).status == "done"
    assert [received.authenticated_as for received in server.received] == ["mailer"]


def test_a_wrong_smtp_password_is_retried_not_parked(
    database: Database, certificate: Certificate
) -> None:
    server = SmtpServer(users={"mailer": "pa55"}, certificate=certificate).start()
    try:
        settings = smtp_settings(
            database,
            server,
            smtp_security="starttls",
            smtp_ca_file=certificate.cert_file,
            smtp_username="mailer",
            smtp_password="wrong",
        )
        pk = queue_invitation(database, "ada@example.com", LINK)
        email_worker(database, settings, Clock()).run_once()
    finally:
        server.stop()
    info = job(database, pk)
    assert info.status == "retrying"
    assert info.last_error is not None and "535" in info.last_error
    assert "wrong" not in info.last_error


def test_implicit_tls(database: Database, certificate: Certificate) -> None:
    server = SmtpServer(certificate=certificate, implicit_tls=True).start()
    try:
        settings = smtp_settings(
            database, server, smtp_security="tls", smtp_ca_file=certificate.cert_file
        )
        pk = queue_invitation(database, "ada@example.com", LINK)
        email_worker(database, settings, Clock()).run_once()
    finally:
        server.stop()
    assert job(database, pk).status == "done"
    assert len(server.received) == 1


def test_an_untrusted_certificate_is_refused_and_retried(
    database: Database, certificate: Certificate
) -> None:
    server = SmtpServer(certificate=certificate).start()
    try:
        settings = smtp_settings(database, server, smtp_security="starttls")
        pk = queue_invitation(database, "ada@example.com", LINK)
        email_worker(database, settings, Clock()).run_once()
    finally:
        server.stop()
    assert job(database, pk).status == "retrying"
    assert server.received == []


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_worker_killed_between_sending_and_recording_sends_again_after_restart(
    tmp_path: Path,
) -> None:
    """At-least-once: the message may arrive twice (same Message-ID), it is never lost."""
    url = f"sqlite:///{tmp_path / 'scimbridge.db'}"
    database = Database(url)
    upgrade(database)
    hold = threading.Event()
    server = SmtpServer(hold=hold).start()
    env = {
        **os.environ,
        "SCIMBRIDGE_DATABASE_URL": url,
        "SCIMBRIDGE_MAIL__TRANSPORT": "smtp",
        "SCIMBRIDGE_MAIL__SMTP_HOST": "127.0.0.1",
        "SCIMBRIDGE_MAIL__SMTP_PORT": str(server.port),
        "SCIMBRIDGE_MAIL__SMTP_SECURITY": "none",
        "SCIMBRIDGE_WORKER__LEASE_SECONDS": "2",
        "SCIMBRIDGE_WORKER__POLL_INTERVAL_SECONDS": "0.1",
    }
    log = (tmp_path / "worker.log").open("wb")
    try:
        pk = queue_invitation(database, "ada@example.com", LINK, now=datetime.now(UTC))
        first = subprocess.Popen([*scimbridge_command(), "worker"], env=env, stderr=log)
        try:
            _wait(server.data_arrived.is_set, 20, "the first worker to send")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        hold.set()
        assert len(server.received) == 1
        assert job(database, pk).status == "running", "the dead worker never recorded it"

        second = subprocess.Popen([*scimbridge_command(), "worker"], env=env, stderr=log)
        try:
            _wait(lambda: job(database, pk).status == "done", 20, "the restarted worker")
        finally:
            second.terminate()
            assert second.wait(10) == 0, "a worker stops cleanly on SIGTERM"
        assert job(database, pk).attempts == 2
    finally:
        log.close()
        server.stop()
        database.dispose()

    assert len(server.received) == 2
    first_copy, second_copy = (received.message for received in server.received)
    assert first_copy["Message-ID"] == second_copy["Message-ID"]
