"""Readiness: whether this instance can serve, and whether the systems it feeds keep up.

The store is required: without it the instance is ``unavailable``. The LDAP directory is not:
while it is unreachable the instance is ``degraded`` (SCIM writes are accepted and queued), and
the report says how far the directory lags behind.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from ..store.database import Database
from ..store.database import DatabaseError
from .ldap_status import DirectoryHealth
from .ldap_status import ldap_queue


def readiness(database: Database, directory: DirectoryHealth | None) -> tuple[dict[str, Any], bool]:
    """Return the readiness report and whether the instance can serve at all."""
    now = datetime.now(UTC)
    try:
        queue = ldap_queue(database, parked_limit=0)
    except DatabaseError as exc:
        report = {"status": "unavailable", "checks": {"database": _failed(exc)}}
        return report, False
    checks: dict[str, Any] = {"database": {"status": "ok"}}
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


def _failed(exc: Exception) -> dict[str, str]:
    return {"status": "failed", "error": type(exc).__name__}
