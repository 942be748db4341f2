"""Helpers for lifecycle tests: emails queued in the outbox, links, the audit trail, forms.

The tests read the tables directly with SQLAlchemy: what a user would find in their mailbox
is the ``link`` of a queued email job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update

import scimbridge.service.directory.passwords as password_module
from scimbridge.domain.lifecycle import RequestInfo
from scimbridge.store.database import Database
from scimbridge.store.tables import audit_events
from scimbridge.store.tables import jobs
from scimbridge.store.tables import user_links
from scimbridge.store.tables import users

ROLES_FILE = Path(__file__).resolve().parent.parent / "config" / "roles.yaml"

STRONG_PASSWORD = "correct horse battery staple 42"
OTHER_STRONG_PASSWORD = "tangerine kayak orbit 7 lantern"
THIRD_STRONG_PASSWORD = "violet harbour seventeen gulls"

BROWSER = RequestInfo(request_id="test", client_address="192.0.2.10", user_agent="pytest")

_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def use_fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash with argon2id at its lowest cost: the rules under test do not depend on it."""
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(password_module, "_hasher", fast)


@dataclass
class QueuedEmail:
    """An email job, as the outbox holds it."""

    template: str
    to: str
    context: dict[str, Any]

    @property
    def token(self) -> str:
        """The token at the end of the emailed link."""
        return str(self.context["link"]).rsplit("/", 1)[-1]

    @property
    def path(self) -> str:
        """The emailed link without scheme and host."""
        link = str(self.context["link"])
        return "/" + link.split("/", 3)[3]


def queued_emails(
    database: Database, template: str | None = None, to: str | None = None
) -> list[QueuedEmail]:
    """Return the queued emails, oldest first, optionally of one template and recipient."""
    with database.read() as conn:
        rows = conn.execute(
            select(jobs.c.payload).where(jobs.c.kind == "email").order_by(jobs.c.pk)
        ).all()
    found = [
        QueuedEmail(row.payload["template"], row.payload["to"], row.payload["context"])
        for row in rows
    ]
    return [
        email
        for email in found
        if (template is None or email.template == template) and (to is None or email.to == to)
    ]


def latest_email(database: Database, template: str, to: str) -> QueuedEmail:
    """Return the newest email of a template sent to an address."""
    emails = queued_emails(database, template, to)
    assert emails, f"no {template} email queued for {to}"
    return emails[-1]


def expire_links(database: Database, user_id: str) -> None:
    """Move every link of a user past its expiry."""
    past = (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None)
    with database.write() as conn:
        user_pk = conn.execute(select(users.c.pk).where(users.c.id == user_id)).scalar_one()
        conn.execute(update(user_links).where(user_links.c.user_pk == user_pk).values(expires=past))


def audit_actions(database: Database, target_id: str) -> list[str]:
    """Return the audited actions on a target, oldest first."""
    with database.read() as conn:
        rows = conn.execute(
            select(audit_events.c.action)
            .where(audit_events.c.target_id == target_id)
            .order_by(audit_events.c.pk)
        ).all()
    return [row.action for row in rows]


def audit_rows(database: Database, action: str) -> list[Any]:
    """Return the audit events of one action, oldest first."""
    with database.read() as conn:
        return list(
            conn.execute(
                select(audit_events)
                .where(audit_events.c.action == action)
                .order_by(audit_events.c.pk)
            ).all()
        )


def audit_trail_text(database: Database) -> str:
    """Return every audit event as text, to search for what must never be in it."""
    with database.read() as conn:
        rows = conn.execute(select(audit_events)).all()
    return "\n".join(repr(tuple(row)) for row in rows)


def password_hashes(database: Database) -> list[str]:
    """Return every stored password hash."""
    with database.read() as conn:
        return [
            row.password_hash
            for row in conn.execute(select(users.c.password_hash)).all()
            if row.password_hash
        ]


def stored_token_digests(database: Database) -> list[str]:
    """Return the stored digests of links and sessions."""
    with database.read() as conn:
        links = conn.execute(select(user_links.c.token_hash)).scalars().all()
        sessions = conn.execute(text("SELECT token_hash FROM sessions")).scalars().all()
    return [*links, *sessions]


def csrf_token(page: str) -> str:
    """Return the CSRF token of the first form on a page."""
    found = _CSRF_FIELD.search(page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)
