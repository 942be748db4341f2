"""Several instances starting together on one PostgreSQL database all migrate on start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy import text

from scimbridge.store.database import Database
from scimbridge.store.migrations import alembic_config

from .services import PostgresServer

_SCIMBRIDGE = Path(sys.executable).with_name("scimbridge")


def _head_revision(url: str) -> str:
    from alembic.script import ScriptDirectory

    database = Database(url)
    try:
        head = ScriptDirectory.from_config(alembic_config(database)).get_current_head()
    finally:
        database.dispose()
    assert head is not None
    return head


def test_instances_upgrading_one_fresh_database_at_once_all_succeed(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Four `db upgrade` processes started together: none fails, the schema ends at head."""
    url = postgres.create_database("concurrent_upgrade")
    environment = {**os.environ, "SCIMBRIDGE_DATABASE_URL": url, "SCIMBRIDGE_CONFIG": "/none"}
    processes = [
        subprocess.Popen(
            [str(_SCIMBRIDGE), "db", "upgrade"],
            env=environment,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert [row[0] for row in versions] == [_head_revision(url)]
