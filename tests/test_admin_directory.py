"""The User Directory as an admin lives in it: exports, names, sentences, status, wording.

Through the Flask test client (the browser tests in ``test_admin_directory_browser.py`` show
the same in Chromium); plain functions (sentences, CSV cells, user-agents) tested plainly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from scimbridge.app import create_app
from scimbridge.service.directory import admin_reads
from scimbridge.service.directory.admin_reads import AuditEvent
from scimbridge.service.directory.lifecycle import ProfileChanges
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade
from scimbridge.web.admin.clients import client_label
from scimbridge.web.admin.events import describe
from scimbridge.web.admin.events import through
from scimbridge.web.admin.exports import cell
from scimbridge.web.admin.users import Invitee
from scimbridge.web.admin.users import invitees

from .admin_support import SETUP
from .admin_support import Directory
from .admin_support import PageClient
from .conftest import make_settings
from .lifecycle_support import BROWSER
from .lifecycle_support import ROLES_FILE
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import csrf_token
from .lifecycle_support import latest_email
from .lifecycle_support import use_fast_password_hashing


@pytest.fixture
def directory(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Directory]:
    use_fast_password_hashing(monkeypatch)
    settings: Settings = make_settings(sqlite_url, roles={"file": ROLES_FILE})
    database = Database(settings.database_url)
    upgrade(database)
    yield Directory(create_app(settings, database), database)
    database.dispose()


@pytest.fixture
def admin_id(directory: Directory) -> str:
    """The id of the administrator ``admin`` is logged in as."""
    return directory.admin()


@pytest.fixture
def admin(directory: Directory, admin_id: str) -> PageClient:
    """A browser logged in as an administrator."""
    browser = PageClient(directory.app)
    browser.login("ada.admin@example.com")
    return browser


def _csv(body: bytes) -> list[dict[str, str]]:
    text = body.decode("utf-8")
    assert text.startswith("\ufeff"), "spreadsheets need the byte-order mark to read UTF-8"
    return list(csv.DictReader(io.StringIO(text[1:])))


# -- CSV exports -----------------------------------------------------------------------------


def test_users_export_is_the_filtered_table_as_csv(directory: Directory, admin: PageClient) -> None:
    """Search, status and role filters apply; a name that looks like a formula stays text."""
    plain = directory.active_user("plain@example.com", given_name="Pat", family_name="Plain")
    sneaky = directory.active_user("sneaky@example.com", given_name="=HYPERLINK(1)")
    directory.service.suspend(sneaky, SETUP)
    directory.service.invite("waiting@example.com", "manager", SETUP)

    response = admin.get("/admin/users.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    assert response.headers["Content-Disposition"].startswith('attachment; filename="users-')
    everyone = _csv(response.data)
    assert {row["email"] for row in everyone} == {
        "ada.admin@example.com",
        "plain@example.com",
        "sneaky@example.com",
        "waiting@example.com",
    }
    pat = next(row for row in everyone if row["id"] == plain)
    assert (pat["display name"], pat["role"], pat["status"]) == ("Pat Plain", "member", "Active")

    suspended = _csv(admin.get("/admin/users.csv?status=suspended").data)
    assert [row["email"] for row in suspended] == ["sneaky@example.com"]
    assert suspended[0]["given name"] == "'=HYPERLINK(1)"
    managers = _csv(admin.get("/admin/users.csv?role=manager").data)
    assert [row["email"] for row in managers] == ["waiting@example.com"]
    searched = _csv(admin.get("/admin/users.csv?q=PLAIN").data)
    assert [row["email"] for row in searched] == ["plain@example.com"]


def test_users_export_walks_every_chunk(
    directory: Directory, admin: PageClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More users than one chunk: each is exported once, oldest first."""
    monkeypatch.setattr(admin_reads, "EXPORT_CHUNK", 2)
    made = [directory.service.invite(f"u{n}@example.com", "member", SETUP) for n in range(5)]
    rows = _csv(admin.get("/admin/users.csv?status=invited").data)
    assert [row["id"] for row in rows] == made


