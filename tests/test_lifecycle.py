"""The lifecycle rules, through UserDirectory: invitations, passwords, sessions, roles, audit.

Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

import scimbridge.service.directory.lifecycle as lifecycle_module
from scimbridge.app import create_app
from scimbridge.domain.lifecycle import Actor
from scimbridge.domain.lifecycle import EmailTaken
from scimbridge.domain.lifecycle import InvalidEmail
from scimbridge.domain.lifecycle import InvalidTransition
from scimbridge.domain.lifecycle import LinkInvalid
from scimbridge.domain.lifecycle import LinkPurpose
from scimbridge.domain.lifecycle import LoginRefused
from scimbridge.domain.lifecycle import PasswordRejected
from scimbridge.domain.lifecycle import RateLimited
from scimbridge.domain.lifecycle import RequestInfo
from scimbridge.domain.lifecycle import UnknownRole
from scimbridge.domain.lifecycle import UserNotFound
from scimbridge.domain.lifecycle import UserStatus
from scimbridge.service.directory.lifecycle import ProfileChanges
from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.service.directory.roles import load_roles
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .conftest import ScimClient
from .conftest import group_payload
from .conftest import make_settings
from .conftest import patch_payload
from .conftest import user_payload
from .lifecycle_support import BROWSER
from .lifecycle_support import OTHER_STRONG_PASSWORD
from .lifecycle_support import ROLES_FILE
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import THIRD_STRONG_PASSWORD
from .lifecycle_support import audit_actions
from .lifecycle_support import audit_rows
from .lifecycle_support import audit_trail_text
from .lifecycle_support import expire_links
from .lifecycle_support import latest_email
from .lifecycle_support import password_hashes
from .lifecycle_support import queued_emails
from .lifecycle_support import stored_token_digests
from .lifecycle_support import use_fast_password_hashing
from .outbox_support import Clock

ADMIN = Actor("admin", "admin-1", "alice.admin")


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


@pytest.fixture
def lifecycle_settings(database_url: str) -> Settings:
    return make_settings(database_url, roles={"file": ROLES_FILE})


@pytest.fixture
def db(lifecycle_settings: Settings) -> Iterator[Database]:
    database = Database(lifecycle_settings.database_url)
    upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def directory(lifecycle_settings: Settings, db: Database) -> UserDirectory:
    return UserDirectory(db, lifecycle_settings, load_roles(ROLES_FILE))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Freeze the lifecycle's clock at the real time; tests move it forward."""
    frozen = Clock(datetime.now(UTC))
    monkeypatch.setattr(lifecycle_module, "_now", frozen)
    return frozen


def _address(n: int) -> RequestInfo:
    return RequestInfo(request_id=f"r{n}", client_address=f"198.51.100.{n}", user_agent="pytest")


def _active_user(directory: UserDirectory, db: Database, email: str, role: str = "member") -> str:
    """Invite a user and accept the invitation with STRONG_PASSWORD."""
    user_id = directory.invite(email, role, ADMIN)
    directory.accept_invitation(
        latest_email(db, "invitation", email).token, STRONG_PASSWORD, BROWSER
    )
    return user_id


# -- invitations -----------------------------------------------------------------------------


def test_invitation_creates_an_invited_user_and_queues_the_link(
    directory: UserDirectory, db: Database
) -> None:
    """An invitation creates an ``invited`` user without password and emails a single-use link."""
    user_id = directory.invite("ada@example.com", "manager", ADMIN)
    account = directory.account(user_id)
    assert account.status == UserStatus.INVITED
    assert account.password_hash is None
    assert directory.role_of(user_id).name == "manager"
    email = latest_email(db, "invitation", "ada@example.com")
    assert email.context["link"].startswith("http://scim.test/invitation/")
    assert directory.check_link(email.token, LinkPurpose.INVITATION).id == user_id
    assert "user.invited" in audit_actions(db, user_id)


def test_invited_user_cannot_log_in_before_accepting(directory: UserDirectory) -> None:
    """A pending invitation gives no password to log in with."""
    directory.invite("ada@example.com", "member", ADMIN)
    with pytest.raises(LoginRefused):
        directory.login("ada@example.com", "", BROWSER)


