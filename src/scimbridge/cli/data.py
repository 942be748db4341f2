"""How commands open the store: only where one is expected, so none is created by mistake.

``serve`` and ``db upgrade`` create and migrate the database on first start. Every other
command needs the database to exist already: started from another folder or with another data
directory, it would otherwise create an empty one and answer as if every user and token were
gone. It refuses instead, naming the file it looked for.
"""

from __future__ import annotations

import click

from ..settings import Settings
from ..store.database import Database
from ..store.database import database_for
from ..store.migrations import upgrade


def missing_database_message(settings: Settings) -> str | None:
    """Describe why the settings' SQLite database cannot be used (None: it can, or PostgreSQL)."""
    path = settings.sqlite_path
    if path is None or path.is_file():
        return None
    return (
        f"no database at {path} (data directory {settings.data_dir}): give the data directory "
        "that holds it with --data-dir or SCIMBRIDGE_DATA_DIR, or create a new one with "
        "'scimbridge db upgrade'"
    )


def existing_database(settings: Settings) -> Database:
    """Open the settings' store and apply pending migrations; refuse when it does not exist."""
    message = missing_database_message(settings)
    if message is not None:
        raise click.ClickException(message)
    database = database_for(settings)
    try:
        upgrade(database)
    except BaseException:
        database.dispose()
        raise
    return database