def test_audit_export_applies_the_log_filters(directory: Directory, admin: PageClient) -> None:
    """The action and target filters of the log choose the exported events, newest first."""
    first = directory.active_user("first@example.com")
    second = directory.active_user("second@example.com")
    directory.service.suspend(first, SETUP)
    directory.service.suspend(second, SETUP)
    rows = _csv(admin.get("/admin/audit.csv?action=user.suspended").data)
    assert [row["target id"] for row in rows] == [second, first]
    assert rows[0]["event"] == "Suspended by command line test set-up"
    assert "status: active → suspended" in rows[0]["changes"]
    only_first = _csv(admin.get("/admin/audit.csv?target=first@example.com").data)
    assert {row["target id"] for row in only_first} == {first}
    assert [row["action"] for row in only_first][-1] == "user.invited"


def test_exports_need_an_admin(directory: Directory) -> None:
    """A visitor who is not logged in is sent to the login page, not given the list."""
    client = PageClient(directory.app)
    for path in ("/admin/users.csv", "/admin/audit.csv"):
        response = client.get(path)
        assert response.status_code == 303 and "/login" in response.headers["Location"]


def test_csv_cells_that_a_spreadsheet_would_run_become_text() -> None:
    assert [cell(v) for v in ("=1+2", "+1", "-1", "@SUM(A1)", "\tx", "ok", None)] == [
        "'=1+2",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\tx",
        "ok",
        "",
    ]
    assert cell(datetime(2026, 12, 13, 9, 5, tzinfo=UTC)) == "2026-12-13 09:05:00"


# -- the audit log and the history ----------------------------------------------------------


def test_filtering_by_a_users_address_finds_events_under_their_previous_one(
    directory: Directory, admin: PageClient
) -> None:
    """The filter matches the user's id, whatever address the event was recorded under."""
    user_id = directory.active_user("old.name@example.com")
    directory.service.update_profile(user_id, ProfileChanges(email="new.name@example.com"), SETUP)
    directory.service.suspend(user_id, SETUP)

    by_new = admin.get("/admin/audit?target=new.name@example.com").text
    by_old = admin.get("/admin/audit?target=old.name@example.com").text
    by_id = admin.get(f"/admin/audit?target={user_id}").text
    for page in (by_new, by_old, by_id):
        for action in ("user.invited", "user.invitation_accepted", "user.updated"):
            assert f">{action}</code>" in page, action
        assert ">user.suspended</code>" in page
    # The case of the address does not matter either.
    assert ">user.invited</code>" in admin.get("/admin/audit?target=NEW.Name@example.com").text
    # The profile's link to the log is that same filter.
    profile = admin.get(f"/admin/users/{user_id}").text
    assert f'href="/admin/audit?target={user_id}"' in profile
    assert "Every event about" in by_id and "new.name@example.com</a>" in by_id


def test_the_audit_log_reads_as_sentences_with_changes(
    directory: Directory, admin: PageClient, admin_id: str
) -> None:
    """Who did what in words; changed fields before → after; actors by their display name."""
    user_id = directory.active_user("cy@example.com")
    admin.post(
        f"/admin/users/{user_id}/profile",
        {"email": "cy@example.com", "given_name": "Cy", "title": "Engineer"},
    )
    admin.post(f"/admin/users/{user_id}/password-reset")
    page = admin.get("/admin/audit").text
    assert "Password reset requested by ada.admin@example.com" in page
    assert "Profile changed by ada.admin@example.com" in page
    assert "title: — → Engineer" in page
    assert "given name: — → Cy" in page
    # Once the admin has a name, it names them (in events recorded before, too).
    directory.service.update_profile(
        admin_id, ProfileChanges(given_name="Ada", family_name="Admin"), SETUP
    )
    assert "Password reset requested by Ada Admin" in admin.get("/admin/audit").text


def _event(action: str, changes: dict[str, object] | None = None, **who: str) -> AuditEvent:
    return AuditEvent(
        pk=1,
        at=datetime(2026, 12, 1, tzinfo=UTC),
        actor_type=who.get("actor_type", "admin"),
        actor_id=who.get("actor_id", "a1"),
        actor_name=who.get("actor_name", "ada@example.com"),
        action=action,
        target_type="User",
        target_id=who.get("target_id", "u1"),
        target_name="nina@example.com",
        changes=changes,
        request_id=None,
        client_address=None,
    )