def test_invitation_refuses_a_weak_password_and_keeps_the_link(
    directory: UserDirectory, db: Database
) -> None:
    """Policy refusals list every reason and leave the link usable."""
    directory.invite("lovelace@example.com", "member", ADMIN)
    token = latest_email(db, "invitation", "lovelace@example.com").token
    with pytest.raises(PasswordRejected) as refused:
        directory.accept_invitation(token, "short", BROWSER)
    assert any("12 characters" in reason for reason in refused.value.reasons)
    for weak in ("password1234", "Lovelace-2024-rocks", " padded password "):
        with pytest.raises(PasswordRejected):
            directory.accept_invitation(token, weak, BROWSER)
    directory.check_link(token, LinkPurpose.INVITATION)


def test_accepted_invitation_activates_the_user_who_can_log_in(
    directory: UserDirectory, db: Database
) -> None:
    """Accepting sets the password and makes the user ``active``; the link then dies."""
    user_id = directory.invite("ada@example.com", "member", ADMIN)
    token = latest_email(db, "invitation", "ada@example.com").token
    assert directory.accept_invitation(token, STRONG_PASSWORD, BROWSER) == user_id
    assert directory.account(user_id).status == UserStatus.ACTIVE
    result = directory.login("ADA@example.com", STRONG_PASSWORD, BROWSER)
    assert result.user_id == user_id
    assert result.password_change_required is False
    with pytest.raises(LinkInvalid):
        directory.accept_invitation(token, OTHER_STRONG_PASSWORD, BROWSER)
    assert audit_actions(db, user_id)[-2:] == ["user.invitation_accepted", "user.login"]


def test_resending_an_invitation_voids_the_previous_link(
    directory: UserDirectory, db: Database
) -> None:
    """Only the newest invitation link works."""
    user_id = directory.invite("ada@example.com", "member", ADMIN)
    first = latest_email(db, "invitation", "ada@example.com").token
    directory.resend_invitation(user_id, ADMIN)
    second = latest_email(db, "invitation", "ada@example.com").token
    assert first != second
    with pytest.raises(LinkInvalid):
        directory.accept_invitation(first, STRONG_PASSWORD, BROWSER)
    directory.accept_invitation(second, STRONG_PASSWORD, BROWSER)
    assert "user.invitation_resent" in audit_actions(db, user_id)


def test_cancelling_an_invitation_removes_the_pending_user(
    directory: UserDirectory, db: Database
) -> None:
    """Cancelling deletes the invited user and their link; the audit trail keeps the event."""
    user_id = directory.invite("ada@example.com", "member", ADMIN)
    token = latest_email(db, "invitation", "ada@example.com").token
    directory.cancel_invitation(user_id, ADMIN)
    with pytest.raises(UserNotFound):
        directory.account(user_id)
    with pytest.raises(LinkInvalid):
        directory.check_link(token, LinkPurpose.INVITATION)
    (event,) = audit_rows(db, "user.invitation_cancelled")
    assert (event.target_id, event.actor_name) == (user_id, "alice.admin")
    # The address is free again.
    directory.invite("ada@example.com", "member", ADMIN)


def test_resend_and_cancel_refuse_an_accepted_invitation(
    directory: UserDirectory, db: Database
) -> None:
    """Once active, a user has no invitation to resend or cancel."""
    user_id = _active_user(directory, db, "ada@example.com")
    with pytest.raises(InvalidTransition):
        directory.resend_invitation(user_id, ADMIN)
    with pytest.raises(InvalidTransition):
        directory.cancel_invitation(user_id, ADMIN)
    assert directory.account(user_id).status == UserStatus.ACTIVE


def test_expired_invitation_link_is_refused(directory: UserDirectory, db: Database) -> None:
    """A link past its time is dead, even unused."""
    user_id = directory.invite("ada@example.com", "member", ADMIN)
    expire_links(db, user_id)
    token = latest_email(db, "invitation", "ada@example.com").token
    with pytest.raises(LinkInvalid):
        directory.check_link(token, LinkPurpose.INVITATION)
    with pytest.raises(LinkInvalid):
        directory.accept_invitation(token, STRONG_PASSWORD, BROWSER)


