"""The User Directory's everyday use in Chromium: dialogs, row links, names, history, exports.

One gunicorn-served scimbridge, one SMTP server and one browser for the whole module; an
administrator logs in once and each test opens its own page with that session. Screenshots
of the directory, a profile, the audit log and a dialog at 1366×768 and 1920×1080 land in
``tests/artifacts/directory/`` (git-ignored), to be looked at.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .browser_support import CHROMIUM
from .browser_support import chromium
from .lifecycle_support import OTHER_STRONG_PASSWORD
from .lifecycle_support import ROLES_FILE
from .lifecycle_support import STRONG_PASSWORD
from .mail_server import SmtpServer
from .mail_server import smtp_settings_env
from .services import LiveServer
from .services import live_server
from .test_admin_browser import _link_in_mail

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

LAPTOP = {"width": 1366, "height": 768}
DESKTOP = {"width": 1920, "height": 1080}
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "directory"
ADMIN_EMAIL = "rita.root@example.com"
# The kind of address that made the audit log's columns overflow.
LONG_EMAIL = (
    "maximilian.alexander.featherstonehaugh-wolfeschlegel@subsidiary.example-corporation.com"
)

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
    url = f"sqlite:///{tmp_path_factory.mktemp('directory-browser') / 'scimbridge.db'}"
    with live_server(url, extra_env=env) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def admin_state(live: LiveServer, browser: Any) -> dict[str, Any]:
    """Log the administrator in once (replacing the temporary password); return the cookies."""
    temporary = live.cli(
        "admin", "create", ADMIN_EMAIL, "--given-name", "Rita", "--family-name", "Root"
    ).splitlines()[-1]
    context = browser.new_context(base_url=live.base_url)
    page = context.new_page()
    page.goto("/login?next=/admin/")
    page.get_by_label("Email address or username").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(temporary)
    page.get_by_role("button", name="Log in").click()
    page.get_by_label("Current password").fill(temporary)
    page.get_by_label("New password", exact=True).fill(STRONG_PASSWORD)
    page.get_by_label("New password again").fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("link", name="Open the User Directory")).to_be_visible()
    state: dict[str, Any] = context.storage_state()
    context.close()
    return state


@pytest.fixture
def admin(live: LiveServer, browser: Any, admin_state: dict[str, Any]) -> Iterator[Any]:
    """A page of the logged-in administrator at 1366×768; console errors fail the test."""
    context = browser.new_context(
        viewport=LAPTOP, base_url=live.base_url, storage_state=admin_state, accept_downloads=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    yield page
    context.close()
    assert errors == []


def _scim_user(live: LiveServer, email: str, **attributes: Any) -> str:
    response = requests.post(
        f"{live.scim_url}/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email,
            "emails": [{"value": email, "primary": True, "type": "work"}],
            **attributes,
        },
        headers={"Authorization": f"Bearer {live.token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    user_id: str = response.json()["id"]
    return user_id


def _shoot(page: Any, name: str) -> None:
    """Screenshot the page at laptop and desktop size: the window as seen, and the whole page."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("1366x768", LAPTOP), ("1920x1080", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"))
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}-full.png"), full_page=True)
    page.set_viewport_size(LAPTOP)


def _invite(page: Any, entries: str) -> None:
    page.goto("/admin/users/invite")
    page.get_by_label("Email addresses").fill(entries)
    page.get_by_role("button", name="Invite", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="sent")).to_be_visible()


