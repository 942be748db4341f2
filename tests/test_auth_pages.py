"""The end-user pages over real HTTP (gunicorn), as browsers use them: cookies, forms, redirects.

Tests that need a process-local knob (a low rate limit, an https public URL, the log) use the
Flask test client instead.
"""

from __future__ import annotations

import logging
import re
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from scimbridge.app import create_app
from scimbridge.domain.lifecycle import Actor
from scimbridge.service.directory.lifecycle import LOGIN_REFUSED
from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.service.directory.roles import load_roles
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .lifecycle_support import BROWSER
from .lifecycle_support import OTHER_STRONG_PASSWORD
from .lifecycle_support import ROLES_FILE
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import THIRD_STRONG_PASSWORD
from .lifecycle_support import csrf_token
from .lifecycle_support import expire_links
from .lifecycle_support import latest_email
from .lifecycle_support import password_hashes
from .lifecycle_support import queued_emails
from .lifecycle_support import stored_token_digests
from .lifecycle_support import use_fast_password_hashing
from .services import LiveServer
from .services import live_server
from .services import scimbridge_command

ADMIN = Actor("admin", "admin-1", "alice.admin")


@dataclass
class PagesServer:
    """scimbridge under gunicorn, with a UserDirectory on the same database for the set-up."""

    live: LiveServer
    database: Database
    directory: UserDirectory

    def active_user(self, email: str, role: str = "member") -> str:
        user_id = self.directory.invite(email, role, ADMIN)
        token = latest_email(self.database, "invitation", email).token
        self.directory.accept_invitation(token, STRONG_PASSWORD, BROWSER)
        return user_id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PagesServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('pages') / 'scimbridge.db'}"
    env = {
        # The tests read emailed links from the outbox: no worker may send (and scrub) them.
        "SCIMBRIDGE_WORKER__IN_PROCESS": "false",
        # Every test logs in from 127.0.0.1; the per-address limit is tested in-process.
        "SCIMBRIDGE_LIFECYCLE__REQUESTS_PER_ADDRESS": "100000",
        "SCIMBRIDGE_ROLES__FILE": str(ROLES_FILE),
    }
    with live_server(url, extra_env=env) as live:
        settings = Settings(database_url=url, public_url=live.base_url, roles={"file": ROLES_FILE})
        database = Database(url)
        yield PagesServer(live, database, UserDirectory(database, settings, load_roles(ROLES_FILE)))
        database.dispose()


class Browser:
    """A requests session that behaves like a browser: cookies kept, redirects not followed."""

    def __init__(self, base_url: str, name: str = "Browser") -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.headers["User-Agent"] = name
        self.bodies: list[str] = []

    def get(self, path: str) -> requests.Response:
        response = self.http.get(self.base_url + path, allow_redirects=False, timeout=10)
        self.bodies.append(response.text)
        return response

    def submit(
        self, path: str, data: dict[str, str], form_page: str | None = None
    ) -> requests.Response:
        """Fill in the form shown at ``form_page`` (default: ``path``) and post it to ``path``."""
        token = csrf_token(self.get(form_page or path).text)
        return self.post(path, {**data, "csrf_token": token})

    def post(self, path: str, data: dict[str, str]) -> requests.Response:
        response = self.http.post(
            self.base_url + path, data=data, allow_redirects=False, timeout=10
        )
        self.bodies.append(response.text)
        return response

    def login(self, identifier: str, password: str) -> requests.Response:
        return self.submit("/login", {"identifier": identifier, "password": password})


def _location(response: Any) -> str:
    """Return where a redirect leads, as a path on this site."""
    location = str(response.headers["Location"])
    if "://" in location:
        location = "/" + location.split("/", 3)[3] if location.count("/") >= 3 else "/"
    return location


def _user_email(request: pytest.FixtureRequest) -> str:
    """Return an address of the test's own, so tests sharing the server never collide."""
    local = request.node.name.removeprefix("test_")[:40].replace("_", ".").strip(".")
    return f"{local}@example.com"


# -- invitations -------------------------------------------------------------------------------