def test_links_work_only_for_their_own_purpose(directory: UserDirectory, db: Database) -> None:
    """An invitation token is no reset token, and an unknown token is no token."""
    directory.invite("ada@example.com", "member", ADMIN)
    token = latest_email(db, "invitation", "ada@example.com").token
    with pytest.raises(LinkInvalid):
        directory.reset_password(token, STRONG_PASSWORD, BROWSER)
    with pytest.raises(LinkInvalid):
        directory.check_link("not-a-token", LinkPurpose.INVITATION)


def test_inviting_a_taken_address_or_an_unknown_role_is_refused(
    directory: UserDirectory, db: Database
) -> None:
    """Addresses are unique (case-insensitively); roles come from the roles file."""
    _active_user(directory, db, "ada@example.com")
    with pytest.raises(EmailTaken):
        directory.invite("Ada@Example.com", "member", ADMIN)
    with pytest.raises(UnknownRole):
        directory.invite("bob@example.com", "superuser", ADMIN)


# -- direct creation and password changes ------------------------------------------------------


def test_directly_created_user_must_change_the_temporary_password(
    directory: UserDirectory, db: Database
) -> None:
    """A created user is active with a temporary password to replace at first login."""
    created = directory.create_user("bob@example.com", "Bob", "Stone", "member", None, ADMIN)
    assert created.generated_password
    first = directory.login("bob@example.com", created.generated_password, BROWSER)
    assert first.password_change_required is True
    directory.change_password(
        created.user_id,
        created.generated_password,
        STRONG_PASSWORD,
        BROWSER,
        keep_session=first.session_id,
    )
    assert (
        directory.login("bob@example.com", STRONG_PASSWORD, BROWSER).password_change_required
        is False
    )
    assert directory.session(first.session_token) is not None
    assert latest_email(db, "password_changed", "bob@example.com")


def test_an_admin_chosen_temporary_password_must_meet_the_policy(directory: UserDirectory) -> None:
    """The policy applies to temporary passwords too."""
    with pytest.raises(PasswordRejected):
        directory.create_user("bob@example.com", None, None, "member", "short", ADMIN)


def test_changing_a_password_checks_the_current_one_and_ends_other_sessions(
    directory: UserDirectory, db: Database
) -> None:
    """The current password must be right, the new one different; other sessions end."""
    user_id = _active_user(directory, db, "ada@example.com")
    here = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    elsewhere = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    with pytest.raises(LoginRefused):
        directory.change_password(user_id, "wrong password!", OTHER_STRONG_PASSWORD, BROWSER)
    with pytest.raises(PasswordRejected):
        directory.change_password(user_id, STRONG_PASSWORD, STRONG_PASSWORD, BROWSER)
    directory.change_password(
        user_id, STRONG_PASSWORD, OTHER_STRONG_PASSWORD, BROWSER, keep_session=here.session_id
    )
    assert directory.session(here.session_token) is not None
    assert directory.session(elsewhere.session_token) is None
    with pytest.raises(LoginRefused):
        directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)


# -- suspension, reactivation, deletion --------------------------------------------------------


def test_suspended_user_cannot_log_in_and_loses_sessions_and_links(
    directory: UserDirectory, db: Database
) -> None:
    """Suspension blocks login at once, ends sessions and voids pending links."""
    user_id = _active_user(directory, db, "ada@example.com")
    session = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    directory.trigger_password_reset(user_id, ADMIN)
    reset = latest_email(db, "password_reset", "ada@example.com").token
    directory.suspend(user_id, ADMIN)
    assert directory.account(user_id).status == UserStatus.SUSPENDED
    assert directory.session(session.session_token) is None
    # The same words as a wrong password: the answer must not confirm the password.
    with pytest.raises(LoginRefused, match="the email address or the password is not right"):
        directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    with pytest.raises(LinkInvalid):
        directory.reset_password(reset, OTHER_STRONG_PASSWORD, BROWSER)
    with pytest.raises(InvalidTransition):
        directory.trigger_password_reset(user_id, ADMIN)
    assert "user.login_refused" in audit_actions(db, user_id)


def test_a_session_used_after_suspension_is_refused(directory: UserDirectory, db: Database) -> None:
    """A session cannot outlive its user's suspension, even through a stale copy."""
    user_id = _active_user(directory, db, "ada@example.com")
    session = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    assert directory.session(session.session_token) is not None
    directory.suspend(user_id, ADMIN)
    assert directory.session(session.session_token) is None


