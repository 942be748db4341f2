"""The LDAP sync commands of ``scimbridge``: ``ldap status`` and ``ldap reconcile``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime

import click

from ..settings import Settings
from ..store.database import Database
from .data import existing_database


@contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    database = existing_database(settings)
    try:
        yield database
    finally:
        database.dispose()


def _enabled_settings() -> Settings:
    settings = Settings()
    if not settings.ldap.enabled:
        raise click.ClickException("LDAP sync is off: set SCIMBRIDGE_LDAP__URL")
    return settings


@click.group()
def ldap() -> None:
    """LDAP sync: how far behind the directory is, and a full comparison that repairs it."""


@ldap.command("status")
def ldap_status() -> None:
    """Show the directory's reachability, the queue of changes, the lag and parked jobs."""
    from ..service.ldap.status import ldap_queue
    from ..service.ldap.status import probe_directory
    from .outbox import lane_lines

    settings = _enabled_settings()
    with _database(settings) as database:
        queue = ldap_queue(database)
        lanes = lane_lines(settings, database)
    error = probe_directory(settings.ldap)
    now = datetime.now(UTC)
    click.echo(f"directory\t{settings.ldap.url} ({settings.ldap.profile})")
    click.echo(f"reachable\t{'yes' if error is None else 'no: ' + error}")
    click.echo(f"pending\t{queue.pending} jobs")
    click.echo(f"lag\t{queue.lag_seconds(now):.1f} s")
    click.echo(f"parked\t{queue.failed} jobs")
    for job in queue.parked:
        click.echo(f"  job {job.pk}\t{job.ordering_key}\t{job.last_error or ''}")
    if queue.failed > len(queue.parked):
        click.echo(f"  … and {queue.failed - len(queue.parked)} more (scimbridge jobs list)")
    for line in lanes:
        click.echo(line)


@ldap.command("reconcile")
@click.option("--dry-run", is_flag=True, help="Only report the differences; change nothing.")
def ldap_reconcile(dry_run: bool) -> None:
    """Compare every user and group with the directory; repair the differences.

    Prints one line per difference (missing, moved, extra, changed, members), then a summary.
    """
    from ..adapters.ldap import LdapDirectory
    from ..adapters.ldap import LdapError
    from ..adapters.ldap import entry_builder
    from ..service.ldap.reconcile import LdapReconciler

    settings = _enabled_settings()
    with _database(settings) as database, LdapDirectory(settings.ldap) as directory:
        reconciler = LdapReconciler(database, directory, entry_builder(settings.ldap))
        try:
            report = reconciler.run(dry_run=dry_run)
        except LdapError as exc:
            raise click.ClickException(f"reconcile stopped: {exc}") from None
    for difference in report.differences:
        click.echo(str(difference))
    counts = ", ".join(f"{count} {kind}" for kind, count in sorted(report.counts().items()))
    total = len(report.differences)
    summary = f"{total} differences" + (f" ({counts})" if counts else "")
    if dry_run:
        click.echo(f"{summary}; dry run, nothing changed")
    else:
        click.echo(f"{summary}; repaired" if total else summary)


COMMANDS = (ldap,)
