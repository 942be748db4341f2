"""Two provisioning services on two stores, for the fast paths' differential tests.

``test_scim_create_fast.py`` and ``test_scim_patch_fast.py`` run the same requests on a store
served with a fast path and on one served without, then compare what each store holds and
what each request left behind (audit events, outbox jobs) since a mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.service.directory.provisioning import ProvisioningService
from scimbridge.service.directory.roles import load_roles
from scimbridge.settings import LdapSettings
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.database import Transaction
from scimbridge.store.migrations import upgrade
from scimbridge.store.tables import audit_events
from scimbridge.store.tables import jobs
from scimbridge.store.tables import user_emails


@dataclass
class Side:
    """One store and the service in front of it."""

    database: Database
    service: ProvisioningService


def make_side(tmp: Path, name: str, **service_options: Any) -> Side:
    """Return a fresh store ``name`` under ``tmp`` and a service with ``service_options``."""
    settings = Settings(
        database_url=f"sqlite:///{tmp / name}.db",
        public_url="http://scim.test",
        # Set so that LDAP jobs are queued (nothing connects: no worker runs here).
        ldap=LdapSettings(
            url="ldap://127.0.0.1:9",
            bind_dn="cn=admin,dc=test",
            users_dn="ou=people,dc=test",
            groups_dn="ou=groups,dc=test",
        ),
    )
    database = Database(settings.database_url, sqlite_synchronous="NORMAL")
    upgrade(database)
    directory = UserDirectory(database, settings, load_roles(settings.roles.file))
    return Side(database, ProvisioningService(database, directory, **service_options))


def marks(side: Side) -> tuple[int, int]:
    """Return the last audit event's and the last job's key: what comes after is new."""
    with side.database.read() as conn:
        last_event = conn.execute(select(audit_events.c.pk).order_by(audit_events.c.pk.desc()))
        last_job = conn.execute(select(jobs.c.pk).order_by(jobs.c.pk.desc()))
        return (last_event.scalar() or 0, last_job.scalar() or 0)


def email_rows(conn: Transaction, user_pk: int) -> list[dict[str, Any]]:
    """Return a user's email rows in order, their user key blanked (it differs by store)."""
    rows = conn.execute(
        select(user_emails).where(user_emails.c.user_pk == user_pk).order_by(user_emails.c.position)
    ).mappings()
    return [dict(row) | {"user_pk": 0} for row in rows]


def events_and_jobs_since(conn: Transaction, since: tuple[int, int]) -> tuple[list[Any], list[Any]]:
    """Return the audit events and outbox jobs made after the :func:`marks` ``since``."""
    events = conn.execute(
        select(audit_events.c.action, audit_events.c.target_name, audit_events.c.changes)
        .where(audit_events.c.pk > since[0])
        .order_by(audit_events.c.pk)
    ).all()
    queued = conn.execute(
        select(jobs.c.kind, jobs.c.ordering_key, jobs.c.payload)
        .where(jobs.c.pk > since[1])
        .order_by(jobs.c.pk)
    ).all()
    return [list(event) for event in events], [list(job) for job in queued]
