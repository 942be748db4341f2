"""The admin User Directory end to end in a real browser (Debian's Chromium, driven by Playwright).

scimbridge runs under gunicorn with its in-process worker sending mail to a real SMTP server
(aiosmtpd). An administrator bootstrapped on the command line invites a user, who accepts in
a second browser; the administrator then changes the role, ends the session, suspends,
reactivates, resets the password and deletes the user. Screenshots of the main pages at laptop
and phone width land in ``tests/artifacts/admin/`` (git-ignored).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from scimbridge.service.mail.queue import queue_email
from scimbridge.store import jobs as job_store
from scimbridge.store.database import Database

from .browser_support import CHROMIUM
from .browser_support import chromium
from .lifecycle_support import OTHER_STRONG_PASSWORD
from .lifecycle_support import ROLES_FILE
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import THIRD_STRONG_PASSWORD
from .mail_server import SmtpServer
from .mail_server import smtp_settings_env
from .services import LiveServer
from .services import live_server

sync_api = pytest.importorskip("playwright.sync_api")

LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "admin"

ADMIN_EMAIL = "rita.root@example.com"
USER_EMAIL = "nina.new@example.com"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (see deploy/test.sh)"
)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(smtp: SmtpServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {**smtp_settings_env(smtp), "SCIMBRIDGE_ROLES__FILE": str(ROLES_FILE)}
    url = f"sqlite:///{tmp_path_factory.mktemp('admin-browser') / 'scimbridge.db'}"
    with live_server(url, extra_env=env) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _link_in_mail(smtp: SmtpServer, to: str, path: str, after: int, timeout: float = 20) -> str:
    """Wait for a message to ``to`` (past the first ``after`` ones) and return its link."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for received in smtp.received[after:]:
            if to in received.rcpt_tos:
                body = received.message.get_body(preferencelist=("plain",))
                assert body is not None
                found = re.search(
                    rf"(http://127\.0\.0\.1:\d+{path}[A-Za-z0-9_\-]+)", body.get_content()
                )
                assert found, body.get_content()
                return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no message for {to} arrived")


