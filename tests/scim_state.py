"""What a refused SCIM request must leave as it was: every stored row a write touches."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from scimbridge.store.database import Database
from scimbridge.store.tables import audit_events
from scimbridge.store.tables import group_members
from scimbridge.store.tables import groups
from scimbridge.store.tables import jobs
from scimbridge.store.tables import user_emails
from scimbridge.store.tables import users


def store_state(database: Database) -> dict[str, Any]:
    """Return the resources, memberships, emails, audit events and outbox jobs, in order."""
    with database.read() as conn:
        return {
            "users": conn.execute(
                select(users.c.id, users.c.version, users.c.doc, users.c.status).order_by(
                    users.c.pk
                )
            ).all(),
            "emails": conn.execute(
                select(user_emails.c.user_pk, user_emails.c.value_key).order_by(
                    user_emails.c.user_pk, user_emails.c.value_key
                )
            ).all(),
            "groups": conn.execute(
                select(groups.c.id, groups.c.version, groups.c.doc).order_by(groups.c.pk)
            ).all(),
            "members": conn.execute(
                select(group_members.c.group_pk, group_members.c.member_id).order_by(
                    group_members.c.group_pk, group_members.c.member_id
                )
            ).all(),
            "audit": conn.execute(select(audit_events.c.pk).order_by(audit_events.c.pk)).all(),
            "jobs": conn.execute(select(jobs.c.pk).order_by(jobs.c.pk)).all(),
        }
