"""The key that signs what scimbridge hands to browsers (CSRF tokens).

``settings.secret_key`` when set. Otherwise a random key is created once, next to the SQLite
database (``secret_key`` in the data directory with the default database; in the data
directory itself with PostgreSQL), readable by its owner only, and
reused by every process serving that database. Instances sharing a PostgreSQL database run
on different machines, so they must be given the same ``secret_key`` instead.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from ...settings import Settings
from ...store.database import Database

FILE_NAME = "secret_key"


def secret_key_path(database: Database, data_dir: Path) -> Path:
    """Return where the generated key lives: beside a SQLite file, else in ``data_dir``."""
    location = database.url.database
    if database.dialect == "sqlite" and location and location != ":memory:":
        return Path(location).resolve().parent / FILE_NAME
    return data_dir.resolve() / FILE_NAME


def load_secret_key(settings: Settings, database: Database) -> bytes:
    """Return the configured key, or the generated one (created on first use)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return _read_or_create(secret_key_path(database, settings.data_dir))


def _read_or_create(path: Path) -> bytes:
    if path.is_file():
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under another name, then linked into place: several gunicorn workers start at
    # once, and none of them may read a half-written key or replace another's.
    descriptor, temporary = tempfile.mkstemp(prefix=".secret_key-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
        os.chmod(temporary, 0o600)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)
    return _read(path)


def _read(path: Path) -> bytes:
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path} holds no usable key; delete it or set secret_key")
    return key.encode()