def test_reactivation_restores_login_but_not_old_sessions(
    directory: UserDirectory, db: Database
) -> None:
    """Back to ``active``: the password works again, the sessions ended at suspension stay ended."""
    user_id = _active_user(directory, db, "ada@example.com")
    old = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    directory.suspend(user_id, ADMIN)
    directory.reactivate(user_id, ADMIN)
    assert directory.account(user_id).status == UserStatus.ACTIVE
    assert directory.session(old.session_token) is None
    new = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    assert directory.session(new.session_token) is not None
    assert audit_actions(db, user_id)[-3:] == ["user.suspended", "user.reactivated", "user.login"]


def test_reactivating_a_never_accepted_invitation_returns_to_invited(
    directory: UserDirectory,
) -> None:
    """A suspended user who never set a password is invited again, not active."""
    user_id = directory.invite("ada@example.com", "member", ADMIN)
    directory.suspend(user_id, ADMIN)
    directory.reactivate(user_id, ADMIN)
    assert directory.account(user_id).status == UserStatus.INVITED


def test_deleting_a_user_removes_them_and_their_sessions_but_keeps_the_audit_trail(
    directory: UserDirectory, db: Database
) -> None:
    """Delete is for good; the events about the user stay, with a tombstone."""
    user_id = _active_user(directory, db, "ada@example.com")
    session = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    directory.delete(user_id, ADMIN)
    with pytest.raises(UserNotFound):
        directory.account(user_id)
    assert directory.session(session.session_token) is None
    with pytest.raises(LoginRefused):
        directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    actions = audit_actions(db, user_id)
    assert actions[0] == "user.invited" and actions[-1] == "user.deleted"
    (tombstone,) = audit_rows(db, "user.deleted")
    assert tombstone.changes["tombstone"] == {"id": user_id, "userName": "ada@example.com"}


# -- password resets ---------------------------------------------------------------------------


def test_admin_triggered_reset_link_sets_the_password_and_ends_every_session(
    directory: UserDirectory, db: Database
) -> None:
    """The reset link works once, and every session of the user ends with it."""
    user_id = _active_user(directory, db, "ada@example.com")
    sessions = [directory.login("ada@example.com", STRONG_PASSWORD, BROWSER) for _ in range(2)]
    directory.trigger_password_reset(user_id, ADMIN)
    email = latest_email(db, "password_reset", "ada@example.com")
    assert email.context["link"].startswith("http://scim.test/password/reset/")
    assert directory.check_link(email.token, LinkPurpose.PASSWORD_RESET).id == user_id
    assert directory.reset_password(email.token, OTHER_STRONG_PASSWORD, BROWSER) == user_id
    assert all(directory.session(s.session_token) is None for s in sessions)
    with pytest.raises(LinkInvalid):
        directory.reset_password(email.token, THIRD_STRONG_PASSWORD, BROWSER)
    with pytest.raises(LoginRefused):
        directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    directory.login("ada@example.com", OTHER_STRONG_PASSWORD, BROWSER)
    (reset,) = audit_rows(db, "user.password_reset")
    assert reset.changes == {"sessions_ended": 2}


def test_a_pending_invitation_cannot_be_reset(directory: UserDirectory) -> None:
    """An invited user gets the invitation again, not a reset that leaves them invited."""
    user_id = directory.invite("ada@example.com", "member", ADMIN)
    with pytest.raises(InvalidTransition):
        directory.trigger_password_reset(user_id, ADMIN)


def test_a_newer_reset_link_voids_the_older_one(directory: UserDirectory, db: Database) -> None:
    """Asking twice leaves one working link: the newest."""
    _active_user(directory, db, "ada@example.com")
    directory.request_password_reset("ada@example.com", BROWSER)
    first = latest_email(db, "password_reset", "ada@example.com").token
    directory.request_password_reset("ada@example.com", BROWSER)
    with pytest.raises(LinkInvalid):
        directory.reset_password(first, OTHER_STRONG_PASSWORD, BROWSER)


def test_expired_reset_link_is_refused(directory: UserDirectory, db: Database) -> None:
    """A reset link past its time is dead."""
    user_id = _active_user(directory, db, "ada@example.com")
    directory.request_password_reset("ada@example.com", BROWSER)
    expire_links(db, user_id)
    token = latest_email(db, "password_reset", "ada@example.com").token
    with pytest.raises(LinkInvalid):
        directory.reset_password(token, OTHER_STRONG_PASSWORD, BROWSER)


