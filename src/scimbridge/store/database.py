"""Engine set-up and transactions for SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

if TYPE_CHECKING:
    from ..settings import Settings

# The layers above the store never import SQLAlchemy: they pass this transaction handle
# around and catch this error type, both named here.
Transaction = Connection
DatabaseError = SQLAlchemyError

_SYNCHRONOUS_MODES = ("FULL", "NORMAL")

UNAVAILABLE_RETRY_AFTER = 5
"""Seconds a client is told to wait (``Retry-After``) when the database cannot answer now."""

_SQLITE_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# SQLSTATEs of PostgreSQL errors a later retry need not meet: connection exceptions (08),
# insufficient resources (53), lock not available, server shutting down or starting up,
# serialization failure and deadlock.
_PG_TRANSIENT = ("08", "53", "55P03", "57P01", "57P02", "57P03", "40001", "40P01")


def is_unavailable(exc: BaseException) -> bool:
    """Whether a store error means "not now" rather than a fault of the request or the code.

    SQLite locked past the busy timeout by another program, PostgreSQL unreachable or
    shutting down, no pooled connection free in time: the same request may well succeed a
    moment later, so clients get 503 with ``Retry-After`` instead of a 500.
    """
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        # Extended result codes (SQLITE_BUSY_SNAPSHOT…) keep the primary code in the low byte.
        return (getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_BUSY
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is None:
        # psycopg raises OperationalError without a state when it cannot reach the server.
        return isinstance(exc, OperationalError)
    return str(sqlstate).startswith(_PG_TRANSIENT)


def error_summary(exc: BaseException) -> str:
    """Describe a store error for the log by the driver's words alone.

    SQLAlchemy's own message carries the statement and its parameters, which can hold
    personal data (names, addresses, password hashes).
    """
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return f"{type(cause).__name__}: {cause}"


class Database:
    """The store's engine, and the one way code opens a transaction on it."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        """Open the store at ``url``.

        :param sqlite_synchronous: SQLite's ``synchronous`` mode: ``FULL`` (a commit is on
            disk before it returns, surviving power loss) or ``NORMAL`` (faster; a power loss
            can lose the last commits).
        """
        if sqlite_synchronous not in _SYNCHRONOUS_MODES:
            raise ValueError(f"sqlite_synchronous must be one of {_SYNCHRONOUS_MODES}")
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        self._sync_log = _LogSync.for_url(self.url) if sqlite_synchronous == "FULL" else None
        # With FULL, SQLite would sync its log inside every commit, while the writer lock
        # keeps the next writer waiting; write() syncs it just after the lock instead.
        connection_mode = "NORMAL" if self._sync_log is not None else sqlite_synchronous
        self.engine = _create_engine(url, connection_mode)
        self._writer_lock = _SqliteWriterLock.for_url(self.url)
        self._kept = _KeptConnections(self.engine) if self.dialect == "sqlite" else None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Open a read transaction: every statement in it sees the same snapshot."""
        kept = self._kept.take(False) if self._kept is not None else None
        if kept is not None:
            # SQLite, this thread's own read connection: the common case, written out here
            # rather than through _connection (one context manager, not two, on every read).
            # Begun on the driver, as below.
            try:
                kept.connection.dbapi_connection.execute("BEGIN")  # type: ignore[union-attr]
                yield kept
            finally:
                # Ends the transaction, whether SQLAlchemy joined it or not (see _end).
                self._kept.give_back(kept, False)  # type: ignore[union-attr]
            return
        # PostgreSQL, or a read opened inside another on this thread: a pooled connection.
        with self.engine.connect() as connection:
            driver: Any = connection.connection.dbapi_connection
            if self._kept is not None:
                # SQLite's driver runs in autocommit mode here (see _create_engine): begin
                # at once, on the driver, so that prepared statements share the snapshot too;
                # SQLAlchemy then finds the transaction open (see _begin).
                driver.execute("BEGIN")
            try:
                yield connection
            finally:
                if connection.in_transaction():
                    connection.rollback()
                else:
                    driver.rollback()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Open a write transaction, committed, and on disk, when the block ends without error.

        On SQLite with ``synchronous=FULL`` the commit is synced after the writer lock is
        released (see :class:`_LogSync`), and before this returns: an acknowledged write
        survives a power loss, and the next writer does not wait for this one's disk.
        """
        with self._committed() as connection:
            yield connection
        self.sync()

    def sync(self) -> None:
        """Put every commit so far on disk (for writes made outside :meth:`write`)."""
        if self._sync_log is not None:
            self._sync_log()

    @contextmanager
    def _committed(self) -> Iterator[Connection]:
        with self._writer_lock, self._connection(write=True) as connection:
            if self._kept is None:
                with connection.begin():
                    yield connection
                return
            # SQLite: begin and commit on the driver, as read() does. SQLAlchemy's transaction
            # bookkeeping costs a fair share of a short write, and all of it would run while
            # the writer lock keeps every other writer waiting.
            driver: Any = connection.connection.dbapi_connection
            _on_driver(connection, driver.execute, "BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                _end(connection, driver, commit=False)
                raise
            _end(connection, driver, commit=True)

    @contextmanager
    def _connection(self, *, write: bool) -> Iterator[Connection]:
        kept = self._kept.take(write) if self._kept is not None else None
        if kept is None:
            with self.engine.connect() as connection:
                yield connection
            return
        try:
            yield kept
        finally:
            self._kept.give_back(kept, write)  # type: ignore[union-attr]

    def dispose(self) -> None:
        """Close every pooled connection (after a fork, or on shutdown)."""
        if self._kept is not None:
            self._kept.close()
        self.engine.dispose()
        self._writer_lock.close()


def database_for(settings: Settings) -> Database:
    """Open the store the settings name, with their SQLite durability."""
    return Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)


def _end(connection: Connection, driver: Any, *, commit: bool) -> None:
    """End a transaction begun on the driver, through SQLAlchemy if it joined in."""
    if connection.in_transaction():
        # A statement run with conn.execute() made SQLAlchemy begin its own transaction
        # record around the driver's (see _begin): end both together.
        if commit:
            connection.commit()
        else:
            connection.rollback()
    elif driver.in_transaction:
        _on_driver(connection, driver.commit if commit else driver.rollback)


def _on_driver(connection: Connection, call: Any, *args: Any) -> None:
    """Call the driver, raising its errors as the SQLAlchemy errors callers expect."""
    dialect = connection.dialect
    try:
        call(*args)
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            " ".join(args) or call.__name__, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc


class _KeptConnections:
    """One read and one write connection per thread, kept between transactions (SQLite).

    Checking a connection out of the pool and back in costs several times what a SQLite
    transaction does; a thread reuses its own instead. A transaction opened inside another
    one on the same thread gets a pooled connection, as before.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._every: weakref.WeakSet[_ThreadConnections] = weakref.WeakSet()

    def take(self, write: bool) -> Connection | None:
        """Return this thread's idle connection of the kind, or None when it is in use."""
        mine: _ThreadConnections | None = getattr(self._local, "mine", None)
        if mine is None or mine.pid != os.getpid():
            # A forked child never uses its parent's connections.
            mine = self._local.mine = _ThreadConnections()
            self._every.add(mine)
        if write in mine.busy:
            return None
        connection = mine.connections.get(write)
        if connection is None or connection.closed or connection.invalidated:
            connection = self._engine.connect()
            mine.connections[write] = connection
        mine.busy.add(write)
        return connection

    def give_back(self, connection: Connection, write: bool) -> None:
        """Mark the connection idle again, ending whatever transaction it was left in."""
        self._local.mine.busy.discard(write)
        _end(connection, connection.connection.dbapi_connection, commit=False)

    def close(self) -> None:
        """Close every kept connection of every thread."""
        for mine in list(self._every):
            mine.close()
        self._local = threading.local()


