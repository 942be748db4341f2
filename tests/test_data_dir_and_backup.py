"""The data directory, ``--version``/``-h``, and backups: SQLite online, PostgreSQL by pg_dump."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from scimbridge.service.clients.tokens import TokenService
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import head_revision
from scimbridge.store.migrations import upgrade

from .services import PG_BIN
from .services import PostgresServer
from .services import live_server
from .services import scimbridge_command

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without any scimbridge setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMBRIDGE_")}
    return {**env, **extra}


def scimbridge(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*scimbridge_command(), *args],
        cwd=cwd,
        env=env or _clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- the data directory -------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_data_directory(tmp_path: Path) -> None:
    """Database, mail files and the generated secret key all live under ``data_dir``."""
    settings = Settings(data_dir=tmp_path / "state", database_url="sqlite:///store.db")
    assert settings.database_url == f"sqlite:///{tmp_path / 'state' / 'store.db'}"
    assert settings.sqlite_path == tmp_path / "state" / "store.db"
    assert settings.mail.file_dir == tmp_path / "state" / "mail"
    absolute = Settings(data_dir=tmp_path, database_url="sqlite:////srv/other.db")
    assert absolute.database_url == "sqlite:////srv/other.db"
    postgres = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://h/db")
    assert postgres.sqlite_path is None


def test_a_command_run_from_another_folder_refuses_to_create_a_database(tmp_path: Path) -> None:
    """``token list`` elsewhere names the file it looked for instead of making an empty store."""
    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    checkout.mkdir()
    elsewhere.mkdir()
    assert scimbridge("db", "upgrade", cwd=checkout).returncode == 0
    created = scimbridge("token", "create", "entra-prod", cwd=checkout)
    assert created.returncode == 0, created.stderr
    assert (checkout / "var" / "scimbridge.db").is_file()

    lost = scimbridge("token", "list", cwd=elsewhere)
    assert lost.returncode == 1
    assert str(elsewhere / "var" / "scimbridge.db") in lost.stderr
    assert "--data-dir" in lost.stderr
    assert not (elsewhere / "var").exists()

    found = scimbridge("--data-dir", str(checkout / "var"), "token", "list", cwd=elsewhere)
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("entra-prod\t")
    by_env = scimbridge(
        "token", "list", cwd=elsewhere, env=_clean_env(SCIMBRIDGE_DATA_DIR=str(checkout / "var"))
    )
    assert by_env.stdout == found.stdout


def test_version_and_short_help(tmp_path: Path) -> None:
    """``--version`` names the version; ``-h`` is ``--help``, for subcommands too."""
    version = scimbridge("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == "scimbridge, version 0.1.0"
    short = scimbridge("-h", cwd=tmp_path)
    assert short.returncode == 0 and short.stdout == scimbridge("--help", cwd=tmp_path).stdout
    sub = scimbridge("token", "list", "-h", cwd=tmp_path)
    assert sub.returncode == 0 and "Usage: scimbridge token list" in sub.stdout


# -- SQLite backup and restore ------------------------------------------------------------------


def _user_names(database_file: Path) -> set[str]:
    with sqlite3.connect(database_file) as conn:
        return {name for (name,) in conn.execute("SELECT user_name FROM users")}


def test_a_backup_taken_while_four_clients_write_restores_every_acknowledged_write(
    tmp_path: Path,
) -> None:
    """Every user created before the backup began is in it; the restore passes ``db upgrade``."""
    live_file = tmp_path / "live" / "scimbridge.db"
    live_file.parent.mkdir()
    with live_server(f"sqlite:///{live_file}", {"SCIMBRIDGE_SERVER__WORKERS": "2"}) as live:
        acknowledged: list[tuple[float, str]] = []
        stop = threading.Event()
        failures: list[str] = []

        def write(client: int) -> None:
            session = requests.Session()
            number = 0
            while not stop.is_set():
                name = f"c{client}-{number}@example.com"
                number += 1
                answer = session.post(
                    f"{live.scim_url}/Users",
                    json={"schemas": [USER_SCHEMA], "userName": name},
                    headers={
                        "Authorization": f"Bearer {live.token}",
                        "Content-Type": "application/scim+json",
                    },
                    timeout=30,
                )
                if answer.status_code == 201:
                    acknowledged.append((time.monotonic(), name))
                else:
                    failures.append(f"{answer.status_code} {answer.text}")

        clients = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 40 and time.monotonic() < deadline and not failures:
            time.sleep(0.05)
        backup_started = time.monotonic()
        backup_file = tmp_path / "backup.db"
        live.cli("backup", str(backup_file))
        written_during_backup = len(acknowledged)
        while len(acknowledged) < written_during_backup + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for client in clients:
            client.join()
    assert not failures, failures[:3]
    before = {name for at, name in acknowledged if at < backup_started}
    assert len(before) >= 8, "the clients wrote too little to prove anything"

    restored = tmp_path / "restored"
    env = _clean_env(SCIMBRIDGE_DATA_DIR=str(restored))
    restore = scimbridge("restore", str(backup_file), cwd=tmp_path, env=env)
    assert restore.returncode == 0, restore.stderr
    upgraded = scimbridge("db", "upgrade", cwd=tmp_path, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    names = _user_names(restored / "scimbridge.db")
    assert before <= names
    assert names <= {name for _, name in acknowledged}
    with sqlite3.connect(restored / "scimbridge.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (audited,) = conn.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'user.created'"
        ).fetchone()
    assert audited == len(names)  # each user with its audit event: no half transaction


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A data directory holding a migrated store with one token."""
    data = tmp_path / "data"
    env = _clean_env(SCIMBRIDGE_DATA_DIR=str(data))
    assert scimbridge("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    assert scimbridge("token", "create", "kept", cwd=tmp_path, env=env).returncode == 0
    return data


def test_restore_refuses_to_overwrite_a_store_without_force(store: Path, tmp_path: Path) -> None:
    """An existing store is replaced only with ``--force``."""
    env = _clean_env(SCIMBRIDGE_DATA_DIR=str(store))
    assert scimbridge("backup", str(tmp_path / "b.db"), cwd=tmp_path, env=env).returncode == 0
    assert scimbridge("token", "create", "later", cwd=tmp_path, env=env).returncode == 0
    refused = scimbridge("restore", str(tmp_path / "b.db"), cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert "later" in scimbridge("token", "list", cwd=tmp_path, env=env).stdout
    forced = scimbridge("restore", "--force", str(tmp_path / "b.db"), cwd=tmp_path, env=env)
    assert forced.returncode == 0, forced.stderr
    listed = scimbridge("token", "list", cwd=tmp_path, env=env).stdout
    assert "kept" in listed and "later" not in listed


def test_backup_refuses_an_existing_file(store: Path, tmp_path: Path) -> None:
    """A backup never overwrites a file."""
    env = _clean_env(SCIMBRIDGE_DATA_DIR=str(store))
    (tmp_path / "b.db").write_text("precious")
    result = scimbridge("backup", str(tmp_path / "b.db"), cwd=tmp_path, env=env)
    assert result.returncode == 1 and "exists" in result.stderr
    assert (tmp_path / "b.db").read_text() == "precious"


def test_restore_checks_the_schema_revision(store: Path, tmp_path: Path) -> None:
    """A backup of an unknown (newer) revision, or no scimbridge store at all, is refused."""
    env = _clean_env(SCIMBRIDGE_DATA_DIR=str(tmp_path / "new"))
    newer = tmp_path / "newer.db"
    shutil.copy(store / "scimbridge.db", newer)
    with sqlite3.connect(newer) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            head_revision(),
        )
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    result = scimbridge("restore", str(newer), cwd=tmp_path, env=env)
    assert result.returncode == 1 and "9999_from_the_future" in result.stderr
    stranger = tmp_path / "stranger.db"
    with sqlite3.connect(stranger) as conn:
        conn.execute("CREATE TABLE t (x)")
    result = scimbridge("restore", str(stranger), cwd=tmp_path, env=env)
    assert result.returncode == 1 and "not a scimbridge" in result.stderr
    assert not (tmp_path / "new" / "scimbridge.db").exists()


def test_backup_of_a_postgresql_store_points_to_pg_dump(tmp_path: Path) -> None:
    """``scimbridge backup`` is for SQLite; PostgreSQL has its own tools."""
    env = _clean_env(SCIMBRIDGE_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/x")
    result = scimbridge("backup", str(tmp_path / "b"), cwd=tmp_path, env=env)
    assert result.returncode == 1 and "pg_dump" in result.stderr


# -- PostgreSQL: pg_dump and pg_restore, as the README says --------------------------------------


def test_a_postgresql_store_survives_pg_dump_and_pg_restore(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """The README's commands copy a store whose tokens still work and which ``db upgrade`` takes."""
    source_url = postgres.create_database("backup_source")
    source = Database(source_url)
    upgrade(source)
    value = TokenService(source).create("kept")
    source.dispose()
    dump = tmp_path / "scimbridge.dump"
    connection = ["-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres"]
    subprocess.run(
        [str(PG_BIN / "pg_dump"), *connection, "-Fc", "-f", str(dump), "backup_source"],
        check=True,
        capture_output=True,
    )
    target_url = postgres.create_database("backup_target")
    subprocess.run(
        [
            str(PG_BIN / "pg_restore"),
            *connection,
            "--no-owner",
            "--clean",
            "--if-exists",
            "-d",
            "backup_target",
            str(dump),
        ],
        check=True,
        capture_output=True,
    )
    upgraded = scimbridge(
        "db", "upgrade", cwd=tmp_path, env=_clean_env(SCIMBRIDGE_DATABASE_URL=target_url)
    )
    assert upgraded.returncode == 0, upgraded.stderr
    target = Database(target_url)
    try:
        info = TokenService(target).authenticate(value)
        assert info is not None and info.name == "kept"
    finally:
        target.dispose()
