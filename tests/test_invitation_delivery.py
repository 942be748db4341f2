"""End to end: an invitation queued by the service arrives by SMTP and its link works over HTTP.

The app runs under gunicorn with its in-process outbox worker delivering to a real SMTP
server (aiosmtpd); the test reads the message as a person would, and follows the link.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from scimbridge.domain.lifecycle import Actor
from scimbridge.domain.lifecycle import UserStatus
from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.service.directory.roles import load_roles
from scimbridge.settings import Settings
from scimbridge.store.database import Database

from .lifecycle_support import ROLES_FILE
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import csrf_token
from .mail_server import SmtpServer
from .mail_server import smtp_settings_env
from .services import LiveServer
from .services import live_server

ADMIN = Actor("admin", "admin-1", "alice.admin")
_LINK = re.compile(r"(http://127\.0\.0\.1:\d+/invitation/[A-Za-z0-9_\-]+)")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def live(smtp: SmtpServer, tmp_path: Path) -> Iterator[LiveServer]:
    env = {**smtp_settings_env(smtp), "SCIMBRIDGE_ROLES__FILE": str(ROLES_FILE)}
    with live_server(f"sqlite:///{tmp_path / 'scimbridge.db'}", extra_env=env) as server:
        yield server


def _wait_for_message(smtp: SmtpServer, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(smtp.received) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(smtp.received) >= count, "the invitation never arrived"


def test_invitation_arrives_by_smtp_and_its_link_accepts_the_invitation(
    live: LiveServer, smtp: SmtpServer
) -> None:
    """Both parts arrive with the absolute link; following it sets the password over HTTP."""
    settings = Settings(
        database_url=live.env["SCIMBRIDGE_DATABASE_URL"],
        public_url=live.base_url,
        roles={"file": ROLES_FILE},
    )
    database = Database(settings.database_url)
    directory = UserDirectory(database, settings, load_roles(ROLES_FILE))
    user_id = directory.invite("new.hire@example.com", "member", ADMIN)

    _wait_for_message(smtp, 1)
    received = smtp.received[0]
    assert received.rcpt_tos == ["new.hire@example.com"]
    text = received.message.get_body(preferencelist=("plain",))
    html = received.message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    links = _LINK.findall(text.get_content())
    assert links and all(link.startswith(live.base_url) for link in links)
    assert links[0] in html.get_content()

    browser = requests.Session()
    form = browser.get(links[0], timeout=10)
    assert form.status_code == 200
    answer = browser.post(
        links[0],
        data={
            "csrf_token": csrf_token(form.text),
            "new_password": STRONG_PASSWORD,
            "confirmation": STRONG_PASSWORD,
        },
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code in (302, 303), answer.text
    assert directory.account(user_id).status == UserStatus.ACTIVE
    assert browser.get(links[0], timeout=10).status_code in (400, 410)
    database.dispose()
