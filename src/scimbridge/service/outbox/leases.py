"""Lease renewal: a live worker keeps the jobs it applies, a dead one loses them in seconds.

A claim leases its jobs for a short time (``worker.lease_seconds``, 6 s by default). While
the worker applies them, a :class:`LeaseKeeper` thread renews the lease of the jobs still in
hand every quarter of it, so a slow job (an SMTP server taking its time, a large LDAP batch)
keeps its claim however long it takes, while the jobs of a worker killed with ``kill -9`` are
due again a few seconds after its last renewal.

The keeper is also the worker's fence: once a renewal finds a job claimed by someone else,
or the lease runs short because renewals fail (the database is out of reach), the worker
starts no further job of the claim and hands them back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from types import TracebackType

from ...store import jobs as job_store
from ...store.database import Database
from ...store.jobs import Job

logger = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 4
"""Renewals in one lease: the worker stops starting jobs after two fail in a row, and a
live worker loses its claim only once four in a row failed."""


class LeaseKeeper:
    """Renews, on its own thread, the lease of the claimed jobs not settled yet."""

    def __init__(
        self,
        database: Database,
        claimed: Sequence[Job],
        lease_end: datetime,
        lease: timedelta,
        clock: Callable[[], datetime],
        interval: float | None = None,
    ) -> None:
        self.database = database
        self.lease = lease
        self.clock = clock
        self.interval = interval or lease.total_seconds() / RENEWALS_PER_LEASE
        self.lease_end = lease_end
        """End of the lease of every job still held (the last renewal's, or the claim's)."""
        self.lost = False
        """True once a renewal found a held job claimed again by another worker."""
        self._held = {job.pk: job for job in claimed}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def let_go(self, jobs: Iterable[Job]) -> None:
        """Stop renewing jobs about to be settled (before their settling transaction).

        Letting go first means a renewal never mistakes a job settled meanwhile for a lost one.
        """
        with self._lock:
            for job in jobs:
                self._held.pop(job.pk, None)

    def running_short(self) -> bool:
        """Whether the claim can no longer be trusted to outlast one more job.

        Half the lease left is a safe margin: past it, another worker could claim a job again
        while this one is still applying it.
        """
        return self.lost or self.clock() >= self.lease_end - self.lease / 2

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.renew()

    def renew(self) -> None:
        """Extend the lease of the jobs still held; note a job another worker took."""
        with self._lock:
            held = list(self._held.values())
        if not held:
            return
        now = self.clock()
        until = now + self.lease
        try:
            with self.database.write() as conn:
                renewed = job_store.renew_leases(conn, held, now, until)
        except Exception:
            # The database is out of reach: the lease runs short, and the worker stops
            # starting jobs (see running_short) until a renewal succeeds again.
            logger.warning("cannot renew the lease of %d jobs; retrying", len(held), exc_info=True)
            return
        with self._lock:
            lost = [pk for pk in (job.pk for job in held) if pk in self._held and pk not in renewed]
            if lost:
                self.lost = True
                logger.warning("jobs %s were claimed by another worker; stopping", lost)
            else:
                self.lease_end = until
