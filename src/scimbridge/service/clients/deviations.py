"""Recording the RFC 7644 deviations SCIM clients send, so admins can see them per token.

A request that changes something counts its deviations in the transaction of the change
(:func:`count_client_deviations`); the SCIM layer calls :func:`record_client_deviations` at
the end of a request for those still uncounted. Requests that met none never reach this module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime

from ...store import deviations as deviation_store
from ...store.database import Database
from ...store.database import DatabaseError
from ...store.database import Transaction

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
            count_client_deviations(conn, token_name, tolerated, refused)
    except DatabaseError:
        log.warning("could not count SCIM deviations of token %r", token_name, exc_info=True)


def count_client_deviations(
    conn: Transaction, token_name: str, tolerated: Sequence[str], refused: Sequence[str]
) -> None:
    """Count one request of a token against each deviation it met, in ``conn``."""
    if tolerated or refused:
        deviation_store.count_deviations(conn, token_name, tolerated, refused, datetime.now(UTC))