def test_event_sentences_name_the_action_and_the_actor() -> None:
    assert describe(_event("user.password_reset_requested")).sentence == (
        "Password reset requested by ada@example.com"
    )
    assert describe(_event("user.suspended"), {"a1": "Ada Admin"}).sentence == (
        "Suspended by Ada Admin"
    )
    # A user's own login is not "by" themselves; a token's change names the token.
    assert describe(_event("user.login", actor_id="u1")).sentence == "Logged in"
    scim = _event("user.updated", actor_type="scim", actor_id="t1", actor_name="okta")
    assert describe(scim).sentence == "Profile changed by identity provider okta"
    assert describe(_event("user.something_new")).sentence.startswith("User something new by")


def test_event_changes_show_each_field_before_and_after() -> None:
    changes = {
        "name": {"before": {"givenName": "Ada"}, "after": {"givenName": "Ada", "familyName": "L"}},
        "emails": {
            "before": [{"value": "a@example.com", "primary": True}],
            "after": [{"value": "b@example.com", "primary": True}],
        },
        "role": {"before": "member", "after": "admin"},
        "until": "2026-12-14T00:00:00+00:00",
        "sessions_ended": 2,
        "tombstone": {"id": "u1"},
    }
    assert describe(_event("user.updated", changes)).changes == [
        "family name: — → L",
        "email: a@example.com → b@example.com",
        "role: member → admin",
        "until: through 13 Dec 2026",
        "sessions ended: 2",
    ]


def test_a_temporary_role_shows_the_day_picked() -> None:
    assert through(datetime(2026, 12, 14, tzinfo=UTC)) == "through 13 Dec 2026"
    assert through(datetime(2026, 12, 14, 15, 30, tzinfo=UTC)) == "until 14 Dec 2026 15:30 UTC"


# -- names on invitations -------------------------------------------------------------------


def test_the_invite_box_reads_names_and_addresses() -> None:
    text = (
        "Ada Lovelace <ada@example.com>, bob@example.com\n"
        "Grace <grace@example.com>; ADA@example.com"
    )
    assert invitees(text) == [
        Invitee("ada@example.com", "Ada", "Lovelace"),
        Invitee("bob@example.com"),
        Invitee("grace@example.com", "Grace"),
    ]
    assert invitees("one@example.com two@example.com") == [
        Invitee("one@example.com"),
        Invitee("two@example.com"),
    ]
    # A bare address before a name is not read as part of that name.
    assert invitees("x@example.com Mary Ann Smith <m@example.com>") == [
        Invitee("x@example.com"),
        Invitee("m@example.com", "Mary Ann", "Smith"),
    ]


def test_invited_users_have_the_name_typed_with_their_address(
    directory: Directory, admin: PageClient
) -> None:
    """The table shows the name; an invitee without one shows as having none yet."""
    response = admin.post(
        "/admin/users/invite",
        {"emails": "Ada Lovelace <ada@example.com>\nnoname@example.com", "role": "member"},
    )
    assert response.status_code == 303
    table = admin.get("/admin/?status=invited").text
    assert ">Ada Lovelace</a>" in table
    assert "No name yet" in table
    audit = admin.get("/admin/audit?action=user.invited").text
    assert "name: Ada Lovelace" in audit


def test_the_invitee_gives_or_corrects_their_name_when_accepting(directory: Directory) -> None:
    """The invitation page shows the name typed by the admin; what the invitee sends is kept."""
    user_id = directory.service.invite(
        "mary@example.com", "member", SETUP, given_name="Mary Ann", family_name="Smith"
    )
    token = latest_email(directory.database, "invitation", "mary@example.com").token
    invitee = PageClient(directory.app)
    page = invitee.get(f"/invitation/{token}").text
    assert 'id="given_name"' in page and 'value="Mary Ann"' in page and 'value="Smith"' in page
    response = invitee.client.post(
        f"/invitation/{token}",
        data={
            "csrf_token": csrf_token(page),
            "given_name": "Mary",
            "family_name": "Ann Smith",
            "new_password": STRONG_PASSWORD,
            "confirmation": STRONG_PASSWORD,
        },
    )
    assert response.status_code == 303, response.text
    account = directory.service.account(user_id)
    assert (account.status, account.display_name) == ("active", "Mary Ann Smith")
    assert account.doc["name"] == {"givenName": "Mary", "familyName": "Ann Smith"}


