"""Recording the RFC 7644 deviations SCIM clients send, so admins can see them per token.

The SCIM layer calls :func:`record_client_deviations` once at the end of a request that met
a deviation (tolerated or refused); requests that met none never reach this module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime

from ..store import deviations as deviation_store
from ..store.database import Database
from ..store.database import DatabaseError

log = logging.getLogger(__name__)


def record_client_deviations(
    database: Database,
    token_name: str,
    tolerated: Sequence[str],
    refused: Sequence[str],
) -> None:
    """Count one request of a token against each deviation it met.

    The count is bookkeeping: when it cannot be written, the SCIM request it describes has
    already been answered and must not fail for it, so the failure is only logged.
    """
    if not tolerated and not refused:
        return
    try:
        with database.write() as conn:
            deviation_store.count_deviations(
                conn, token_name, tolerated, refused, datetime.now(UTC)
            )
    except DatabaseError:
        log.warning("could not count SCIM deviations of token %r", token_name, exc_info=True)
