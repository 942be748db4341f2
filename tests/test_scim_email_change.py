"""A user's email changed through SCIM notifies the old address, as from the admin UI and API.

The app runs under gunicorn with its outbox worker delivering to a real SMTP server
(aiosmtpd); the IdP's PUT and PATCH go over HTTP, and the notices are read as they arrive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .mail_server import Received
from .mail_server import SmtpServer
from .mail_server import smtp_settings_env
from .services import LiveServer
from .services import live_server

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json; charset=utf-8"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def live(smtp: SmtpServer, tmp_path: Path) -> Iterator[LiveServer]:
    env = smtp_settings_env(smtp)
    with live_server(f"sqlite:///{tmp_path / 'scimbridge.db'}", extra_env=env) as server:
        yield server


def _call(live: LiveServer, method: str, path: str, body: object = None) -> requests.Response:
    return requests.request(
        method,
        live.scim_url + path,
        json=body,
        headers={
            "Authorization": f"Bearer {live.token}",
            "Accept": SCIM_JSON,
            "Content-Type": SCIM_JSON,
        },
        timeout=30,
    )


def _messages_to(
    smtp: SmtpServer, address: str, count: int, timeout: float = 20.0
) -> list[Received]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [each for each in smtp.received if address in each.rcpt_tos]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    return [each for each in smtp.received if address in each.rcpt_tos]


def _text(received: Received) -> str:
    body = received.message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def test_email_changed_by_put_and_by_patch_notifies_each_old_address(
    live: LiveServer, smtp: SmtpServer
) -> None:
    """PUT, then PATCH of emails: each old address is told, naming the new one; others not."""
    created = _call(
        live,
        "POST",
        "/Users",
        {
            "schemas": [USER_SCHEMA],
            "userName": "ada",
            "displayName": "Ada Lovelace",
            "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
        },
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]

    replaced = _call(
        live,
        "PUT",
        f"/Users/{user_id}",
        {
            "schemas": [USER_SCHEMA],
            "userName": "ada",
            "displayName": "Ada Lovelace",
            "emails": [{"value": "ada.l@example.org", "type": "work", "primary": True}],
        },
    )
    assert replaced.status_code == 200, replaced.text
    first = _messages_to(smtp, "ada@example.com", 1)
    assert len(first) == 1, "the old address got no notice of the PUT"
    assert "ada.l@example.org" in _text(first[0])

    # Okta's and Entra's form: replace the work email's value through a filtered path.
    patched = _call(
        live,
        "PATCH",
        f"/Users/{user_id}",
        {
            "schemas": [PATCH_SCHEMA],
            "Operations": [
                {
                    "op": "replace",
                    "path": 'emails[type eq "work"].value',
                    "value": "ada@lovelace.dev",
                }
            ],
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["emails"][0]["value"] == "ada@lovelace.dev"
    second = _messages_to(smtp, "ada.l@example.org", 1)
    assert len(second) == 1, "the old address got no notice of the PATCH"
    assert "ada@lovelace.dev" in _text(second[0])

    # Changes that keep the address (another attribute, or only its letter case) send nothing.
    for operation in (
        {"op": "replace", "path": "displayName", "value": "Countess Lovelace"},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "Ada@Lovelace.dev"},
    ):
        response = _call(
            live,
            "PATCH",
            f"/Users/{user_id}",
            {"schemas": [PATCH_SCHEMA], "Operations": [operation]},
        )
        assert response.status_code == 200, response.text
    time.sleep(2)
    assert [each.rcpt_tos for each in smtp.received] == [["ada@example.com"], ["ada.l@example.org"]]