# -- status, wording, sessions --------------------------------------------------------------


def test_the_status_control_suspends_and_reactivates(
    directory: Directory, admin: PageClient, admin_id: str
) -> None:
    """Status is offered on the profile besides Suspend; it acts as suspend and reactivate."""
    user_id = directory.active_user("sam@example.com")
    profile = admin.get(f"/admin/users/{user_id}").text
    assert 'name="status"' in profile and f"/admin/users/{user_id}/status" in profile
    suspended = admin.post(f"/admin/users/{user_id}/status", {"status": "suspended"})
    assert suspended.headers["Location"].endswith("notice=suspended")
    assert directory.status(user_id) == "suspended"
    same = admin.post(f"/admin/users/{user_id}/status", {"status": "suspended"})
    assert same.headers["Location"].endswith("notice=status-unchanged")
    admin.post(f"/admin/users/{user_id}/status", {"status": "active"})
    assert directory.status(user_id) == "active"
    bogus = admin.post(f"/admin/users/{user_id}/status", {"status": "deleted"})
    assert bogus.status_code == 400 and "Choose Active or Suspended" in bogus.text
    invited = directory.service.invite("ivan@example.com", "member", SETUP)
    profile = admin.get(f"/admin/users/{invited}").text
    offered = profile.split('name="status"')[1].split("</select>")[0]
    assert 'value="invited" selected' in offered and 'value="suspended"' in offered
    assert 'value="active"' not in offered, "only the invitee can make an invitation active"
    own = admin.post(f"/admin/users/{admin_id}/status", {"status": "suspended"})
    assert own.status_code == 400 and directory.status(admin_id) == "active"


def test_wording_heading_roles_and_invalid_email(directory: Directory, admin: PageClient) -> None:
    """The heading names the User Directory; role choices are whole; errors quote plainly."""
    table = admin.get("/admin/").text
    assert "<h1>User Directory</h1>" in table
    invite = admin.get("/admin/users/invite").text
    assert '<option value="member" selected>member</option>' in invite
    assert "Uses the platform; manages only their own account." in invite
    refused = admin.post("/admin/users/invite", {"emails": "not-an-email", "role": "member"})
    assert "“not-an-email” is not a valid email address" in refused.text
    assert "&#39;not-an-email&#39;" not in refused.text


def test_sessions_name_the_browser_and_keep_the_full_string_on_hover(
    directory: Directory, admin: PageClient
) -> None:
    ua = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36"
    )
    user_id = directory.active_user("lin@example.com")
    directory.service.login("lin@example.com", STRONG_PASSWORD, replace(BROWSER, user_agent=ua))
    profile = admin.get(f"/admin/users/{user_id}").text
    assert f'<span class="client" title="{ua}">Chrome 120 on Linux</span>' in profile


def test_client_labels() -> None:
    assert client_label(None) == "Unknown client"
    assert client_label("python-requests/2.32.3") == "Python Requests 2"
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    )
    assert client_label(iphone) == "Mobile Safari 17 on iOS"
    assert client_label("x" * 5000) == "Unknown browser"


def test_a_past_role_end_is_shown_in_the_table(directory: Directory, admin: PageClient) -> None:
    """The users table shows a temporary role as the day picked, like the profile."""
    user_id = directory.active_user("tmp@example.com")
    day = (datetime.now(UTC) + timedelta(days=5)).date()
    admin.post(f"/admin/users/{user_id}/role", {"role": "manager", "until": day.isoformat()})
    table = admin.get("/admin/?q=tmp").text
    assert f"through {day.day} {day:%b %Y}" in table