def test_self_service_reset_mails_only_active_users_and_never_says_so(
    directory: UserDirectory, db: Database
) -> None:
    """Unknown, invited and suspended addresses get nothing, and the call looks the same."""
    _active_user(directory, db, "ada@example.com")
    directory.invite("bob@example.com", "member", ADMIN)
    suspended = _active_user(directory, db, "eve@example.com")
    directory.suspend(suspended, ADMIN)
    for address in ("nobody@example.com", "bob@example.com", "eve@example.com", "ada@example.com"):
        assert directory.request_password_reset(address, _address(1)) is None
    assert [email.to for email in queued_emails(db, "password_reset")] == ["ada@example.com"]


# -- rate limits -------------------------------------------------------------------------------


def test_login_is_limited_per_account(directory: UserDirectory, db: Database, clock: Clock) -> None:
    """After five failures even the right password is refused until the window ends."""
    _active_user(directory, db, "ada@example.com")
    for attempt in range(5):
        with pytest.raises(LoginRefused):
            directory.login("ada@example.com", "wrong password!", _address(attempt))
    with pytest.raises(RateLimited):
        directory.login("ada@example.com", STRONG_PASSWORD, _address(9))
    clock.advance(15 * 60)
    directory.login("ada@example.com", STRONG_PASSWORD, _address(9))
    assert len(audit_rows(db, "user.login_failed")) == 5


def test_login_and_reset_requests_are_limited_per_address(
    directory: UserDirectory, db: Database, clock: Clock
) -> None:
    """One address may try a few times per window (3 here), counting logins and resets."""
    directory.settings.lifecycle.requests_per_address = 3
    _active_user(directory, db, "ada@example.com")
    directory.login("ada@example.com", STRONG_PASSWORD, _address(1))
    directory.request_password_reset("ada@example.com", _address(1))
    with pytest.raises(LoginRefused):
        directory.login("nobody@example.com", STRONG_PASSWORD, _address(1))
    with pytest.raises(RateLimited):
        directory.login("ada@example.com", STRONG_PASSWORD, _address(1))
    with pytest.raises(RateLimited):
        directory.request_password_reset("nobody@example.com", _address(1))
    directory.login("ada@example.com", STRONG_PASSWORD, _address(2))
    clock.advance(15 * 60)
    directory.login("ada@example.com", STRONG_PASSWORD, _address(1))


def test_reset_requests_past_the_account_limit_stay_silent(
    directory: UserDirectory, db: Database, clock: Clock
) -> None:
    """Mail stops after five links per window, without an error that would reveal the account."""
    _active_user(directory, db, "ada@example.com")
    for n in range(7):
        directory.request_password_reset("ada@example.com", _address(n))
    assert len(queued_emails(db, "password_reset", "ada@example.com")) == 5


# -- sessions ----------------------------------------------------------------------------------


def test_idle_and_old_sessions_end(directory: UserDirectory, db: Database, clock: Clock) -> None:
    """A session unused past the idle limit (60 min), or older than 12 hours, is refused."""
    _active_user(directory, db, "ada@example.com")
    started = clock.now
    idle = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    busy = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    for _ in range(3):
        clock.advance(25 * 60)
        assert directory.session(busy.session_token) is not None
    assert directory.session(idle.session_token) is None
    while directory.session(busy.session_token) is not None:
        clock.advance(30 * 60)
        assert clock.now - started <= timedelta(hours=12, minutes=30)
    assert clock.now - started > timedelta(hours=12)


def test_one_session_ends_without_touching_the_others(
    directory: UserDirectory, db: Database
) -> None:
    """Ending a session by id ends that one only, and only for its own user."""
    user_id = _active_user(directory, db, "ada@example.com")
    other_id = _active_user(directory, db, "bob@example.com")
    first = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    second = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    assert not directory.end_session(other_id, first.session_id, ADMIN)
    assert directory.end_session(user_id, first.session_id, ADMIN)
    assert [s.id for s in directory.sessions_of(user_id)] == [second.session_id]
    third = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    assert directory.end_all_sessions(user_id, ADMIN, keep=third.session_id) == 1
    assert [s.id for s in directory.sessions_of(user_id)] == [third.session_id]