def test_invitation_page_sets_the_password_and_activates_the_account(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """The emailed link shows a set-password form; weak passwords are refused with reasons."""
    email = _user_email(request)
    user_id = server.directory.invite(email, "manager", ADMIN)
    link = latest_email(server.database, "invitation", email)
    browser = Browser(server.live.base_url)
    page = browser.get(link.path)
    assert page.status_code == 200
    assert email in page.text and '<label for="new_password">' in page.text
    assert page.text.count("<h1>") == 1
    weak = browser.submit(link.path, {"new_password": "short", "confirmation": "short"})
    assert weak.status_code == 400
    assert "Use at least 12 characters." in weak.text
    assert 'aria-invalid="true"' in weak.text
    mismatch = browser.submit(
        link.path, {"new_password": STRONG_PASSWORD, "confirmation": OTHER_STRONG_PASSWORD}
    )
    assert mismatch.status_code == 400 and "The two passwords are not the same." in mismatch.text
    done = browser.submit(
        link.path, {"new_password": STRONG_PASSWORD, "confirmation": STRONG_PASSWORD}
    )
    assert done.status_code == 303
    assert _location(done) == "/login?notice=invitation-accepted"
    assert "Your password is set." in browser.get(_location(done)).text
    assert browser.get(link.path).status_code == 410
    assert browser.login(email, STRONG_PASSWORD).status_code == 303
    account = browser.get("/account")
    assert account.status_code == 200 and "manager" in account.text
    assert server.directory.account(user_id).status == "active"


def test_dead_links_show_a_clear_page(server: PagesServer, request: pytest.FixtureRequest) -> None:
    """Unknown, replaced, expired and used links answer 410 with a page saying so."""
    email = _user_email(request)
    user_id = server.directory.invite(email, "member", ADMIN)
    replaced = latest_email(server.database, "invitation", email)
    server.directory.resend_invitation(user_id, ADMIN)
    current = latest_email(server.database, "invitation", email)
    browser = Browser(server.live.base_url)
    for path in (
        "/invitation/unknown-token",
        "/password/reset/unknown-token",
        "/password/reset/" + "x" * 300,
        replaced.path,
        "/password/reset/" + current.token,
    ):
        page = browser.get(path)
        assert page.status_code == 410, path[:80]
        assert "This link is no longer valid" in page.text
        assert page.headers["Cache-Control"] == "no-store"
    stale = browser.submit(
        replaced.path,
        {"new_password": STRONG_PASSWORD, "confirmation": STRONG_PASSWORD},
        form_page="/password/forgot",
    )
    assert stale.status_code == 410
    expire_links(server.database, user_id)
    assert browser.get(current.path).status_code == 410


# -- login, logout, cookies --------------------------------------------------------------------


def test_login_sets_a_protected_session_cookie_and_logout_ends_the_session(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """HttpOnly, SameSite=Lax, Path=/ (Secure under https, below); logout ends it for good."""
    email = _user_email(request)
    server.active_user(email)
    browser = Browser(server.live.base_url)
    assert _location(browser.get("/account")) == "/login?next=/account"
    wrong = browser.login(email, "not the password")
    assert wrong.status_code == 400
    assert "The email address or the password is not right." in wrong.text
    assert email in wrong.text and "not the password" not in wrong.text
    response = browser.login(email.upper(), STRONG_PASSWORD)
    assert response.status_code == 303 and _location(response) == "/account"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("scimbridge_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # the public URL is http here
    session_token = browser.http.cookies["scimbridge_session"]
    assert browser.get("/account").status_code == 200
    assert _location(browser.get("/login")) == "/account"
    logout = browser.submit("/logout", {}, form_page="/account")
    assert logout.status_code == 303
    assert _location(browser.get("/account")).startswith("/login")
    replay = Browser(server.live.base_url)
    replay.http.cookies.set("scimbridge_session", session_token)
    assert _location(replay.get("/account")).startswith("/login")


def test_login_goes_on_to_next_only_on_this_site(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """``next`` brings the visitor back to the page they asked for, never to another site."""
    email = _user_email(request)
    server.active_user(email)
    for target, expected in (
        ("/account?tab=sessions", "/account?tab=sessions"),
        ("//evil.example/", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
    ):
        browser = Browser(server.live.base_url)
        token = csrf_token(browser.get("/login").text)
        response = browser.post(
            "/login",
            {"identifier": email, "password": STRONG_PASSWORD, "next": target, "csrf_token": token},
        )
        assert _location(response) == expected


def test_first_login_with_a_temporary_password_forces_a_change(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """Until the temporary password is replaced, every page but logout leads to the change."""
    email = _user_email(request)
    created = server.directory.create_user(email, "Grace", "Hopper", "member", None, ADMIN)
    temporary = str(created.generated_password)
    browser = Browser(server.live.base_url)
    response = browser.login(email, temporary)
    assert _location(response) == "/password/change"
    for path in ("/account", "/login", "/password/forgot", "/nowhere"):
        assert _location(browser.get(path)) == "/password/change", path
    change_page = browser.get("/password/change")
    assert "Your password is temporary" in change_page.text
    blocked = browser.post(
        "/account/sessions/end-others", {"csrf_token": csrf_token(change_page.text)}
    )
    assert _location(blocked) == "/password/change"
    wrong = browser.submit(
        "/password/change",
        {
            "current_password": "not it at all",
            "new_password": STRONG_PASSWORD,
            "confirmation": STRONG_PASSWORD,
        },
    )
    assert wrong.status_code == 400 and "The current password is not right." in wrong.text
    changed = browser.submit(
        "/password/change",
        {
            "current_password": temporary,
            "new_password": STRONG_PASSWORD,
            "confirmation": STRONG_PASSWORD,
        },
    )
    assert _location(changed) == "/account?notice=password-changed"
    account = browser.get("/account?notice=password-changed")
    assert account.status_code == 200 and "Grace Hopper" in account.text
    assert "Your password is changed." in account.text


# -- the account page and sessions -------------------------------------------------------------


def test_account_page_lists_sessions_and_ends_them(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """A user sees their sessions and ends another one, all others, or their own."""
    email = _user_email(request)
    user_id = server.active_user(email)
    laptop, phone, tablet = (
        Browser(server.live.base_url, name) for name in ("Laptop", "Phone", "Tablet")
    )
    for browser in (laptop, phone, tablet):
        browser.login(email, STRONG_PASSWORD)
    page = laptop.get("/account").text
    assert "Laptop <strong>(this session)</strong>" in page
    assert "Phone" in page and "Tablet" in page and "127.0.0.1" in page
    assert page.count("End session<") == 3 and "End all other sessions" in page
    sessions = {s.user_agent: s.id for s in server.directory.sessions_of(user_id)}
    phone_session = sessions["Phone"]
    ended = laptop.submit(f"/account/sessions/{phone_session}/end", {}, form_page="/account")
    assert _location(ended) == "/account?notice=session-closed"
    assert _location(phone.get("/account")).startswith("/login")
    assert tablet.get("/account").status_code == 200
    others = laptop.submit("/account/sessions/end-others", {}, form_page="/account")
    assert _location(others) == "/account?notice=other-sessions-closed"
    assert _location(tablet.get("/account")).startswith("/login")
    page = laptop.get("/account").text
    assert page.count("End session<") == 1
    done = laptop.submit(f"/account/sessions/{sessions['Laptop']}/end", {}, form_page="/account")
    assert _location(done) == "/login?notice=logged-out"
    assert _location(laptop.get("/account")).startswith("/login")


def test_a_suspended_users_next_request_lands_on_the_login_page(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """Suspension ends the session at once; reactivation allows a new login, not the old one."""
    email = _user_email(request)
    user_id = server.active_user(email)
    browser = Browser(server.live.base_url)
    browser.login(email, STRONG_PASSWORD)
    assert browser.get("/account").status_code == 200
    server.directory.suspend(user_id, ADMIN)
    assert _location(browser.get("/account")) == "/login?next=/account"
    refused = browser.login(email, STRONG_PASSWORD)
    assert refused.status_code == 400 and LOGIN_REFUSED.capitalize() in refused.text
    assert "account is suspended" not in refused.text
    server.directory.reactivate(user_id, ADMIN)
    assert _location(browser.get("/account")).startswith("/login")
    assert _location(browser.login(email, STRONG_PASSWORD)) == "/account"
    assert browser.get("/account").status_code == 200
    server.directory.delete(user_id, ADMIN)
    assert _location(browser.get("/account")).startswith("/login")


# -- password resets ---------------------------------------------------------------------------


def test_forgotten_password_reset_sets_the_password_and_ends_every_session(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """From the login screen to a new password; every session of the account ends."""
    email = _user_email(request)
    server.active_user(email)
    desk, phone = Browser(server.live.base_url, "Desk"), Browser(server.live.base_url, "Phone")
    desk.login(email, STRONG_PASSWORD)
    phone.login(email, STRONG_PASSWORD)
    sent = phone.submit("/password/forgot", {"email": email})
    assert sent.status_code == 200 and "Check your email" in sent.text
    link = latest_email(server.database, "password_reset", email)
    form = phone.get(link.path)
    assert form.status_code == 200 and email in form.text
    common = phone.submit(
        link.path, {"new_password": "password1234", "confirmation": "password1234"}
    )
    assert common.status_code == 400 and "among the most common ones" in common.text
    done = phone.submit(
        link.path, {"new_password": OTHER_STRONG_PASSWORD, "confirmation": OTHER_STRONG_PASSWORD}
    )
    assert _location(done) == "/login?notice=password-reset"
    for browser in (desk, phone):
        assert _location(browser.get("/account")).startswith("/login")
    assert phone.get(link.path).status_code == 410
    assert phone.login(email, STRONG_PASSWORD).status_code == 400
    assert _location(phone.login(email, OTHER_STRONG_PASSWORD)) == "/account"
    pages = "\n".join(desk.bodies + phone.bodies)
    for secret in (STRONG_PASSWORD, OTHER_STRONG_PASSWORD, "password1234", link.token):
        assert secret not in pages


def test_an_admin_triggered_reset_link_works_on_the_reset_page(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """The link an admin sends opens the same reset page."""
    email = _user_email(request)
    user_id = server.active_user(email)
    server.directory.trigger_password_reset(user_id, ADMIN)
    link = latest_email(server.database, "password_reset", email)
    browser = Browser(server.live.base_url)
    done = browser.submit(
        link.path, {"new_password": THIRD_STRONG_PASSWORD, "confirmation": THIRD_STRONG_PASSWORD}
    )
    assert _location(done) == "/login?notice=password-reset"
    assert _location(browser.login(email, THIRD_STRONG_PASSWORD)) == "/account"


def test_forgot_password_answers_the_same_for_every_address(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """Known, unknown and suspended addresses get the same status, body and (roughly) time."""
    known = _user_email(request)
    server.active_user(known)
    suspended = "suspended." + known
    server.directory.suspend(server.active_user(suspended), ADMIN)
    browser = Browser(server.live.base_url)
    token = csrf_token(browser.get("/password/forgot").text)

    def ask(address: str) -> tuple[int, str, float]:
        started = time.perf_counter()
        response = browser.post("/password/forgot", {"email": address, "csrf_token": token})
        return response.status_code, response.text, time.perf_counter() - started

    answers = {address: ask(address) for address in (known, "nobody@example.com", suspended)}
    assert len({(status, body) for status, body, _ in answers.values()}) == 1
    assert next(iter(answers.values()))[0] == 200
    timings: dict[str, list[float]] = {known: [], "nobody@example.com": []}
    for _ in range(8):
        for address, measured in timings.items():
            measured.append(ask(address)[2])
    known_median, unknown_median = (statistics.median(t) for t in timings.values())
    # Loose on purpose: only a gross difference (a hash, a mail sent inline) should fail.
    assert max(known_median, unknown_median) < 3 * min(known_median, unknown_median) + 0.05


def test_failed_logins_are_rate_limited_per_account(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """After five failures the account answers 429, even to the right password."""
    email = _user_email(request)
    server.active_user(email)
    browser = Browser(server.live.base_url)
    for _ in range(5):
        assert browser.login(email, "wrong password!").status_code == 400
    limited = browser.login(email, STRONG_PASSWORD)
    assert limited.status_code == 429
    assert "too many failed attempts" in limited.text.lower()
    assert "scimbridge_session" not in browser.http.cookies


def _refusal(response: requests.Response) -> tuple[int, str]:
    """Return a refused login's status and its error message (the page minus its form)."""
    match = re.search(r'<div class="alert" role="alert">\s*<ul><li>(.*?)</li>', response.text)
    assert match is not None, response.text
    return response.status_code, match.group(1).strip()


def test_a_suspended_account_is_refused_as_a_wrong_password_is(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """Right or wrong password, a suspended account gets the answer of a wrong password."""
    email = _user_email(request)
    other = "other." + email
    server.directory.suspend(server.active_user(email), ADMIN)
    server.active_user(other)
    browser = Browser(server.live.base_url)
    answers = {
        "suspended, right password": _refusal(browser.login(email, STRONG_PASSWORD)),
        "suspended, wrong password": _refusal(browser.login(email, "wrong password!")),
        "active, wrong password": _refusal(browser.login(other, "wrong password!")),
        "unknown address": _refusal(browser.login("nobody." + email, "wrong password!")),
    }
    assert set(answers.values()) == {(400, LOGIN_REFUSED.capitalize() + ".")}, answers


def test_the_lockout_answers_the_same_for_unknown_addresses(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """An unknown address is locked out after as many failures as an account, with its answer."""
    known = _user_email(request)
    server.active_user(known)
    unknown = "nobody." + known
    browser = Browser(server.live.base_url)
    answers: dict[str, list[tuple[int, str]]] = {known: [], unknown: []}
    for _ in range(6):
        for address, seen in answers.items():
            seen.append(_refusal(browser.login(address, "wrong password!")))
    assert answers[known] == answers[unknown]
    assert [status for status, _ in answers[known]] == [400] * 5 + [429]


def test_a_refused_login_takes_as_long_for_an_unknown_address(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """The password check runs for unknown addresses too, so timing tells nothing.

    Each address is tried once (the lockout would otherwise skip the check for all of them);
    the medians of eight tries each must be close. A missing check (a 50 ms argon2 hash
    against a few milliseconds) fails it; machine load moves both sides alike.
    """
    browser = Browser(server.live.base_url)
    known = [f"timing{index}." + _user_email(request) for index in range(8)]
    for address in known:
        server.active_user(address)
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for address in known:
        for kind, login in (("known", address), ("unknown", "nobody." + address)):
            token = csrf_token(browser.get("/login").text)
            started = time.perf_counter()
            response = browser.post(
                "/login", {"identifier": login, "password": "wrong password!", "csrf_token": token}
            )
            timings[kind].append(time.perf_counter() - started)
            assert response.status_code == 400
    known_median, unknown_median = (statistics.median(t) for t in timings.values())
    assert max(known_median, unknown_median) < 2 * min(known_median, unknown_median) + 0.02, timings


# -- CSRF, headers, errors ---------------------------------------------------------------------


def test_posts_without_a_valid_csrf_token_are_refused(
    server: PagesServer, request: pytest.FixtureRequest
) -> None:
    """Missing, forged or another browser's tokens get a readable 400, and change nothing."""
    email = _user_email(request)
    server.active_user(email)
    victim, attacker = Browser(server.live.base_url), Browser(server.live.base_url)
    victim.login(email, STRONG_PASSWORD)
    attackers_token = csrf_token(attacker.get("/login").text)
    victims_token = csrf_token(victim.get("/account").text)
    for data in (
        {},
        {"csrf_token": "forged"},
        {"csrf_token": attackers_token},
        {"csrf_token": victims_token[:-2] + "xx"},
    ):
        refused = victim.post("/logout", data)
        assert refused.status_code == 400
        assert "This form cannot be accepted" in refused.text
        assert "Traceback" not in refused.text
    assert victim.get("/account").status_code == 200
    no_login = attacker.post("/login", {"identifier": email, "password": STRONG_PASSWORD})
    assert no_login.status_code == 400 and "scimbridge_session" not in attacker.http.cookies
    # A form shown in an ended session asks for a new login instead of failing.
    victim.submit("/logout", {}, form_page="/account")
    stale = victim.post("/logout", {"csrf_token": victims_token})
    assert _location(stale) == "/login?notice=session-ended"


def test_pages_send_security_headers(server: PagesServer) -> None:
    """No script, no framing, no referrer, no caching of pages; the stylesheet is served."""
    browser = Browser(server.live.base_url)
    for path in ("/login", "/password/forgot", "/invitation/x", "/no-such-page"):
        response = browser.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Type"].startswith("text/html")
        assert "<script" not in response.text and "style=" not in response.text
    stylesheet = browser.get("/assets/scimbridge.css")
    assert stylesheet.status_code == 200
    assert stylesheet.headers["Content-Type"].startswith("text/css")
    assert ":focus-visible" in stylesheet.text


def test_unknown_paths_get_a_404_page_but_scim_keeps_its_errors(server: PagesServer) -> None:
    """Outside /scim a 404 is a page; inside it stays a SCIM error."""
    browser = Browser(server.live.base_url)
    page = browser.get("/no/such/page")
    assert page.status_code == 404 and "<h1>Page not found</h1>" in page.text
    wrong_method = browser.get("/logout")
    assert wrong_method.status_code == 405 and "<h1>" in wrong_method.text
    scim = browser.http.get(
        server.live.scim_url + "/NoSuchThing",
        headers={"Authorization": f"Bearer {server.live.token}"},
        timeout=10,
    )
    assert scim.status_code == 404
    assert scim.headers["Content-Type"].startswith("application/scim+json")


def test_admin_create_command_prints_a_temporary_password_to_change_at_first_login(
    server: PagesServer,
) -> None:
    """``scimbridge admin create`` makes an admin whose first login forces a change."""
    output = server.live.cli("admin", "create", "root@example.com", "--given-name", "Root")
    temporary = output.strip().splitlines()[-1]
    assert temporary and " " not in temporary
    browser = Browser(server.live.base_url)
    assert _location(browser.login("root@example.com", temporary)) == "/password/change"
    browser.submit(
        "/password/change",
        {
            "current_password": temporary,
            "new_password": STRONG_PASSWORD,
            "confirmation": STRONG_PASSWORD,
        },
    )
    assert "admin" in browser.get("/account").text
    again = subprocess.run(
        [*scimbridge_command(), "admin", "create", "root@example.com"],
        env=server.live.env,
        capture_output=True,
        text=True,
    )
    assert again.returncode != 0 and "already belongs" in again.stderr


# -- in-process: knobs of one process ----------------------------------------------------------


@pytest.fixture
def page_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    use_fast_password_hashing(monkeypatch)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'scimbridge.db'}",
        public_url="https://scim.test",
        roles={"file": ROLES_FILE},
        lifecycle={"requests_per_address": 4},
    )
    database = Database(settings.database_url)
    upgrade(database)
    yield create_app(settings, database)
    database.dispose()


def _directory(app: Flask) -> UserDirectory:
    directory: UserDirectory = app.extensions["scimbridge"].directory
    return directory


def _active(app: Flask, email: str) -> str:
    directory = _directory(app)
    user_id = directory.invite(email, "member", ADMIN)
    token = latest_email(directory.database, "invitation", email).token
    directory.accept_invitation(token, STRONG_PASSWORD, BROWSER)
    return user_id


class Client:
    """A Flask test client over https, filling CSRF tokens like ``Browser``."""

    def __init__(self, app: Flask, address: str = "203.0.113.5") -> None:
        self.client: FlaskClient = app.test_client()
        self.environ = {"REMOTE_ADDR": address}
        self.bodies: list[str] = []

    def get(self, path: str) -> Any:
        response = self.client.get(path, base_url="https://scim.test", environ_base=self.environ)
        self.bodies.append(response.text)
        return response

    def post(self, path: str, data: Any, **kwargs: Any) -> Any:
        response = self.client.post(
            path, data=data, base_url="https://scim.test", environ_base=self.environ, **kwargs
        )
        self.bodies.append(response.text)
        return response

    def submit(self, path: str, data: dict[str, str], form_page: str | None = None) -> Any:
        token = csrf_token(self.get(form_page or path).text)
        return self.post(path, {**data, "csrf_token": token})


def test_cookies_are_secure_under_an_https_public_url(page_app: Flask) -> None:
    """With an https public URL both cookies carry Secure."""
    _active(page_app, "ada@example.com")
    client = Client(page_app)
    form = client.get("/login")
    assert "Secure" in form.headers["Set-Cookie"] and "HttpOnly" in form.headers["Set-Cookie"]
    response = client.submit(
        "/login", {"identifier": "ada@example.com", "password": STRONG_PASSWORD}
    )
    (cookie,) = response.headers.getlist("Set-Cookie")
    assert "scimbridge_session=" in cookie
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie


def test_logins_and_reset_requests_are_rate_limited_per_address(page_app: Flask) -> None:
    """One address gets 429 past the limit (4 here), for logins and reset requests alike."""
    _active(page_app, "ada@example.com")
    client = Client(page_app)
    for attempt in range(2):
        assert (
            client.submit(
                "/login", {"identifier": f"user{attempt}@example.com", "password": "whatever it is"}
            ).status_code
            == 400
        )
    assert client.submit("/password/forgot", {"email": "ada@example.com"}).status_code == 200
    assert client.submit("/password/forgot", {"email": "bob@example.com"}).status_code == 200
    limited = client.submit("/password/forgot", {"email": "ada@example.com"})
    assert limited.status_code == 429 and "<h1>Too many attempts</h1>" in limited.text
    login = client.submit("/login", {"identifier": "ada@example.com", "password": STRONG_PASSWORD})
    assert login.status_code == 429
    other = Client(page_app, "203.0.113.6")
    ok = other.submit("/login", {"identifier": "ada@example.com", "password": STRONG_PASSWORD})
    assert ok.status_code == 303


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/login?next=%00%0d%0a", None),
        ("GET", "/login?notice=<script>", None),
        ("GET", "/invitation/%00%ff", None),
        ("GET", "/password/reset/" + "é" * 300, None),
        ("GET", "/account/sessions/x/end", None),
        ("POST", "/login", {"identifier": "a\x00b", "password": "x"}),
        ("POST", "/login", {"identifier": "x" * 5000, "password": "y" * 5000}),
        ("POST", "/login", {"identifier": ["a", "b"], "password": ""}),
        ("POST", "/password/forgot", {"email": "\xff\u202e@example.com"}),
        ("POST", "/password/forgot", {"email": "<b>@example.com"}),
        ("POST", "/password/change", {"current_password": "x"}),
        ("POST", "/account/sessions/" + "z" * 500 + "/end", {}),
        ("POST", "/invitation/unknown", {"new_password": "x" * 2000, "confirmation": ""}),
    ],
)
def test_no_input_makes_a_page_fail(
    page_app: Flask, method: str, path: str, data: dict[str, Any] | None
) -> None:
    """Odd, oversized or hostile input gets a page of its own, never a 500 or a traceback."""
    _active(page_app, "ada@example.com")
    client = Client(page_app)
    client.submit("/login", {"identifier": "ada@example.com", "password": STRONG_PASSWORD})
    if method == "GET":
        response = client.get(path)
    else:
        token = csrf_token(client.get("/account").text)
        response = client.post(path, {**(data or {}), "csrf_token": token})
    assert response.status_code < 500
    assert "Traceback" not in response.text and "<script>" not in response.text


def test_raw_bodies_and_bad_content_types_get_a_page(page_app: Flask) -> None:
    """Bodies that are not forms are refused with a readable 400; broken UTF-8 is harmless."""
    client = Client(page_app)
    for body, content_type in (
        (b"\xff\xfe\x00", "application/x-www-form-urlencoded"),
        (b'{"identifier": "x"}', "application/json"),
        (b"--x\r\n", "multipart/form-data; boundary=x"),
    ):
        response = client.post("/login", body, content_type=content_type)
        assert response.status_code == 400
        assert "This form cannot be accepted" in response.text
    token = csrf_token(client.get("/password/forgot").text).encode()
    response = client.post(
        "/password/forgot",
        b"csrf_token=" + token + b"&email=%FF%FE%00@example.com",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400 and "control characters" in response.text


def test_no_password_token_or_hash_appears_in_pages_or_logs(
    page_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """Through every flow, pages and log lines carry no secret; neither does the audit trail."""
    caplog.set_level(logging.DEBUG)
    directory = _directory(page_app)
    database = directory.database
    directory.invite("ada@example.com", "member", ADMIN)
    invitation = latest_email(database, "invitation", "ada@example.com")
    created = directory.create_user("bob@example.com", None, None, "member", None, ADMIN)
    client = Client(page_app)
    client.get(invitation.path)
    client.submit(invitation.path, {"new_password": "short", "confirmation": "short"})
    client.submit(
        invitation.path, {"new_password": STRONG_PASSWORD, "confirmation": STRONG_PASSWORD}
    )
    client.submit("/login", {"identifier": "ada@example.com", "password": "a wrong guess!"})
    client.submit("/login", {"identifier": "ada@example.com", "password": STRONG_PASSWORD})
    session_token = client.client.get_cookie("scimbridge_session", domain="scim.test")
    assert session_token is not None
    client.get("/account")
    client.submit(
        "/password/change",
        {
            "current_password": STRONG_PASSWORD,
            "new_password": OTHER_STRONG_PASSWORD,
            "confirmation": OTHER_STRONG_PASSWORD,
        },
    )
    client.submit("/password/forgot", {"email": "ada@example.com"})
    reset = latest_email(database, "password_reset", "ada@example.com")
    client.get(reset.path)
    client.submit(reset.path, {"new_password": THIRD_STRONG_PASSWORD, "confirmation": "nope"})
    client.submit(
        reset.path, {"new_password": THIRD_STRONG_PASSWORD, "confirmation": THIRD_STRONG_PASSWORD}
    )
    bob = Client(page_app, "203.0.113.9")
    bob.submit(
        "/login", {"identifier": "bob@example.com", "password": str(created.generated_password)}
    )
    bob.get("/password/change")
    secrets = [
        STRONG_PASSWORD,
        OTHER_STRONG_PASSWORD,
        THIRD_STRONG_PASSWORD,
        "a wrong guess!",
        str(created.generated_password),
        session_token.value,
        invitation.token,
        reset.token,
        *password_hashes(database),
        *stored_token_digests(database),
    ]
    pages = "\n".join(client.bodies + bob.bodies)
    assert "Check your email" in pages and "Your account" in pages
    with database.read() as conn:
        trail = "\n".join(
            repr(tuple(row)) for row in conn.exec_driver_sql("SELECT * FROM audit_events")
        )
    for secret in secrets:
        assert secret not in pages
        assert secret not in caplog.text
        assert secret not in trail
    assert len(queued_emails(database, "password_changed")) == 2


def test_trusted_proxy_headers_give_the_client_address(tmp_path: Path) -> None:
    """With proxy_hops=1 the audit trail records X-Forwarded-For, not the proxy's address."""
    from scimbridge.app import create_app
    from scimbridge.settings import ServerSettings
    from scimbridge.store.database import Database
    from scimbridge.store.migrations import upgrade

    from .conftest import make_settings

    settings = make_settings(
        f"sqlite:///{tmp_path / 'proxy.db'}", server=ServerSettings(proxy_hops=1)
    )
    database = Database(settings.database_url)
    upgrade(database)
    app = create_app(settings, database)

    @app.get("/_address")
    def _address() -> str:
        from flask import request

        return request.remote_addr or ""

    client = app.test_client()
    answer = client.get("/_address", headers={"X-Forwarded-For": "203.0.113.7"})
    assert answer.get_data(as_text=True) == "203.0.113.7"
    database.dispose()
