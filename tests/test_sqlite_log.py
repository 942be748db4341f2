"""SQLite's write-ahead log under many writes: bounded, every row kept, even after SIGKILL.

SQLite checkpoints the log itself, inside the commit that takes it past 1,000 pages, under
the store's writer lock. (Checkpointing from a thread of each process instead, outside the
lock, was measured: it cut the lock's hold per delete by a fifth but made four writer
processes 20-25 % slower, their log syncs queueing behind the checkpoints' database syncs.)
These tests write through real processes on a real file: the log must stay bounded under
many writes, writers in several processes must all land, and a writer killed with SIGKILL
must lose no write it had acknowledged.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from scimbridge.store.database import Database

PAGES_BEFORE_RESTART = 1000
"""SQLite's automatic checkpoint: the log is copied and started over past this many pages."""
PAGE = 4096
ROW = "x" * 3000
"""A row of most of a page: every commit adds at least one page to the log."""
LOG_BOUND = 2 * PAGES_BEFORE_RESTART
"""Pages the log may reach: the limit and the commit that passes it, with room to spare."""

# A writer process: commits `count` rows through Database.write, printing each id once
# write() has returned (acknowledged), then exits.
WRITER = """
import sys
from scimbridge.store.database import Database
url, name, count, row = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
database = Database(url, sqlite_synchronous=sys.argv[5])
for n in range(count):
    with database.write() as conn:
        conn.exec_driver_sql("INSERT INTO t (id, body) VALUES (?, ?)", (f"{name}-{n}", row))
    print(f"{name}-{n}", flush=True)
database.dispose()
"""


def _database(path: Path, synchronous: str = "NORMAL") -> Database:
    database = Database(f"sqlite:///{path}", sqlite_synchronous=synchronous)
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, body TEXT)")
    return database


def _writer(path: Path, name: str, count: int, synchronous: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", WRITER, f"sqlite:///{path}", name, str(count), ROW, synchronous]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def _stored_ids(path: Path) -> set[str]:
    connection = sqlite3.connect(path)
    try:
        return {row[0] for row in connection.execute("SELECT id FROM t")}
    finally:
        connection.close()


def _log_pages(path: Path) -> int:
    log = Path(f"{path}-wal")
    return log.stat().st_size // PAGE if log.exists() else 0


def test_the_store_keeps_sqlites_own_checkpoint(tmp_path: Path) -> None:
    """Every connection checkpoints past 1,000 pages of log: nothing else bounds the log."""
    database = _database(tmp_path / "db.sqlite")
    try:
        with database.write() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        with database.read() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        database.dispose()


def test_the_log_stays_bounded_under_many_writes(tmp_path: Path) -> None:
    """Thousands of commits of a page or more each: the log is checkpointed and reused."""
    path = tmp_path / "db.sqlite"
    database = _database(path)
    commits = 4 * PAGES_BEFORE_RESTART
    try:
        for n in range(commits):
            with database.write() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (?, ?)", (str(n), ROW))
        # Without checkpoints the log would hold every commit's pages (16,000 here).
        assert _log_pages(path) < LOG_BOUND
    finally:
        database.dispose()
    assert len(_stored_ids(path)) == commits


def test_writers_in_several_processes_all_land_and_the_log_stays_bounded(
    tmp_path: Path,
) -> None:
    """Three processes commit side by side; whichever fills the log checkpoints it."""
    path = tmp_path / "db.sqlite"
    _database(path).dispose()
    per_writer = PAGES_BEFORE_RESTART
    writers = [_writer(path, f"w{k}", per_writer, "NORMAL") for k in range(3)]
    acknowledged: set[str] = set()
    for writer in writers:
        out, _ = writer.communicate(timeout=300)
        assert writer.returncode == 0
        acknowledged |= set(out.split())
    assert len(acknowledged) == 3 * per_writer
    assert _stored_ids(path) == acknowledged
    # 3,000 commits of a page or more: without checkpoints the log would have held them all.
    assert _log_pages(path) < LOG_BOUND


def test_a_killed_writer_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """SIGKILL in the middle of writing (and of checkpoints): every acknowledged row is kept."""
    path = tmp_path / "db.sqlite"
    _database(path, "FULL").dispose()
    acknowledged: list[str] = []
    with _writer(path, "killed", 100_000, "FULL") as writer:
        assert writer.stdout is not None
        # Past two restarts of the log, so that the kill lands among checkpoints.
        while len(acknowledged) < 2 * PAGES_BEFORE_RESTART + 137:
            line = writer.stdout.readline()
            assert line, "the writer ended early"
            acknowledged.append(line.strip())
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(30)
        acknowledged += writer.stdout.read().split()  # printed before the kill landed
    stored = _stored_ids(path)
    assert set(acknowledged) <= stored
    assert len(stored) <= len(acknowledged) + 1  # at most the commit the kill interrupted