def _park_a_message(live: LiveServer, smtp: SmtpServer) -> None:
    """Queue a message the mail server refuses for good, and wait until it is parked."""
    smtp.refused.add("ghost@example.com")
    database = Database(live.env["SCIMBRIDGE_DATABASE_URL"])
    try:
        with database.write() as conn:
            queue_email(
                conn,
                "password_changed",
                "ghost@example.com",
                {"name": "Ghost"},
                datetime.now(UTC),
                ordering_key="user:ghost",
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with database.read() as conn:
                if job_store.list_jobs(conn, [job_store.JobStatus.FAILED]):
                    return
            time.sleep(0.1)
        raise AssertionError("the refused message was never parked")
    finally:
        database.dispose()


def _shoot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _confirm(page: Any, button: str) -> None:
    """Click a button that asks first, and accept in the dialog."""
    page.get_by_role("button", name=re.compile("^" + re.escape(button))).first.click()
    dialog = page.locator("dialog.confirm")
    dialog.wait_for()
    dialog.get_by_role("button", name=button, exact=True).click()


def _notice(page: Any, text: str) -> None:
    sync_api.expect(page.get_by_role("status").filter(has_text=text)).to_be_visible()


def test_an_admin_runs_a_users_whole_lifecycle_in_the_browser(
    live: LiveServer, smtp: SmtpServer, browser: Any
) -> None:
    """Invite, accept, role, end session, suspend, reactivate, reset password, delete."""
    expect = sync_api.expect
    temporary = live.cli(
        "admin", "create", ADMIN_EMAIL, "--given-name", "Rita", "--family-name", "Root"
    ).splitlines()[-1]

    admin_context = browser.new_context(viewport=LAPTOP, base_url=live.base_url)
    admin = admin_context.new_page()
    admin.goto("/admin/")
    expect(admin).to_have_url(re.compile(r"/login\?next=/admin/"))
    admin.get_by_label("Email address or username").fill(ADMIN_EMAIL)
    admin.get_by_label("Password").fill(temporary)
    admin.get_by_role("button", name="Log in").click()
    # The temporary password must be replaced before anything else.
    expect(admin).to_have_url(re.compile(r"/password/change$"))
    admin.get_by_label("Current password").fill(temporary)
    admin.get_by_label("New password", exact=True).fill(STRONG_PASSWORD)
    admin.get_by_label("New password again").fill(STRONG_PASSWORD)
    admin.get_by_role("button", name="Change password").click()
    admin.get_by_role("link", name="Open the User Directory").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("User Directory")
    expect(admin.get_by_role("link", name="User Directory")).to_have_attribute(
        "aria-current", "page"
    )

    # Invite a user.
    sent_before = len(smtp.received)
    admin.get_by_role("link", name="Invite Users").click()
    admin.get_by_label("Email addresses").fill(USER_EMAIL)
    admin.get_by_label("Role").select_option("member")
    _shoot(admin, "laptop-invite")
    admin.get_by_role("button", name="Invite", exact=True).click()
    _notice(admin, "Invitation sent.")
    row = admin.get_by_role("row").filter(has_text=USER_EMAIL)
    expect(row).to_contain_text("Invited")
    expect(row.get_by_role("button", name=re.compile("^Resend"))).to_be_visible()
    expect(row.get_by_role("button", name=re.compile("^Cancel"))).to_be_visible()

    # Inviting the same address again says so next to the field.
    admin.get_by_role("link", name="Invite Users").click()
    admin.get_by_label("Email addresses").fill(USER_EMAIL)
    admin.get_by_role("button", name="Invite", exact=True).click()
    expect(admin.locator("#emails-error")).to_contain_text("already belongs to a user")
    _shoot(admin, "laptop-invite-error")

    # The user accepts in a browser of their own, at phone width.
    invitation = _link_in_mail(smtp, USER_EMAIL, "/invitation/", sent_before)
    user_context = browser.new_context(viewport=PHONE, base_url=live.base_url)
    user = user_context.new_page()
    user.goto(invitation)
    user.get_by_label("New password", exact=True).fill(OTHER_STRONG_PASSWORD)
    user.get_by_label("New password again").fill(OTHER_STRONG_PASSWORD)
    user.get_by_role("button", name=re.compile("password", re.I)).click()
    _notice(user, "Your password is set.")
    user.get_by_label("Email address or username").fill(USER_EMAIL)
    user.get_by_label("Password").fill(OTHER_STRONG_PASSWORD)
    user.get_by_role("button", name="Log in").click()
    expect(user.get_by_role("heading", level=1)).to_have_text("Your account")

    # The admin finds them Active, searching as they type (no button pressed).
    admin.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="User Directory"
    ).click()
    admin.get_by_label("Search by name or email").press_sequentially("nina", delay=30)
    expect(admin).to_have_url(re.compile(r"q=nina"))
    rows = admin.locator("#results tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Active")
    _shoot(admin, "laptop-users-search")
    rows.first.get_by_role("link").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text(USER_EMAIL)

    # Role: member → manager.
    admin.get_by_role("combobox", name="Role").select_option("manager")
    admin.get_by_role("button", name="Change role").click()
    _notice(admin, "The role is changed.")
    expect(admin.locator(".role-line")).to_have_text("manager")

    # End the user's session: their next click lands on the login page.
    sessions = admin.locator("section", has=admin.get_by_role("heading", name="Active sessions"))
    expect(sessions.get_by_role("row")).to_have_count(2)
    _shoot(admin, "laptop-profile")
    _confirm(admin, "End session")
    _notice(admin, "The session has ended")
    user.get_by_role("link", name="Change your password").click()
    expect(user).to_have_url(re.compile(r"/login"))

    # Suspend: login refused. Reactivate: allowed again.
    _confirm(admin, "Suspend")
    _notice(admin, "The user is suspended")
    expect(admin.locator(".lead .badge")).to_have_text("Suspended")
    user.get_by_label("Email address or username").fill(USER_EMAIL)
    user.get_by_label("Password").fill(OTHER_STRONG_PASSWORD)
    user.get_by_role("button", name="Log in").click()
    # Refused as a wrong password would be: the answer never confirms the password.
    expect(user.get_by_role("alert")).to_contain_text("the password is not right")
    admin.get_by_role("button", name="Reactivate").click()
    _notice(admin, "The user is active again")

    # Reset password: the email arrives and its link works.
    sent_before = len(smtp.received)
    _confirm(admin, "Reset password")
    _notice(admin, "A password reset link is on its way")
    reset = _link_in_mail(smtp, USER_EMAIL, "/password/reset/", sent_before)
    user.goto(reset)
    user.get_by_label("New password", exact=True).fill(THIRD_STRONG_PASSWORD)
    user.get_by_label("New password again").fill(THIRD_STRONG_PASSWORD)
    user.get_by_role("button", name=re.compile("password", re.I)).click()
    _notice(user, "Your password is changed")
    user.get_by_label("Email address or username").fill(USER_EMAIL)
    user.get_by_label("Password").fill(THIRD_STRONG_PASSWORD)
    user.get_by_role("button", name="Log in").click()
    expect(user.get_by_role("heading", level=1)).to_have_text("Your account")

    # Something to show on the status and provisioning pages: a message the mail server
    # refuses for good (parked), and a deviation the strict test token refuses.
    user_id = admin.url.rsplit("/", 1)[-1].split("?")[0]
    _park_a_message(live, smtp)
    capitalised = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "title", "value": "Lead"}],
    }
    refused = requests.patch(
        f"{live.scim_url}/Users/{user_id}",
        json=capitalised,
        headers={"Authorization": f"Bearer {live.token}"},
        timeout=10,
    )
    assert refused.status_code == 400
    admin.get_by_role("link", name="Sync and mail").click()
    parked = admin.get_by_role("row").filter(has_text="No such user here")
    expect(parked).to_have_count(1)
    parked.get_by_role("button", name=re.compile("^Retry")).click()
    _notice(admin, "The job is queued again")
    _park_a_message(live, smtp)

    # The other pages, at laptop and phone width.
    phone_context = browser.new_context(
        viewport=PHONE, base_url=live.base_url, storage_state=admin_context.storage_state()
    )
    phone = phone_context.new_page()
    for name, path in (
        ("users", "/admin/"),
        ("profile", f"/admin/users/{user_id}"),
        ("create", "/admin/users/new"),
        ("groups", "/admin/groups"),
        ("provisioning", "/admin/provisioning"),
        ("status", "/admin/status"),
        ("audit", "/admin/audit"),
    ):
        for label, page in (("laptop", admin), ("phone", phone)):
            page.goto(path)
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            _shoot(page, f"{label}-{name}")
    admin.goto(f"/admin/users/{user_id}")

    # Delete, behind a confirmation page.
    admin.get_by_role("link", name="Delete User…").click()
    expect(admin.get_by_text("This cannot be undone.")).to_be_visible()
    _shoot(admin, "laptop-delete")
    admin.get_by_role("button", name="Delete permanently").click()
    _notice(admin, "The user was deleted.")
    expect(admin.get_by_role("row").filter(has_text=USER_EMAIL)).to_have_count(0)
    user.get_by_role("link", name="Change your password").click()
    expect(user).to_have_url(re.compile(r"/login"))

    for context in (admin_context, user_context, phone_context):
        context.close()


def test_without_javascript_every_action_still_works(live: LiveServer, browser: Any) -> None:
    """Search is a GET form, and destructive buttons act without a dialog."""
    expect = sync_api.expect
    email = "nojs.admin@example.com"
    temporary = live.cli("admin", "create", email).splitlines()[-1]
    context = browser.new_context(
        viewport=LAPTOP, base_url=live.base_url, java_script_enabled=False
    )
    page = context.new_page()
    page.goto("/login?next=/admin/")
    page.get_by_label("Email address or username").fill(email)
    page.get_by_label("Password").fill(temporary)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Current password").fill(temporary)
    page.get_by_label("New password", exact=True).fill(STRONG_PASSWORD)
    page.get_by_label("New password again").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    page.goto("/admin/users/invite")
    page.get_by_label("Email addresses").fill("nojs.user@example.com, nojs.other@example.com")
    page.get_by_role("button", name="Invite", exact=True).click()
    _notice(page, "2 invitations sent.")
    page.get_by_label("Search by name or email").fill("nojs.user")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"q=nojs.user"))
    expect(page.locator("#results tbody tr")).to_have_count(1)
    page.get_by_role("button", name=re.compile("^Cancel")).click()
    _notice(page, "The invitation was cancelled.")
    context.close()