def test_the_cancel_dialog_names_both_choices(admin: Any) -> None:
    """The dialog's buttons read "Cancel invitation" and "Keep", never "Cancel" twice."""
    _invite(admin, "Dee Dialog <dee.dialog@example.com>")
    row = admin.locator("#results tbody tr").filter(has_text="Dee Dialog")
    row.get_by_role("button", name=re.compile("^Cancel")).click()
    dialog = admin.locator("dialog.confirm")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button")).to_have_text(["Cancel invitation", "Keep"])
    expect(dialog.get_by_role("button", name="Keep")).to_be_focused()
    _shoot(admin, "dialog")
    dialog.get_by_role("button", name="Keep").click()
    expect(dialog).to_have_count(0)
    expect(row).to_have_count(1)
    row.get_by_role("button", name=re.compile("^Cancel")).click()
    dialog.get_by_role("button", name="Cancel invitation").click()
    expect(
        admin.get_by_role("status").filter(has_text="The invitation was cancelled.")
    ).to_be_visible()
    expect(admin.locator("#results tbody tr").filter(has_text="Dee Dialog")).to_have_count(0)


def test_names_typed_on_the_invite_form_reach_the_table_and_the_invitee(
    admin: Any, browser: Any, live: LiveServer, smtp: SmtpServer
) -> None:
    """The invitee sees the name the admin typed, corrects it, and the directory shows theirs."""
    sent_before = len(smtp.received)
    _invite(admin, "Ivy Invitee <ivy.invitee@example.com>\nnameless@example.com")
    rows = admin.locator("#results tbody tr")
    expect(rows.filter(has_text="Ivy Invitee")).to_have_count(1)
    expect(rows.filter(has_text="nameless@example.com")).to_contain_text("No name yet")

    link = _link_in_mail(smtp, "ivy.invitee@example.com", "/invitation/", sent_before)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    invitee = context.new_page()
    invitee.goto(link)
    expect(invitee.get_by_label("Given name")).to_have_value("Ivy")
    expect(invitee.get_by_label("Family name")).to_have_value("Invitee")
    invitee.get_by_label("Family name").fill("Invitee-Ward")
    invitee.get_by_label("New password", exact=True).fill(OTHER_STRONG_PASSWORD)
    invitee.get_by_label("New password again").fill(OTHER_STRONG_PASSWORD)
    invitee.get_by_role("button", name="Set password").click()
    expect(invitee.get_by_role("status")).to_contain_text("Your password is set.")
    context.close()

    admin.goto("/admin/?q=ivy")
    expect(admin.locator("#results tbody tr")).to_contain_text("Ivy Invitee-Ward")


def _click_middle_of(page: Any, cell: Any) -> None:
    """Click where a cell is, as a person would (the row's link is what receives it)."""
    box = cell.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_the_whole_row_opens_the_profile_with_and_without_script(
    admin: Any, browser: Any, live: LiveServer, admin_state: dict[str, Any]
) -> None:
    """A click anywhere on the row opens it; the keyboard reaches it through the name link."""
    user_id = _scim_user(live, "rowan.row@example.com", displayName="Rowan Row")
    admin.goto("/admin/?q=rowan")
    row = admin.locator("#results tbody tr").filter(has_text="Rowan Row")
    _click_middle_of(admin, row.locator("td[data-label=Status]"))
    expect(admin).to_have_url(re.compile(f"/admin/users/{user_id}$"))
    admin.go_back()
    admin.locator("#results tbody tr").filter(has_text="Rowan Row").get_by_role("link").focus()
    admin.keyboard.press("Enter")
    expect(admin).to_have_url(re.compile(f"/admin/users/{user_id}$"))

    context = browser.new_context(
        viewport=LAPTOP,
        base_url=live.base_url,
        storage_state=admin_state,
        java_script_enabled=False,
    )
    page = context.new_page()
    page.goto("/admin/?q=rowan")
    _click_middle_of(
        page, page.locator("#results tbody tr").filter(has_text="Rowan Row").locator("td.wrap")
    )
    expect(page).to_have_url(re.compile(f"/admin/users/{user_id}$"))
    context.close()


