"""Alembic migrations of the store, applied by ``scimbridge db upgrade`` and on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from ..database import Database

_HERE = Path(__file__).parent


def alembic_config(database: Database) -> Config:
    """Return an Alembic configuration pointing at this package's scripts."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["engine"] = database.engine
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the database schema up to ``revision``, on disk when this returns."""
    command.upgrade(alembic_config(database), revision)
    database.sync()


def known_revisions() -> set[str]:
    """Return every schema revision these migrations know (a store at another is newer)."""
    scripts = ScriptDirectory(str(_HERE))
    return {script.revision for script in scripts.walk_revisions()}


def head_revision() -> str:
    """Return the newest schema revision."""
    head = ScriptDirectory(str(_HERE)).get_current_head()
    assert head is not None
    return head
