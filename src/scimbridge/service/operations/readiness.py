"""Readiness: whether this instance can serve, and whether the systems it feeds keep up.

The store is required: without it the instance is ``unavailable``. The LDAP directory is not:
while it is unreachable the instance is ``degraded`` (SCIM writes are accepted and queued), and
the report says how far the directory lags behind. ``checks.outbox.lanes`` gives each
outbox lane's depth and lag (how long its oldest pending job has waited).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from typing import Any

from ...store.database import Database
from ...store.database import DatabaseError
from ..ldap.status import DirectoryHealth
from ..ldap.status import ldap_queue
from ..outbox.status import QueueSummary
from ..outbox.status import lane_metrics


def readiness(
    database: Database, directory: DirectoryHealth | None, lanes: Sequence[str] = ()
) -> tuple[dict[str, Any], bool]:
    """Return the readiness report and whether the instance can serve at all.

    :param lanes: The job kinds whose lanes run, reported even while they have no job.
    """
    now = datetime.now(UTC)
    try:
        queue = ldap_queue(database, parked_limit=0)
        summaries = lane_metrics(database, lanes, now)
    except DatabaseError as exc:
        report = {"status": "unavailable", "checks": {"database": _failed(exc)}}
        return report, False
    checks: dict[str, Any] = {
        "database": {"status": "ok"},
        "outbox": {"status": "ok", "lanes": {lane.kind: lane_report(lane) for lane in summaries}},
    }
    status = "ok"
    if directory is None:
        checks["directory"] = {"status": "off"}
    else:
        error = directory.error()
        checks["directory"] = {
            "status": "ok" if error is None else "unreachable",
            **({"error": error} if error else {}),
            "pending_jobs": queue.pending,
            "failed_jobs": queue.failed,
            "lag_seconds": round(queue.lag_seconds(now), 1),
        }
        if error is not None:
            status = "degraded"
    return {"status": status, "checks": checks}, True


def lane_report(lane: QueueSummary) -> dict[str, Any]:
    """Describe one outbox lane for a machine: depth, running, retrying, parked, lag."""
    return {
        "depth": lane.pending,
        "running": lane.running,
        "retrying": lane.retrying,
        "failed": lane.failed,
        "lag_seconds": round(lane.lag_seconds, 1),
    }


def _failed(exc: Exception) -> dict[str, str]:
    return {"status": "failed", "error": type(exc).__name__}
