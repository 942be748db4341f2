"""The worker's periodic upkeep: timed role grants, stale sessions, delivered jobs."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from scimbridge.domain.lifecycle import Actor
from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.service.directory.roles import load_roles
from scimbridge.service.operations.maintenance import run_maintenance
from scimbridge.settings import RolesSettings
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.tables import audit_events
from scimbridge.store.tables import jobs
from scimbridge.store.tables import role_grants
from scimbridge.store.tables import sessions

from .conftest import make_settings
from .lifecycle_support import BROWSER
from .lifecycle_support import ROLES_FILE
from .lifecycle_support import use_fast_password_hashing

ADMIN = Actor("admin", "admin-1", "admin@example.com")
PASSWORD = "a long enough temporary password"


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, roles=RolesSettings(file=ROLES_FILE))


@pytest.fixture
def directory(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> UserDirectory:
    use_fast_password_hashing(monkeypatch)
    return UserDirectory(database, settings, load_roles(settings.roles.file))


def test_upkeep_reverts_an_expired_role_grant(directory: UserDirectory) -> None:
    """A temporary role whose time is up goes back to the previous one, audited as system."""
    user_id = directory.create_user(
        "grant@example.com", "Grant", "Ee", "member", PASSWORD, ADMIN
    ).user_id
    until = datetime.now(UTC) + timedelta(hours=1)
    directory.change_role(user_id, "manager", ADMIN, until=until)
    assert directory.role_of(user_id).name == "manager"

    report = run_maintenance(directory, now=datetime.now(UTC))
    assert report.role_grants_reverted == 0
    with directory.database.write() as conn:
        conn.execute(update(role_grants).values(expires=datetime(2000, 1, 1)))
    report = run_maintenance(directory)

    assert report.role_grants_reverted == 1
    assert directory.role_of(user_id).name == "member"
    with directory.database.read() as conn:
        actors = conn.execute(
            select(audit_events.c.actor_type).where(
                audit_events.c.action == "user.role_grant_expired"
            )
        ).scalars()
        assert list(actors) == ["system"]


def test_upkeep_ends_sessions_idle_past_the_limit(directory: UserDirectory) -> None:
    """A session unused for longer than the idle limit is removed; a fresh one stays."""
    directory.create_user("idle@example.com", None, None, "member", PASSWORD, ADMIN)
    directory.login("idle@example.com", PASSWORD, BROWSER)
    fresh = directory.login("idle@example.com", PASSWORD, BROWSER)
    with directory.database.write() as conn:
        conn.execute(
            update(sessions)
            .where(sessions.c.id != fresh.session_id)
            .values(last_seen=datetime(2000, 1, 1))
        )

    report = run_maintenance(directory)

    assert report.sessions_ended == 1
    with directory.database.read() as conn:
        remaining = conn.execute(select(sessions.c.id)).scalars().all()
    assert remaining == [fresh.session_id]


def test_upkeep_drops_jobs_delivered_a_week_ago(directory: UserDirectory) -> None:
    """Delivered jobs older than the retention go; queued ones are never touched."""
    directory.invite("old@example.com", "member", ADMIN)
    directory.invite("new@example.com", "member", ADMIN)
    with directory.database.write() as conn:
        first = conn.execute(select(func.min(jobs.c.pk))).scalar_one()
        conn.execute(
            update(jobs)
            .where(jobs.c.pk == first)
            .values(status="done", updated=datetime(2000, 1, 1))
        )

    report = run_maintenance(directory)

    assert report.jobs_purged == 1
    with directory.database.read() as conn:
        statuses = conn.execute(select(jobs.c.status)).scalars().all()
    assert statuses == ["queued"]
