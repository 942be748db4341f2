"""How LDAP sync is doing: directory reachability, queue depth, lag and parked jobs.

``scimbridge ldap status`` prints it; ``/readyz`` reports the directory from a cached probe,
as ``degraded`` (never failed) while it is unreachable: SCIM keeps accepting writes, and the
queue catches up when the directory is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

from ...adapters.ldap import LdapDirectory
from ...adapters.ldap import LdapError
from ...settings import LdapSettings
from ...store import jobs as job_store
from ...store.database import Database
from ...store.jobs import JobInfo
from .sync import LDAP_JOB


@dataclass
class LdapQueue:
    """The LDAP jobs not applied yet."""

    pending: int = 0
    """Queued, running or waiting to retry."""
    failed: int = 0
    """Parked: refused by the directory, see ``scimbridge jobs list --kind ldap``."""
    oldest_pending: datetime | None = None
    parked: list[JobInfo] = field(default_factory=list)

    def lag_seconds(self, now: datetime) -> float:
        """How long the oldest pending change has waited (0 when the directory is current)."""
        if self.oldest_pending is None:
            return 0.0
        return max(0.0, (now - self.oldest_pending).total_seconds())


def ldap_queue(database: Database, parked_limit: int = 20) -> LdapQueue:
    """Measure the LDAP jobs from the job table."""
    queue = LdapQueue()
    with database.read() as conn:
        for count in job_store.count_jobs(conn):
            if count.kind != LDAP_JOB:
                continue
            if count.status in job_store.PENDING:
                queue.pending += count.count
                if queue.oldest_pending is None or count.oldest_created < queue.oldest_pending:
                    queue.oldest_pending = count.oldest_created
            elif count.status == job_store.JobStatus.FAILED:
                queue.failed += count.count
        if queue.failed:
            queue.parked = job_store.list_jobs(
                conn, [job_store.JobStatus.FAILED], LDAP_JOB, parked_limit
            )
    return queue


def probe_directory(settings: LdapSettings) -> str | None:
    """Bind to the directory once; return None when it works, else why it does not."""
    try:
        with LdapDirectory(settings) as directory:
            directory.check()
    except LdapError as exc:
        return str(exc)
    return None


class DirectoryHealth:
    """A probe of the directory for readiness checks, cached so probes stay cheap."""

    def __init__(
        self,
        settings: LdapSettings,
        cache_seconds: float = 5.0,
        probe: Callable[[LdapSettings], str | None] = probe_directory,
    ) -> None:
        self.settings = settings
        self.cache_seconds = cache_seconds
        self._probe = probe
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self._error: str | None = None

    def error(self) -> str | None:
        """Return why the directory cannot be used, or None when it can.

        Probes at most once per ``cache_seconds``; concurrent callers share the probe.
        """
        with self._lock:
            if time.monotonic() - self._checked_at >= self.cache_seconds:
                self._error = self._probe(self.settings)
                self._checked_at = time.monotonic()
            return self._error
