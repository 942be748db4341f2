"""Wiring of the outbox workers: their handlers, ``scimbridge worker``, and the in-process worker.

Each job kind has its lane (see ``service/outbox/lanes.py``): its own thread (a process of
its own under ``scimbridge worker``, see ``lane_processes.py``), back-off and outage pause.
:data:`JOB_KINDS` registers the kinds; a new kind is one line there.

``scimbridge serve`` runs gunicorn with several worker processes; each would start its own
outbox worker. Claims are safe whatever the number of workers, but one is enough per machine:
the processes race for an exclusive file lock (named after the database) and only its holder
applies jobs. When it exits, the kernel drops the lock and another process takes over.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import IO
from typing import Protocol

from .adapters.ldap import LdapDirectory
from .adapters.ldap import entry_builder
from .adapters.mail import make_transport
from .service.directory.lifecycle import UserDirectory
from .service.directory.roles import load_roles
from .service.ldap.apply import LdapSyncHandler
from .service.ldap.passwords import password_cipher
from .service.ldap.sync import LDAP_JOB
from .service.mail.delivery import EmailDelivery
from .service.mail.queue import EMAIL_JOB
from .service.mail.rendering import MailRenderer
from .service.operations.maintenance import run_maintenance
from .service.operations.metrics import Metrics
from .service.outbox.lanes import OutboxLanes
from .service.outbox.worker import JobHandler
from .service.outbox.worker import OutboxWorker
from .service.outbox.worker import RetryPolicy
from .settings import Settings
from .store.database import Database

logger = logging.getLogger(__name__)

# How often a process that lost the election checks whether the worker's process is gone.
_ELECTION_RETRY_SECONDS = 5.0


def email_delivery(settings: Settings) -> EmailDelivery:
    """Return the handler of email jobs, with the transport and templates of the settings."""
    return EmailDelivery(
        MailRenderer.from_settings(settings), make_transport(settings.mail), settings.mail.sender
    )


def ldap_sync_handler(settings: Settings, database: Database) -> LdapSyncHandler:
    """Return the handler of LDAP sync jobs, with the directory and map of the settings."""
    builder = entry_builder(settings.ldap)
    # Only a directory that takes clear passwords (Active Directory) needs the key of the
    # passwords queued for it.
    cipher = password_cipher(settings, database) if builder.clear_passwords else None
    return LdapSyncHandler(database, LdapDirectory(settings.ldap), builder, cipher=cipher)


def _always(_settings: Settings) -> bool:
    return True


@dataclass(frozen=True)
class JobKind:
    """How to build the handler of one job kind, and whether the settings turn the kind on."""

    handler: Callable[[Settings, Database], JobHandler]
    enabled: Callable[[Settings], bool] = _always
    niceness: int = 0
    """CPU priority of the kind's lane process (``os.nice``): a lane that can wait a few
    seconds yields the CPU to one that cannot, on a busy machine."""


JOB_KINDS: dict[str, JobKind] = {
    # Mail can wait seconds; directory sync decides who can log in: mail yields the CPU.
    EMAIL_JOB: JobKind(lambda settings, _database: email_delivery(settings), niceness=10),
    LDAP_JOB: JobKind(ldap_sync_handler, enabled=lambda settings: settings.ldap.enabled),
}
"""Every job kind scimbridge queues, each with its own lane: a new kind is one line here."""


def lane_kinds(settings: Settings) -> list[str]:
    """Return the job kinds that are on, hence have a lane."""
    return sorted(kind for kind, job_kind in JOB_KINDS.items() if job_kind.enabled(settings))


def job_handlers(settings: Settings, database: Database) -> dict[str, JobHandler]:
    """Return the handler of every job kind that is on."""
    return {kind: JOB_KINDS[kind].handler(settings, database) for kind in lane_kinds(settings)}


def worker_options(settings: Settings, metrics: Metrics | None) -> dict[str, object]:
    """Return the options of every lane's worker (retries, lease, batch size, metrics)."""
    return {
        "policy": RetryPolicy.from_settings(settings.worker),
        "lease": timedelta(seconds=settings.worker.lease_seconds),
        "batch_size": settings.worker.batch_size,
        "metrics": metrics,
    }


def upkeep_of(settings: Settings, database: Database) -> Callable[[], object]:
    """Return the periodic upkeep (timed role grants, stale sessions…) as one call."""
    directory = UserDirectory(database, settings, load_roles(settings.roles.file))
    return lambda: run_maintenance(directory)


def build_worker(
    settings: Settings, database: Database, metrics: Metrics | None = None
) -> OutboxWorker:
    """Return one outbox worker for every kind, stepped on the caller's thread (tests, tools).

    Services run :func:`build_lanes` instead: one worker per kind, each on its own thread.
    """
    return OutboxWorker(
        database,
        job_handlers(settings, database),
        upkeep=upkeep_of(settings, database),
        **worker_options(settings, metrics),  # type: ignore[arg-type]
    )


def build_lanes(
    settings: Settings, database: Database, metrics: Metrics | None = None
) -> OutboxLanes:
    """Return the outbox lanes: one worker per job kind that is on, and the upkeep."""
    return OutboxLanes.build(
        database,
        job_handlers(settings, database),
        upkeep=upkeep_of(settings, database),
        **worker_options(settings, metrics),
    )


class OutboxRunner(Protocol):
    """Something that applies jobs until told to stop: lanes, or a single worker."""

    def run(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        """Apply jobs until ``stop`` is set."""
        ...


def run_worker_process(settings: Settings, database: Database) -> None:
    """Apply jobs until SIGTERM or SIGINT; the job in hand is finished first."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("outbox worker stopping (signal %d)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logger.info("outbox worker started")
    if settings.worker.lane_processes:
        from .lane_processes import run_lane_processes

        run_lane_processes(settings, database, stop)
    else:
        build_lanes(settings, database).run(stop, settings.worker.poll_interval_seconds)


def election_lock_path(database: Database) -> Path:
    """Return the lock file that elects one in-process worker per machine and database."""
    url = database.url
    if url.get_backend_name() == "sqlite" and url.database:
        name = str(Path(url.database).resolve())
    else:
        name = url.render_as_string(hide_password=True)
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"scimbridge-outbox-{digest}.lock"


class InProcessWorker:
    """Outbox lanes on a background thread, running only while it holds the election lock."""

    def __init__(self, worker: OutboxRunner, lock_path: Path, poll_interval: float = 1.0) -> None:
        self.worker = worker
        self.lock_path = lock_path
        self.poll_interval = poll_interval
        self.elected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-worker", daemon=True)

    @classmethod
    def for_settings(cls, settings: Settings, database: Database) -> InProcessWorker:
        """Build the in-process worker of ``scimbridge serve``."""
        return cls(
            build_lanes(settings, database),
            election_lock_path(database),
            settings.worker.poll_interval_seconds,
        )

    def start(self) -> None:
        """Start the thread: it waits for the lock, then applies jobs."""
        self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the thread to stop after the job in hand, and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        lock_file = self._wait_for_election()
        if lock_file is None:
            return
        try:
            self.elected.set()
            logger.info("outbox worker running in this process")
            self.worker.run(self._stop, self.poll_interval)
        finally:
            lock_file.close()

    def _wait_for_election(self) -> IO[str] | None:
        while not self._stop.is_set():
            lock_file = open(self.lock_path, "a")
            try:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock_file.close()
                self._stop.wait(_ELECTION_RETRY_SECONDS)
            else:
                return lock_file
        return None
