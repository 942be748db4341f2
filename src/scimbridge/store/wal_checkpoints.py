"""Checkpoints of a SQLite write-ahead log on a thread of their own, outside the writer lock.

SQLite's automatic checkpoint runs inside the commit that takes the log past 1,000 pages:
that commit copies the log's pages into the database file and syncs both while scimbridge's
writer lock (see ``database._SqliteWriterLock``) keeps every other writer waiting, and its
request waits too (several milliseconds, against well under one for a commit). The store's
connections turn it off (``wal_autocheckpoint=0``); every few dozen writes of a process wake
its checkpoint thread, which checkpoints on a connection of its own in up to two passes:

1. a PASSIVE checkpoint, without the writer lock: it waits for nobody, writers keep committing
   while it copies what the log holds, readers keep reading;
2. once the log has grown past 1,000 pages (SQLite's own limit), a second PASSIVE checkpoint
   under the writer lock, copying only what was committed during the first. The log is then
   wholly in the database file, so the next writer starts it over from its beginning: the log
   stays bounded. (Without this pass, writers committing during every checkpoint would keep
   the log from ever being wholly copied, and it would grow without end.)

The size of the log is what a checkpoint answers; it is never read from SQLite's files
directly: opening and closing the ``-shm`` file in a process would drop the POSIX locks its
SQLite connections hold on it, and let another process overwrite commits not yet copied.

These are the checkpoints SQLite runs itself, so a crash during one loses nothing (the log
stays the source until the database file is synced). What the log holds is still synced by
every write itself (``database._LogSync``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import AbstractContextManager
from typing import Any

logger = logging.getLogger(__name__)

PAGES_BEFORE_RESTART = 1000
"""Pages in the log past which the log is wholly copied and started over (SQLite's default)."""

COMMITS_BETWEEN_CHECKPOINTS = 32
"""Writes of one process between two wakes of its checkpoint thread."""


class WalCheckpoints:
    """Checkpoint one SQLite file's log when it grows past a size, off the committing thread."""

    def __init__(
        self,
        database_path: str,
        writer_lock: AbstractContextManager[Any],
        pages: int = PAGES_BEFORE_RESTART,
    ) -> None:
        """Checkpoint the log of the SQLite file at ``database_path``; restart it past ``pages``.

        :param writer_lock: the lock every writer of the file takes (held for the second pass).
        """
        self._database_path = database_path
        self._writer_lock = writer_lock
        self._pages = pages
        self._commits = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def committed(self) -> None:
        """Note a commit: every few dozen, wake the checkpoint thread."""
        # Counted without a lock: a count lost to a race only delays a checkpoint a little.
        self._commits += 1
        if self._commits >= COMMITS_BETWEEN_CHECKPOINTS:
            self._commits = 0
            self._ensure_thread()
            self._wake.set()

    def close(self) -> None:
        """Stop this process's checkpoint thread, letting a running checkpoint end.

        A later commit past the limit starts another one.
        """
        with self._lock:
            thread, self._thread = self._thread, None
            wake, self._wake = self._wake, threading.Event()
        wake.set()  # the thread finds it is no longer the current one, and ends
        if thread is not None and self._pid == os.getpid():
            thread.join(30)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            # First use, or a forked child, which has none of its parent's threads.
            self._wake = threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, args=(self._wake,), name="sqlite-checkpoints", daemon=True
            )
            self._thread.start()

    def _run(self, wake: threading.Event) -> None:
        # Its own connection, never the application's: opened in the thread that uses it.
        connection = sqlite3.connect(self._database_path, isolation_level=None)
        try:
            while wake.wait() and wake is self._wake:
                wake.clear()
                try:
                    self._checkpoint(connection)
                except sqlite3.Error as exc:
                    # Another checkpoint running, the database being replaced: the next
                    # commit past the limit tries again.
                    logger.warning("SQLite checkpoint failed: %s", exc)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        # (busy, pages in the log, pages of it now in the database file)
        _, log_pages, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if log_pages >= self._pages:
            with self._writer_lock:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
