"""The ``scimbridge backup`` and ``scimbridge restore`` commands (SQLite stores)."""

from __future__ import annotations

from pathlib import Path

import click

from ..settings import Settings
from ..store.backup import BackupError
from ..store.backup import backup_sqlite
from ..store.backup import restore_sqlite
from .data import existing_database
from .data import missing_database_message

_POSTGRESQL = "a PostgreSQL store is copied with pg_dump and pg_restore (see the README)"


def _sqlite_file(settings: Settings) -> Path:
    path = settings.sqlite_path
    if path is None:
        raise click.ClickException(_POSTGRESQL)
    return path


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def backup(file: Path) -> None:
    """Copy the SQLite store to FILE, consistently, even while it serves."""
    settings = Settings()
    database_file = _sqlite_file(settings)
    message = missing_database_message(settings)
    if message is not None:
        raise click.ClickException(message)
    try:
        revision = backup_sqlite(database_file, file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup of {database_file} written to {file} (schema revision {revision})")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the existing store.")
def restore(file: Path, force: bool) -> None:
    """Replace the SQLite store with the backup FILE (stop the server first)."""
    settings = Settings()
    database_file = _sqlite_file(settings)
    try:
        revision = restore_sqlite(file, database_file, overwrite=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    # A backup of an older version is brought up to this version's schema now.
    existing_database(settings).dispose()
    click.echo(f"{database_file} restored from {file} (schema revision {revision}, now migrated)")


COMMANDS = [backup, restore]