# -- roles -------------------------------------------------------------------------------------


@pytest.fixture
def scim_client(lifecycle_settings: Settings, db: Database) -> ScimClient:
    app = create_app(lifecycle_settings, db)
    client: FlaskClient = app.test_client()
    return ScimClient(client, app.extensions["scimbridge"].tokens.create("tests"))


def _member_ids(scim: ScimClient, display_name: str) -> set[str]:
    found = scim.get(f'/Groups?filter=displayName eq "{display_name}"').get_json()
    if not found["Resources"]:
        return set()
    return {member["value"] for member in found["Resources"][0].get("members", [])}


def test_role_comes_from_the_highest_priority_group(
    directory: UserDirectory, scim_client: ScimClient
) -> None:
    """Membership in several role groups (direct or nested) gives the highest-priority role."""
    user = scim_client.post("/Users", user_payload("carol@example.com")).get_json()
    assert directory.role_of(user["id"]).name == "member"
    managers = scim_client.post(
        "/Groups", group_payload("scimbridge-managers", [user["id"]])
    ).get_json()
    assert directory.role_of(user["id"]).name == "manager"
    team = scim_client.post("/Groups", group_payload("platform-team", [user["id"]])).get_json()
    admins = scim_client.post("/Groups", group_payload("scimbridge-admins", [team["id"]]))
    assert admins.status_code == 201
    assert directory.role_of(user["id"]).name == "admin"
    scim_client.patch(
        f"/Groups/{admins.get_json()['id']}",
        patch_payload({"op": "remove", "path": f'members[value eq "{team["id"]}"]'}),
    )
    assert directory.role_of(user["id"]).name == "manager"
    assert managers["id"]


def test_changing_a_role_moves_the_user_between_role_groups(
    directory: UserDirectory, db: Database, scim_client: ScimClient
) -> None:
    """The role change shows in SCIM: the user leaves the old role's group, joins the new one."""
    user_id = _active_user(directory, db, "ada@example.com", role="admin")
    assert user_id in _member_ids(scim_client, "scimbridge-admins")
    directory.change_role(user_id, "manager", ADMIN)
    assert user_id not in _member_ids(scim_client, "scimbridge-admins")
    assert user_id in _member_ids(scim_client, "scimbridge-managers")
    directory.change_role(user_id, "member", ADMIN)
    assert user_id not in _member_ids(scim_client, "scimbridge-managers")
    assert directory.role_of(user_id).name == "member"
    changes = [event.changes["role"] for event in audit_rows(db, "user.role_changed")]
    assert changes == [
        {"before": "admin", "after": "manager"},
        {"before": "manager", "after": "member"},
    ]
    with pytest.raises(UnknownRole):
        directory.change_role(user_id, "superuser", ADMIN)


def test_a_timed_role_grant_reverts_when_its_time_is_up(
    directory: UserDirectory, db: Database, clock: Clock
) -> None:
    """``until`` makes a role temporary; expiring grants restores the previous role, audited."""
    user_id = _active_user(directory, db, "ada@example.com")
    with pytest.raises(InvalidTransition):
        directory.change_role(user_id, "admin", ADMIN, until=clock.now - timedelta(seconds=1))
    directory.change_role(user_id, "manager", ADMIN, until=clock.now + timedelta(hours=1))
    # A second temporary grant on top still reverts to the role held before the first.
    directory.change_role(user_id, "admin", ADMIN, until=clock.now + timedelta(hours=1))
    assert directory.role_of(user_id).name == "admin"
    clock.advance(30 * 60)
    assert directory.expire_role_grants() == 0
    assert directory.role_of(user_id).name == "admin"
    clock.advance(31 * 60)
    assert directory.expire_role_grants() == 1
    assert directory.role_of(user_id).name == "member"
    assert directory.expire_role_grants() == 0
    (expired,) = audit_rows(db, "user.role_grant_expired")
    assert (expired.actor_type, expired.target_id) == ("system", user_id)
    assert expired.changes == {"role": {"before": "admin", "after": "member"}}


