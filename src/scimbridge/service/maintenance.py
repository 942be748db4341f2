"""Periodic upkeep: timed role grants that run out, stale sessions, old rate-limit counters.

Run by the worker loop (and ``scimbridge maintenance``); each step is its own transaction, so
one failing step does not hold back the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from ..store import lifecycle as accounts
from .lifecycle import UserDirectory

log = logging.getLogger(__name__)


@dataclass
class MaintenanceReport:
    """What one maintenance run did."""

    role_grants_reverted: int = 0
    sessions_ended: int = 0


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
    if report.role_grants_reverted or report.sessions_ended:
        log.info(
            "maintenance: %d role grants reverted, %d stale sessions ended",
            report.role_grants_reverted,
            report.sessions_ended,
        )
    return report
