"""Queue the emails scimbridge sends; the outbox worker renders and delivers them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...store.database import Transaction
from ...store.jobs import enqueue

EMAIL_JOB = "email"

TEMPLATES = (
    "invitation",
    "password_reset",
    "password_changed",
    "email_changed",
    "account_suspended",
)
"""Message templates, each ``config/templates/mail/<name>.txt`` and ``<name>.html``."""


def queue_email(
    conn: Transaction,
    template: str,
    to: str,
    context: dict[str, Any],
    now: datetime,
    *,
    ordering_key: str,
    secret_keys: tuple[str, ...] = (),
) -> int:
    """Queue one email in the caller's transaction.

    :param template: One of :data:`TEMPLATES`.
    :param context: Values the template renders (names, absolute links…).
    :param secret_keys: Context keys holding a secret (a link carrying a token): the worker
        scrubs them from the stored job once the message is delivered, so the secret only
        lives in clear in the outbox until it is sent, and then only in the message.
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown mail template {template!r}")
    payload = {
        "template": template,
        "to": to,
        "context": context,
        "secret_keys": list(secret_keys),
    }
    return enqueue(conn, EMAIL_JOB, ordering_key, payload, now)
