"""The outbox commands of ``scimbridge``: ``worker``, ``jobs status|list|retry``, ``mail test``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import closing
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime

import click

from ..logs import configure_logging
from ..settings import Settings
from ..store import jobs as job_store
from ..store.database import Database
from .data import existing_database


@contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    database = existing_database(settings)
    try:
        yield database
    finally:
        database.dispose()


@click.command()
def worker() -> None:
    """Apply queued jobs (emails, LDAP changes) until stopped with SIGTERM or Ctrl-C."""
    from ..worker import run_worker_process
    from ..worker_metrics import MetricsEndpointRefused
    from ..worker_metrics import endpoint_settings
    from ..worker_metrics import serving_worker_metrics

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        endpoint_settings(settings)
    except MetricsEndpointRefused as refused:
        raise click.ClickException(str(refused)) from None
    with _database(settings) as database, ExitStack() as serving:
        try:
            serving.enter_context(serving_worker_metrics(settings, database))
        except OSError as exc:  # the address is in use, or not this host's
            raise click.ClickException(
                f"cannot serve metrics on {settings.metrics.worker_listen}: {exc}"
            ) from None
        run_worker_process(settings, database)


@click.group()
def jobs() -> None:
    """Outbox jobs: see what waits or failed, retry what failed."""


def lane_lines(settings: Settings, database: Database) -> list[str]:
    """Describe each outbox lane: depth, jobs in hand, retrying and parked jobs, and lag."""
    from ..service.outbox.status import lane_metrics
    from ..worker import lane_kinds

    return [
        f"lane {lane.kind}\tdepth {lane.pending}\trunning {lane.running}"
        f"\tretrying {lane.retrying}\tparked {lane.failed}\tlag {lane.lag_seconds:.1f} s"
        for lane in lane_metrics(database, lane_kinds(settings))
    ]


@jobs.command("status")
def jobs_status() -> None:
    """Show each lane (job kind): depth, running, retrying, parked, lag of the oldest job."""
    settings = Settings()
    with _database(settings) as database:
        lines = lane_lines(settings, database)
    for line in lines:
        click.echo(line)


_LISTED_BY_DEFAULT = (*job_store.PENDING, job_store.JobStatus.FAILED)


@jobs.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([status.value for status in job_store.JobStatus]),
    help="Only jobs in this state (repeatable). Default: every job not done.",
)
@click.option("--kind", help="Only jobs of this kind, e.g. email.")
@click.option("--limit", type=int, default=100, show_default=True)
def jobs_list(statuses: tuple[str, ...], kind: str | None, limit: int) -> None:
    """List jobs, oldest first: id, kind, state, attempts, key, next attempt, last error."""
    with _database(Settings()) as database, database.read() as conn:
        found = job_store.list_jobs(conn, statuses or _LISTED_BY_DEFAULT, kind, limit)
    if not found:
        click.echo("no jobs")
        return
    click.echo("\t".join(_JOB_COLUMNS))
    for job in found:
        click.echo(
            f"{job.pk}\t{job.kind}\t{job.status}\t{job.attempts}\t{job.ordering_key}"
            f"\t{_next_attempt(job)}\t{job.last_error or ''}"
        )


_JOB_COLUMNS = ("ID", "KIND", "STATE", "ATTEMPTS", "KEY", "NEXT ATTEMPT", "LAST ERROR")

# Only a job that will still run has a next attempt: a done or parked job shows none.
_WILL_RUN = (job_store.JobStatus.QUEUED, job_store.JobStatus.RETRYING)


def _next_attempt(job: job_store.JobInfo) -> str:
    if job.status not in _WILL_RUN:
        return "-"
    return job.available_at.isoformat(timespec="seconds")


@jobs.command("retry")
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="Retry every failed job.")
def jobs_retry(job_ids: tuple[int, ...], all_failed: bool) -> None:
    """Queue failed (or waiting) jobs again now, with a fresh budget of attempts."""
    if bool(job_ids) == all_failed:
        raise click.UsageError("name job ids, or give --all-failed")
    with _database(Settings()) as database, database.write() as conn:
        requeued = job_store.requeue(conn, datetime.now(UTC), None if all_failed else job_ids)
    for pk in requeued:
        click.echo(f"job {pk} queued again")
    missing = sorted(set(job_ids) - set(requeued))
    if missing:
        names = ", ".join(str(pk) for pk in missing)
        raise click.ClickException(f"not failed or waiting, or unknown: {names}")
    if not requeued:
        click.echo("no failed jobs")


@click.group()
def mail() -> None:
    """Email delivery."""


@mail.command("test")
@click.option("--to", "recipient", required=True, help="Address to send the test message to.")
def mail_test(recipient: str) -> None:
    """Send a test message now through the configured transport (not through the queue)."""
    from ..adapters.mail import MailDeliveryError
    from ..adapters.mail import MailTemporaryError
    from ..service.mail.rendering import MailTemplateError
    from ..worker import email_delivery

    try:
        delivery = email_delivery(Settings())
    except ValueError as exc:  # a transport missing a setting it needs
        raise click.ClickException(str(exc)) from None
    where = delivery.transport.description
    try:
        with closing(delivery):
            delivery.send_test_message(recipient)
    except MailTemplateError as exc:
        raise click.ClickException(str(exc)) from None
    except MailDeliveryError as exc:
        kind = "temporary failure" if isinstance(exc, MailTemporaryError) else "rejected"
        raise click.ClickException(f"test message not sent via {where} ({kind}): {exc}") from None
    click.echo(f"test message sent to {recipient} via {where}")


COMMANDS = (worker, jobs, mail)
