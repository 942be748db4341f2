"""Periodic upkeep: expired role grants, stale sessions, rate-limit counters, delivered jobs.

Run by the worker loop (and ``scimbridge maintenance``); each step is its own transaction, so
one failing step does not hold back the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from ...store import jobs as job_store
from ...store import lifecycle as accounts
from ..directory.lifecycle import UserDirectory

log = logging.getLogger(__name__)

# Delivered jobs are kept a week for `jobs list` and troubleshooting, then dropped: the audit
# trail, not the outbox, is the record of what happened.
_DONE_JOB_RETENTION = timedelta(days=7)


@dataclass
class MaintenanceReport:
    """What one maintenance run did."""

    role_grants_reverted: int = 0
    sessions_ended: int = 0
    jobs_purged: int = 0


def run_maintenance(directory: UserDirectory, now: datetime | None = None) -> MaintenanceReport:
    """Revert expired role grants, end stale sessions, drop ended rate-limit windows."""
    now = now or datetime.now(UTC)
    report = MaintenanceReport()
    report.role_grants_reverted = directory.expire_role_grants()
    limits = directory.settings.session
    window = timedelta(minutes=directory.settings.lifecycle.rate_window_minutes)
    with directory.database.write() as conn:
        report.sessions_ended = accounts.delete_stale_sessions(
            conn,
            idle_before=now - timedelta(minutes=limits.idle_minutes),
            created_before=now - timedelta(hours=limits.lifetime_hours),
        )
        accounts.forget_old_hits(conn, now - 2 * window)
        report.jobs_purged = job_store.purge_done(conn, now - _DONE_JOB_RETENTION)
    if report.role_grants_reverted or report.sessions_ended:
        log.info(
            "maintenance: %d role grants reverted, %d stale sessions ended",
            report.role_grants_reverted,
            report.sessions_ended,
        )
    return report