def test_a_permanent_role_change_cancels_a_timed_grant(
    directory: UserDirectory, db: Database, clock: Clock
) -> None:
    """Changing the role without ``until`` makes it stick."""
    user_id = _active_user(directory, db, "ada@example.com")
    directory.change_role(user_id, "admin", ADMIN, until=clock.now + timedelta(minutes=5))
    directory.change_role(user_id, "manager", ADMIN)
    clock.advance(600)
    assert directory.expire_role_grants() == 0
    assert directory.role_of(user_id).name == "manager"


# -- profile -----------------------------------------------------------------------------------


def test_changing_the_email_notifies_the_old_address(
    directory: UserDirectory, db: Database
) -> None:
    """The old address learns of the change; the new one logs in (the userName follows)."""
    user_id = _active_user(directory, db, "ada@example.com")
    directory.update_profile(user_id, ProfileChanges(email="ada.l@example.org"), ADMIN)
    notice = latest_email(db, "email_changed", "ada@example.com")
    assert notice.context["new_email"] == "ada.l@example.org"
    assert directory.account(user_id).user_name == "ada.l@example.org"
    directory.login("ada.l@example.org", STRONG_PASSWORD, BROWSER)
    other = _active_user(directory, db, "bob@example.com")
    with pytest.raises(EmailTaken):
        directory.update_profile(other, ProfileChanges(email="ADA.L@example.org"), ADMIN)


# -- secrets -----------------------------------------------------------------------------------


def test_no_password_token_or_hash_reaches_the_audit_trail_or_the_log(
    directory: UserDirectory, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Every flow that handles a secret leaves none in events or log lines."""
    caplog.set_level(logging.DEBUG)
    user_id = _active_user(directory, db, "ada@example.com")
    created = directory.create_user("bob@example.com", None, None, "member", None, ADMIN)
    session = directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    with pytest.raises(LoginRefused):
        directory.login("ada@example.com", "guessed password", BROWSER)
    directory.change_password(user_id, STRONG_PASSWORD, OTHER_STRONG_PASSWORD, BROWSER)
    directory.request_password_reset("ada@example.com", BROWSER)
    reset = latest_email(db, "password_reset", "ada@example.com").token
    directory.reset_password(reset, THIRD_STRONG_PASSWORD, BROWSER)
    invitation = latest_email(db, "invitation", "ada@example.com").token
    secrets = [
        STRONG_PASSWORD,
        OTHER_STRONG_PASSWORD,
        THIRD_STRONG_PASSWORD,
        "guessed password",
        str(created.generated_password),
        session.session_token,
        reset,
        invitation,
        *password_hashes(db),
        *stored_token_digests(db),
    ]
    trail = audit_trail_text(db)
    assert "user.password_reset" in trail
    for secret in secrets:
        assert secret not in trail
        assert secret not in caplog.text


# -- refusals of malformed input and guessing ----------------------------------------------------


def test_inviting_or_creating_with_a_malformed_address_is_refused(
    directory: UserDirectory,
) -> None:
    """A malformed address is a lifecycle refusal (readable), not a validation crash."""
    with pytest.raises(InvalidEmail):
        directory.invite("not an address", "member", ADMIN)
    with pytest.raises(InvalidEmail):
        directory.create_user("also@not@valid", None, None, "member", None, ADMIN)


def test_profile_edit_with_a_malformed_address_is_refused(
    directory: UserDirectory, db: Database
) -> None:
    """Editing the email to something that is not an address changes nothing."""
    user_id = _active_user(directory, db, "stays@example.com")
    with pytest.raises(InvalidEmail):
        directory.update_profile(user_id, ProfileChanges(email="nope"), ADMIN)
    assert directory.account(user_id).email == "stays@example.com"


def test_guessing_the_current_password_is_rate_limited(
    directory: UserDirectory, db: Database
) -> None:
    """Wrong current passwords on a change count, and stop further guesses for a while."""
    user_id = _active_user(directory, db, "guess@example.com")
    limit = directory.settings.lifecycle.login_attempts_per_account
    for _ in range(limit):
        with pytest.raises(LoginRefused):
            directory.change_password(user_id, "wrong guess", OTHER_STRONG_PASSWORD, BROWSER)
    with pytest.raises(RateLimited):
        directory.change_password(user_id, STRONG_PASSWORD, OTHER_STRONG_PASSWORD, BROWSER)
