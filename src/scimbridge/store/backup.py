"""Copies of a SQLite store: an online backup while it serves, and a restore from one.

Both use SQLite's online backup API, which copies the database page by page as of one
moment: a backup taken while clients write holds every transaction committed before it
started and none half-written. PostgreSQL stores are copied with ``pg_dump`` and
``pg_restore`` instead (see the README).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from .migrations import known_revisions

_BUSY_TIMEOUT_SECONDS = 30.0


def _read_only(path: Path) -> str:
    return f"{path.resolve().as_uri()}?mode=ro"


class BackupError(Exception):
    """A backup or restore that cannot be made; the message says why."""


def schema_revision(path: Path) -> str | None:
    """Return the schema revision of the SQLite store in ``path`` (None: not a scimbridge store)."""
    try:
        with closing(sqlite3.connect(_read_only(path), uri=True)) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return str(row[0]) if row else None


def backup_sqlite(database_file: Path, target: Path) -> str:
    """Copy the store in ``database_file`` to the new file ``target``; return its revision."""
    if target.exists():
        raise BackupError(f"{target} exists; give the backup a new file name")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    with (
        closing(sqlite3.connect(database_file, timeout=_BUSY_TIMEOUT_SECONDS)) as source,
        closing(sqlite3.connect(partial)) as copy,
    ):
        # One step (pages=-1): the whole copy is read in one transaction, one consistent
        # moment, however busy the writers are (WAL readers do not wait for them).
        source.backup(copy)
        # A single file, without a write-ahead log beside it.
        copy.execute("PRAGMA journal_mode=DELETE")
        result = copy.execute("PRAGMA integrity_check").fetchone()
    if result != ("ok",):
        partial.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {result}")
    os.replace(partial, target)
    revision = schema_revision(target)
    if revision is None:
        raise BackupError(f"{database_file} is not a scimbridge store (no schema revision)")
    return revision


def check_restorable(backup: Path) -> str:
    """Return the schema revision of a backup, or refuse one this version cannot use."""
    revision = schema_revision(backup)
    if revision is None:
        raise BackupError(f"{backup} is not a scimbridge SQLite backup (no schema revision)")
    if revision not in known_revisions():
        raise BackupError(
            f"{backup} is at schema revision {revision}, which this scimbridge does not know "
            "(a backup of a newer version?)"
        )
    with closing(sqlite3.connect(_read_only(backup), uri=True)) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchone()
    if result != ("ok",):
        raise BackupError(f"{backup} failed its integrity check: {result}")
    return revision


def restore_sqlite(backup: Path, database_file: Path, overwrite: bool) -> str:
    """Replace the store in ``database_file`` with ``backup``; return the backup's revision.

    An existing store is replaced only with ``overwrite``. The copy goes through the backup
    API into the store's own file, so its write-ahead log stays consistent with it.
    """
    revision = check_restorable(backup)
    if database_file.exists() and not overwrite:
        raise BackupError(f"{database_file} exists; restore over it with --force")
    database_file.parent.mkdir(parents=True, exist_ok=True)
    with (
        closing(sqlite3.connect(_read_only(backup), uri=True)) as source,
        closing(sqlite3.connect(database_file, timeout=_BUSY_TIMEOUT_SECONDS)) as target,
    ):
        source.backup(target)
    return revision
