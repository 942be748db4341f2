"""The admin UI's queries on SQLite and PostgreSQL: sorted users, group members, deviations, audit.

Each test runs once per database.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from scimbridge.domain.lifecycle import Actor
from scimbridge.domain.lifecycle import UserStatus
from scimbridge.service.clients.deviations import record_client_deviations
from scimbridge.service.directory.admin_reads import AdminReader
from scimbridge.service.directory.admin_reads import AuditFilters
from scimbridge.service.directory.admin_reads import UserSort
from scimbridge.service.directory.lifecycle import ProfileChanges
from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.service.directory.reads import Page
from scimbridge.service.directory.reads import UserView
from scimbridge.service.directory.roles import load_roles
from scimbridge.service.outbox.status import OutboxStatus
from scimbridge.store import jobs as job_store
from scimbridge.store.database import Database

from .conftest import make_settings
from .lifecycle_support import BROWSER
from .lifecycle_support import ROLES_FILE
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import latest_email
from .lifecycle_support import use_fast_password_hashing

ADMIN = Actor("admin", "admin-1", "alice.admin")


@pytest.fixture
def database(db: Database) -> Database:
    """The queries run on both databases: the shared store fixture, under this file's name."""
    return db


@pytest.fixture
def directory(
    database: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> UserDirectory:
    use_fast_password_hashing(monkeypatch)
    settings = make_settings(database_url, roles={"file": ROLES_FILE})
    return UserDirectory(database, settings, load_roles(ROLES_FILE))


@pytest.fixture
def reader(database: Database) -> AdminReader:
    return AdminReader(database, load_roles(ROLES_FILE))


def _user(directory: UserDirectory, email: str, given: str, role: str = "member") -> str:
    user_id = directory.invite(email, role, ADMIN)
    directory.update_profile(user_id, ProfileChanges(given_name=given, family_name="Test"), ADMIN)
    return user_id


def _emails(page: Page[UserView]) -> list[str | None]:
    return [view.email for view in page.items]


def test_the_users_table_sorts_with_missing_values_last_both_ways(
    directory: UserDirectory, reader: AdminReader
) -> None:
    """Name, email, status and last login sort in SQL; no name / no login come last."""
    _user(directory, "b@example.com", "Bob")
    _user(directory, "a@example.com", "Ann", "manager")
    directory.invite("nameless@example.com", "member", ADMIN)
    carl = _user(directory, "c@example.com", "Carl")
    token = latest_email(directory.database, "invitation", "c@example.com").token
    directory.accept_invitation(token, STRONG_PASSWORD, BROWSER)
    directory.login("c@example.com", STRONG_PASSWORD, BROWSER)
    assert _emails(reader.user_table(sort=UserSort.NAME)) == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "nameless@example.com",
    ]
    assert _emails(reader.user_table(sort=UserSort.NAME, descending=True))[-1] == (
        "nameless@example.com"
    )
    assert _emails(reader.user_table(sort=UserSort.EMAIL, descending=True))[0] == (
        "nameless@example.com"
    )
    by_login = reader.user_table(sort=UserSort.LAST_LOGIN, descending=True)
    assert by_login.items[0].id == carl
    assert _emails(reader.user_table(sort=UserSort.STATUS))[0] == "c@example.com"
    page = reader.user_table(sort=UserSort.NAME, offset=1, limit=2)
    assert _emails(page) == ["b@example.com", "c@example.com"] and page.total == 4
    assert page.has_more
    managers = reader.user_table(role="manager")
    assert _emails(managers) == ["a@example.com"] and managers.items[0].role == "manager"
    invited = reader.user_table(status=UserStatus.INVITED, text="EXAMPLE.COM")
    assert invited.total == 3
    assert _emails(reader.user_table(text="ann")) == ["a@example.com"]


def test_group_members_are_paged_groups_first_then_users_by_name(
    directory: UserDirectory, reader: AdminReader
) -> None:
    """Role groups hold their users; a group page reads its members in pages."""
    for index in range(5):
        _user(directory, f"m{index}@example.com", f"Member{4 - index}", "manager")
    page = reader.group_page()
    (managers,) = [v for v in page.items if v.group.display_name == "scimbridge-managers"]
    assert managers.group.member_count == 5 and managers.grants_roles == ["manager"]
    assert not managers.idp_managed
    group = reader.group(managers.group.id)
    first = reader.group_members(group, offset=0, limit=3)
    assert [m.name for m in first.items] == ["Member0 Test", "Member1 Test", "Member2 Test"]
    assert first.has_more and first.total == 5
    rest = reader.group_members(group, offset=3, limit=3)
    assert [m.email for m in rest.items] == ["m1@example.com", "m0@example.com"]
    assert not rest.has_more


def test_deviations_are_counted_per_token_and_kind(database: Database, reader: AdminReader) -> None:
    """One upsert per kind met; counts grow, first seen stays, last seen moves."""
    record_client_deviations(database, "entra", ["op-case", "string-boolean"], [])
    record_client_deviations(database, "entra", ["op-case"], [])
    record_client_deviations(database, "strict", [], ["op-case"])
    record_client_deviations(database, "quiet", [], [])
    counts = {(c.token_name, c.deviation): c for c in reader.recent_deviations()}
    assert set(counts) == {("entra", "op-case"), ("entra", "string-boolean"), ("strict", "op-case")}
    assert (counts["entra", "op-case"].tolerated, counts["entra", "op-case"].refused) == (2, 0)
    assert counts["entra", "op-case"].last_seen >= counts["entra", "op-case"].first_seen
    assert (counts["strict", "op-case"].tolerated, counts["strict", "op-case"].refused) == (0, 1)


def test_the_audit_log_finds_a_deleted_user_by_name_and_filters_by_time(
    directory: UserDirectory, reader: AdminReader
) -> None:
    """The tombstone keeps the address; the time window is half-open."""
    user_id = _user(directory, "gone@example.com", "Gone")
    directory.delete(user_id, ADMIN)
    by_name = reader.audit_log(AuditFilters(target="gone@example.com"))
    assert by_name.items[0].action == "user.deleted"
    assert {e.action for e in by_name.items} >= {"user.invited", "user.deleted"}
    assert reader.audit_log(AuditFilters(target=user_id)).total == by_name.total
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert reader.audit_log(AuditFilters(since=later)).total == 0
    assert reader.audit_log(AuditFilters(until=later, actor="alice.admin")).total >= 3


def test_outbox_status_counts_waiting_and_parked_jobs(database: Database) -> None:
    """Waiting jobs give the lag; retrying parked jobs is audited."""
    now = datetime.now(UTC)
    with database.write() as conn:
        job_store.enqueue(conn, "email", "user:a", {}, now - timedelta(minutes=3))
        failing = job_store.enqueue(conn, "ldap", "user:b", {}, now)
        (job,) = job_store.claim_jobs(conn, ["ldap"], now, now + timedelta(minutes=1), 5)
        job_store.park(conn, job, now, "directory unreachable")
    status = OutboxStatus(database)
    queues = {queue.kind: queue for queue in status.queues(now)}
    assert queues["email"].pending == 1 and queues["email"].lag is not None
    assert queues["email"].lag >= timedelta(minutes=3)
    assert queues["ldap"].failed == 1 and queues["ldap"].lag is None
    assert [job.pk for job in status.parked()] == [failing]
    assert status.retry([failing], ADMIN) == [failing]
    assert status.parked() == [] and status.retry(None, ADMIN) == []
