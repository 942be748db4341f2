"""``scimbridge jobs list|retry``, ``mail test``, and the worker ``serve`` runs in-process."""

from __future__ import annotations

import time
from datetime import UTC
from datetime import datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from click.testing import Result

from scimbridge.cli.main import main
from scimbridge.service.mail.queue import EMAIL_JOB
from scimbridge.service.outbox.worker import OutboxWorker
from scimbridge.service.outbox.worker import PermanentJobError
from scimbridge.store.database import Database
from scimbridge.store.jobs import Job
from scimbridge.store.migrations import upgrade

from .mail_server import SmtpServer
from .outbox_support import Clock
from .outbox_support import job
from .outbox_support import queue_invitation
from .services import live_server

LINK = "http://scim.test/invitation/s3cr3t-t0ken"


def run(url: str, *args: str, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"SCIMBRIDGE_DATABASE_URL": url, **env})


@pytest.fixture
def failed_jobs(database: Database) -> list[int]:
    """Two email jobs parked as failed, then one queued."""
    pks = [queue_invitation(database, f"user{n}@example.com", LINK) for n in range(2)]

    def reject(job: Job) -> None:
        raise PermanentJobError(f"{job.payload['to']} refused: 550 no such user")

    OutboxWorker(database, {EMAIL_JOB: reject}, clock=Clock()).run_once()
    return [*pks, queue_invitation(database, "user2@example.com", LINK)]


def test_jobs_list_shows_pending_and_failed_jobs_with_their_errors_not_their_secrets(
    database: Database, failed_jobs: list[int]
) -> None:
    url = str(database.url)
    result = run(url, "jobs", "list")
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()
    assert header.split("\t")[:3] == ["ID", "KIND", "STATE"]
    assert [line.split("\t")[:3] for line in lines] == [
        [str(failed_jobs[0]), "email", "failed"],
        [str(failed_jobs[1]), "email", "failed"],
        [str(failed_jobs[2]), "email", "queued"],
    ]
    assert "user0@example.com refused: 550 no such user" in lines[0]
    assert LINK not in result.output
    # A parked job will not run again: it has no next attempt; a queued one has.
    assert lines[0].split("\t")[5] == "-"
    assert lines[2].split("\t")[5] != "-"

    failed_only = run(url, "jobs", "list", "--status", "failed").output.splitlines()
    assert len(failed_only) == 1 + 2


def test_jobs_list_says_no_jobs_when_nothing_matches(database: Database) -> None:
    """An empty listing says so instead of printing nothing."""
    result = run(str(database.url), "jobs", "list")
    assert (result.exit_code, result.output) == (0, "no jobs\n")


def test_jobs_list_shows_no_next_attempt_for_done_jobs(database: Database) -> None:
    """A delivered message is done: no future attempt is listed for it."""
    pk = queue_invitation(database, "done@example.com", LINK)
    OutboxWorker(database, {EMAIL_JOB: lambda job: None}, clock=Clock()).run_once()
    assert job(database, pk).status == "done"
    result = run(str(database.url), "jobs", "list", "--status", "done")
    header, line = result.output.splitlines()
    assert line.split("\t")[:3] == [str(pk), "email", "done"]
    assert line.split("\t")[5] == "-"


def test_jobs_retry_requeues_the_named_failed_jobs(
    database: Database, failed_jobs: list[int]
) -> None:
    result = run(str(database.url), "jobs", "retry", str(failed_jobs[0]))
    assert result.exit_code == 0, result.output
    assert result.output == f"job {failed_jobs[0]} queued again\n"
    assert (job(database, failed_jobs[0]).status, job(database, failed_jobs[0]).attempts) == (
        "queued",
        0,
    )
    assert job(database, failed_jobs[1]).status == "failed"


def test_jobs_retry_all_failed(database: Database, failed_jobs: list[int]) -> None:
    result = run(str(database.url), "jobs", "retry", "--all-failed")
    assert result.exit_code == 0, result.output
    assert {job(database, pk).status for pk in failed_jobs} == {"queued"}


def test_jobs_retry_says_which_jobs_it_could_not_retry(
    database: Database, failed_jobs: list[int]
) -> None:
    result = run(str(database.url), "jobs", "retry", str(failed_jobs[1]), "999")
    assert result.exit_code == 1
    assert f"job {failed_jobs[1]} queued again" in result.output
    assert "not failed or waiting, or unknown: 999" in result.output
    assert run(str(database.url), "jobs", "retry").exit_code == 2


def test_mail_test_sends_through_the_configured_transport(
    database: Database, tmp_path: Path
) -> None:
    mail_dir = tmp_path / "mail"
    result = run(
        str(database.url),
        "mail",
        "test",
        "--to",
        "ops@example.com",
        SCIMBRIDGE_MAIL__FILE_DIR=str(mail_dir),
        SCIMBRIDGE_MAIL__PRODUCT_NAME="Acme Portal",
    )
    assert result.exit_code == 0, result.output
    assert result.output == f"test message sent to ops@example.com via file {mail_dir}/\n"
    (written,) = mail_dir.iterdir()
    message = BytesParser(policy=policy.default).parsebytes(written.read_bytes())
    assert message["Subject"] == "Acme Portal test message"


def test_mail_test_over_smtp_says_what_happened(database: Database) -> None:
    server = SmtpServer().start()
    smtp = {
        "SCIMBRIDGE_MAIL__TRANSPORT": "smtp",
        "SCIMBRIDGE_MAIL__SMTP_HOST": "127.0.0.1",
        "SCIMBRIDGE_MAIL__SMTP_PORT": str(server.port),
        "SCIMBRIDGE_MAIL__SMTP_SECURITY": "none",
    }
    try:
        sent = run(str(database.url), "mail", "test", "--to", "ops@example.com", **smtp)
    finally:
        server.stop()
    assert sent.exit_code == 0, sent.output
    assert f"via smtp 127.0.0.1:{server.port} (none)" in sent.output
    assert [received.rcpt_tos for received in server.received] == [["ops@example.com"]]

    down = run(str(database.url), "mail", "test", "--to", "ops@example.com", **smtp)
    assert down.exit_code == 1
    assert "test message not sent via smtp" in down.output
    assert "(temporary failure): cannot connect" in down.output


def test_serve_delivers_queued_mail_with_its_in_process_worker(tmp_path: Path) -> None:
    """Under gunicorn's two processes, one in-process worker sends each message once."""
    url = f"sqlite:///{tmp_path / 'scimbridge.db'}"
    mail_dir = tmp_path / "mail"
    env = {
        "SCIMBRIDGE_MAIL__FILE_DIR": str(mail_dir),
        "SCIMBRIDGE_WORKER__POLL_INTERVAL_SECONDS": "0.05",
    }
    with live_server(url, env):
        database = Database(url)
        upgrade(database)
        now = datetime.now(UTC)
        pks = [queue_invitation(database, f"u{n}@example.com", LINK, now=now) for n in range(5)]
        deadline = time.monotonic() + 20
        while {job(database, pk).status for pk in pks} != {"done"}:
            assert time.monotonic() < deadline, "the in-process worker did not deliver"
            time.sleep(0.05)
        database.dispose()
    written = list(mail_dir.iterdir())
    assert len(written) == 5
