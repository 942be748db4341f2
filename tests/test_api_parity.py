"""The System API acts exactly as the lifecycle service does.

An action through the API leaves the same state, audit events and queued emails as the same
action through UserDirectory directly (as the admin UI and the CLI call it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from scimbridge.domain.lifecycle import Actor
from scimbridge.service.directory.lifecycle import ProfileChanges
from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.service.directory.reads import DirectoryReader
from scimbridge.store.tables import audit_events
from scimbridge.store.tables import users

from .api_support import ApiClient
from .api_support import api_token
from .api_support import build_app
from .api_support import database_of
from .api_support import directory_of
from .lifecycle_support import BROWSER
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import queued_emails

TOKEN_NAME = "hr-script"
UNTIL = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def two_apps(tmp_path: Path) -> Iterator[tuple[Flask, Flask]]:
    through_api = build_app(f"sqlite:///{tmp_path / 'api.db'}")
    direct = build_app(f"sqlite:///{tmp_path / 'direct.db'}")
    yield next(through_api), next(direct)
    for generator in (through_api, direct):
        generator.close()


def _without_ids(value: Any) -> Any:
    return json.loads(_UUID.sub("<id>", json.dumps(value, sort_keys=True, default=str)))


def snapshot(app: Flask) -> dict[str, Any]:
    """What an action leaves behind, ids aside (they are random)."""
    database = database_of(app)
    reader: DirectoryReader = app.extensions["scimbridge_api"].reader
    with database.read() as conn:
        rows = conn.execute(
            select(
                users.c.user_name, users.c.status, users.c.password_change_required, users.c.doc
            ).order_by(users.c.pk)
        ).all()
        events = conn.execute(select(audit_events).order_by(audit_events.c.pk)).all()
    listed = reader.list_users(limit=100).items
    return _without_ids(
        {
            "users": [tuple(row) for row in rows],
            "roles": [(view.user_name, view.role, view.role_until) for view in listed],
            "audit": [
                (
                    event.actor_type,
                    event.actor_id,
                    event.actor_name,
                    event.action,
                    event.target_type,
                    event.target_name,
                    event.changes,
                )
                for event in events
            ],
            "emails": [
                (
                    email.template,
                    email.to,
                    {k: v for k, v in email.context.items() if k not in ("link", "expires")},
                )
                for email in queued_emails(database)
            ],
        }
    )


ApiAction = Callable[[ApiClient, dict[str, str]], Any]
ServiceAction = Callable[[UserDirectory, dict[str, str]], Any]
Step = tuple[ApiAction, ServiceAction]

ACTOR = Actor("api", TOKEN_NAME, TOKEN_NAME)


def _remember(ids: dict[str, str], name: str, value: str) -> None:
    ids[name] = value


STEPS: list[Step] = [
    (
        lambda api, ids: _remember(
            ids,
            "ada",
            api.post("/invitations", {"email": "ada@example.com", "role": "manager"}).get_json()[
                "id"
            ],
        ),
        lambda d, ids: _remember(ids, "ada", d.invite("ada@example.com", "manager", ACTOR)),
    ),
    (
        lambda api, ids: _remember(
            ids,
            "bob",
            api.post(
                "/users",
                {
                    "email": "bob@example.com",
                    "given_name": "Bob",
                    "family_name": "Builder",
                    "role": "admin",
                    "temporary_password": STRONG_PASSWORD,
                },
            ).get_json()["id"],
        ),
        lambda d, ids: _remember(
            ids,
            "bob",
            d.create_user(
                "bob@example.com", "Bob", "Builder", "admin", STRONG_PASSWORD, ACTOR
            ).user_id,
        ),
    ),
    (
        lambda api, ids: api.patch(
            f"/users/{ids['bob']}",
            {
                "email": "bob2@example.com",
                "title": "Engineer",
                "department": "R&D",
                "phone_numbers": [{"value": "+1 555 0100", "type": "work"}],
            },
        ),
        lambda d, ids: d.update_profile(
            ids["bob"],
            ProfileChanges(
                email="bob2@example.com",
                title="Engineer",
                department="R&D",
                phone_numbers=[{"value": "+1 555 0100", "type": "work"}],
            ),
            ACTOR,
        ),
    ),
    (
        lambda api, ids: api.put(
            f"/users/{ids['bob']}/role", {"role": "member", "until": UNTIL.isoformat()}
        ),
        lambda d, ids: d.change_role(ids["bob"], "member", ACTOR, until=UNTIL),
    ),
    (
        lambda api, ids: api.post(f"/users/{ids['ada']}/suspend"),
        lambda d, ids: d.suspend(ids["ada"], ACTOR),
    ),
    (
        lambda api, ids: api.post(f"/users/{ids['ada']}/reactivate"),
        lambda d, ids: d.reactivate(ids["ada"], ACTOR),
    ),
    (
        lambda api, ids: api.post(f"/invitations/{ids['ada']}/resend"),
        lambda d, ids: d.resend_invitation(ids["ada"], ACTOR),
    ),
    (
        lambda api, ids: api.post(f"/users/{ids['bob']}/password-reset"),
        lambda d, ids: d.trigger_password_reset(ids["bob"], ACTOR),
    ),
    (
        lambda api, ids: api.delete(f"/users/{ids['bob']}/sessions"),
        lambda d, ids: d.end_all_sessions(ids["bob"], ACTOR),
    ),
    (
        lambda api, ids: api.post("/invitations/batch", {"invitations": [{"email": "c@x.org"}]}),
        lambda d, ids: d.invite("c@x.org", "member", ACTOR),
    ),
    (
        lambda api, ids: api.delete(f"/invitations/{ids['ada']}"),
        lambda d, ids: d.cancel_invitation(ids["ada"], ACTOR),
    ),
    (
        lambda api, ids: api.delete(f"/users/{ids['bob']}"),
        lambda d, ids: d.delete(ids["bob"], ACTOR),
    ),
]


def test_api_actions_match_the_lifecycle_service_step_by_step(
    two_apps: tuple[Flask, Flask],
) -> None:
    through_api, direct = two_apps
    api = ApiClient(through_api.test_client(), api_token(through_api, TOKEN_NAME))
    service = directory_of(direct)
    api_ids: dict[str, str] = {}
    direct_ids: dict[str, str] = {}
    for number, (by_api, by_service) in enumerate(STEPS):
        response = by_api(api, api_ids)
        assert response is None or response.status_code < 300, (number, response.get_json())
        by_service(service, direct_ids)
        if number == 2:
            # Sessions to end later, opened the same way in both.
            for app in (through_api, direct):
                directory_of(app).login("bob2@example.com", STRONG_PASSWORD, BROWSER)
        assert snapshot(through_api) == snapshot(direct), f"after step {number}"
    assert len(snapshot(through_api)["audit"]) >= len(STEPS)