def test_history_reads_as_sentences_and_the_audit_log_fits_at_1366(
    admin: Any, live: LiveServer
) -> None:
    """Profile and log say who did what, with fields before → after; the log fits the window."""
    user_id = _scim_user(live, LONG_EMAIL, displayName="Max Featherstonehaugh", title="Engineer")
    admin.goto(f"/admin/users/{user_id}")
    admin.get_by_label("Title").fill("Principal engineer for identity and access management")
    admin.get_by_label("Department").fill("Platform infrastructure and developer experience")
    admin.get_by_role("button", name="Save details").click()
    admin.get_by_role("combobox", name="Role").select_option("manager")
    admin.get_by_role("button", name="Change role").click()
    history = admin.locator(".timeline")
    expect(history).to_contain_text("Role changed by Rita Root")
    expect(history).to_contain_text("role: member → manager")
    expect(history).to_contain_text("Profile changed by Rita Root")
    expect(history).to_contain_text(
        "title: Engineer → Principal engineer for identity and access management"
    )
    expect(history).to_contain_text("Created by identity provider")
    expect(history).not_to_contain_text("user.role_changed")
    _shoot(admin, "profile")

    admin.get_by_role("link", name=re.compile("in the audit log")).click()
    expect(admin).to_have_url(re.compile(f"/admin/audit\\?target={user_id}$"))
    table = admin.locator("table.audit")
    expect(table).to_contain_text("Profile changed by Rita Root")
    sizes = admin.evaluate(
        """() => {
            const table = document.querySelector("table.audit");
            const details = table.querySelector("thead th:last-child").getBoundingClientRect();
            const rows = [...table.querySelectorAll("tbody tr")].map(r => r.offsetHeight);
            const lines = [...table.querySelectorAll(".changes li")].map(li => li.offsetHeight);
            return {
                pageWidth: document.documentElement.scrollWidth,
                window: window.innerWidth,
                tableRight: table.getBoundingClientRect().right,
                detailsLeft: details.left,
                detailsWidth: details.width,
                tallestRow: Math.max(...rows),
                tallestChange: Math.max(...lines),
            };
        }"""
    )
    _shoot(admin, "audit")
    assert sizes["pageWidth"] <= sizes["window"], sizes
    assert sizes["tableRight"] <= sizes["window"], sizes
    assert sizes["detailsLeft"] < sizes["window"] - 300, sizes
    assert sizes["detailsWidth"] >= 300, sizes
    # The creation event lists every field; none is broken a character per line (the bug
    # made one row 2,589 px tall): even the long address takes at most four lines.
    assert sizes["tallestRow"] < 400, sizes
    assert sizes["tallestChange"] < 4.5 * 24, sizes


def _downloaded_csv(page: Any, link: Any) -> list[dict[str, str]]:
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_downloads_keep_the_filters(admin: Any, live: LiveServer) -> None:
    """The users table's and the audit log's Export CSV download what the filters show."""
    _scim_user(live, "csv.active@example.com", displayName="=cmd|' /C calc'!A0")
    _invite(admin, "Carl Csv <csv.invited@example.com>")
    admin.goto("/admin/?status=invited")
    invited = _downloaded_csv(admin, admin.get_by_role("link", name=re.compile("^Export CSV")))
    assert invited and {row["status"] for row in invited} == {"Invited"}
    assert "csv.invited@example.com" in {row["email"] for row in invited}
    admin.goto("/admin/?q=csv.active")
    found = _downloaded_csv(admin, admin.get_by_role("link", name=re.compile("^Export CSV")))
    assert [row["display name"] for row in found] == ["'=cmd|' /C calc'!A0"]
    admin.goto("/admin/")
    _shoot(admin, "directory")

    admin.goto("/admin/audit")
    admin.get_by_label("Action").fill("user.invited")
    admin.get_by_role("button", name="Filter").click()
    events = _downloaded_csv(admin, admin.get_by_role("link", name=re.compile("^Export CSV")))
    assert events and {row["action"] for row in events} == {"user.invited"}
    assert any(row["target"] == "csv.invited@example.com" for row in events)