class _ThreadConnections:
    """The connections one thread keeps; returned to the pool when the thread ends."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.connections: dict[bool, Connection] = {}
        self.busy: set[bool] = set()

    def close(self) -> None:
        """Return the connections to the pool (never a parent's, after a fork)."""
        connections, self.connections = self.connections, {}
        if self.pid == os.getpid():
            for connection in connections.values():
                connection.close()

    def __del__(self) -> None:
        self.close()


class _SqliteWriterLock:
    """Queue the writers of one SQLite file, across threads and processes.

    SQLite admits one writer at a time; a writer that finds the database locked polls with
    growing sleeps, which under load leaves the database idle between writers. Waiting on
    a kernel file lock (and, inside a process, a thread lock) hands the turn over as soon as
    the previous writer commits.
    """

    def __init__(self, lock_path: str | None) -> None:
        self._thread_lock = threading.Lock()
        self._lock_path = lock_path
        self._lock_file: Any = None
        self._pid = 0

    @classmethod
    def for_url(cls, url: URL) -> _SqliteWriterLock:
        """Return the lock for a SQLite file URL; a no-op lock for other databases."""
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return cls(url.database + ".writer-lock")
        return cls(None)

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._lock_path is None:
            return
        try:
            # A forked worker must not share its parent's lock file: flock belongs to the
            # open file, so parent and child would hold "the same" lock.
            if self._lock_file is None or self._pid != os.getpid():
                self._lock_file = open(self._lock_path, "a")
                self._pid = os.getpid()
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._lock_path is not None:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        """Close the lock file; the next writer opens it again."""
        with self._thread_lock:
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None


class _LogSync:
    """Sync a SQLite database's write-ahead log to disk: a commit's durability, outside its lock.

    In WAL mode a commit appends its pages to the log; with ``synchronous=FULL`` SQLite
    then syncs the log before it lets the next writer in, so writers queue behind each
    other's disk waits (about 0.4 ms each here). Connections run with ``NORMAL`` instead
    (SQLite still syncs the log before each checkpoint and the database file after it), and
    the committer syncs the log after releasing the writer lock, before it answers. Writers
    waiting on the disk at the same time share the file system's journal commit: four
    threads committed about 7 times as many transactions a second as with ``FULL``.

    What a reader sees: a commit becomes visible up to one sync before it is on disk.
    Every later commit is appended after it, so a write made on what was read is synced
    with it; only an answer to a read can outlive a commit a power loss then took.
    """

    def __init__(self, database_path: str) -> None:
        self._log_path = database_path + "-wal"
        self._directory = os.path.dirname(os.path.abspath(database_path))
        self._named_log: tuple[int, int] | None = None
        """The (device, inode) of the log whose name was last synced into its directory."""

    @classmethod
    def for_url(cls, url: URL) -> _LogSync | None:
        """Return the log sync of a SQLite file; None for other databases."""
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return cls(url.database)
        return None

    def __call__(self) -> None:
        """Sync the log's data (and, once per log file, its name in the directory)."""
        try:
            # Opened by name each time: SQLite deletes the log when its last connection
            # closes, and a descriptor kept from before would sync a file no longer in use.
            descriptor = os.open(self._log_path, os.O_RDONLY)
        except FileNotFoundError:
            # No log: its last checkpoint put every commit into the database file, synced.
            return
        try:
            os.fdatasync(descriptor)
            status = os.fstat(descriptor)
        finally:
            os.close(descriptor)
        if self._named_log != (status.st_dev, status.st_ino):
            directory = os.open(self._directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            self._named_log = (status.st_dev, status.st_ino)


def _json_serializer(value: Any) -> str:
    return orjson.dumps(value).decode()


# Every resource document crosses this boundary on each read and write; orjson is several
# times faster than the standard library's json here.
_JSON_OPTIONS: dict[str, Any] = {
    "json_serializer": _json_serializer,
    "json_deserializer": orjson.loads,
}


def _create_engine(url: str, sqlite_synchronous: str = "FULL") -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=8,
            max_overflow=8,
            # The store writes naive UTC wall times (see timestamps.py). PostgreSQL reads a
            # naive value into a timestamptz column in the session's zone, which defaults to
            # the server's: pin it to UTC on every connection, whatever the server says.
            connect_args={"options": "-c timezone=UTC"},
            **_JSON_OPTIONS,
        )

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_size=16, max_overflow=16, **_JSON_OPTIONS)

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the writer. synchronous=FULL syncs the log on every
        # commit, so an acknowledged write survives power loss; NORMAL syncs only at
        # checkpoints, which a crash of the process survives but a power loss may not.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        # caseExact attributes need a case-sensitive LIKE; others compare lower-cased keys.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Database.read and Database.write begin on the driver themselves (a write with
        # BEGIN IMMEDIATE, taking the write lock up front). A transaction SQLAlchemy begins
        # on its own (a migration, a read on a pooled connection) begins here.
        driver: Any = connection.connection.dbapi_connection
        if not driver.in_transaction:
            # Straight to the driver: SQLAlchemy's execution path would cost several times
            # what the statement does.
            driver.execute("BEGIN")

    return engine
