"""Okta's own acceptance suites, replayed request by request over HTTP.

``okta_spec_test.json`` is the SCIM 2.0 Spec Test an OIN submission must pass (it sent
``Accept: application/scim+json; charset=utf-8`` and got 406); ``okta_crud_test.json`` is
what Okta sends while its CRUD suite acts in the Okta org, with the suite's checks in
between. Both run under every client profile, on a server of their own (the Spec Test
reads the first user of ``/Users`` and needs it whole), and the stored state is read back
from the database, not only from the answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from scimbridge.domain.lifecycle import UserStatus
from scimbridge.store import resources as store
from scimbridge.store.database import Database

from ..services import LiveServer
from ..services import live_server
from .replay import ERROR_SCHEMA
from .replay import Replay
from .replay import ScimHttp
from .replay import load

PROFILES = ["strict", "entra", "okta", "generic"]
SPEC_ACCEPTS = ["application/scim+json", "application/scim+json; charset=utf-8"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of the module's own, holding one complete user before the suites start."""
    path = tmp_path_factory.mktemp("okta-suites") / "scimbridge.db"
    with live_server(f"sqlite:///{path}") as live, requests.Session() as http:
        first = ScimHttp(http, live.scim_url, live.token).post(
            "/Users",
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "existing.user@example.com",
                "name": {"givenName": "Existing", "familyName": "User"},
                "emails": [{"value": "existing.user@example.com", "type": "work", "primary": True}],
                "active": True,
            },
        )
        assert first.status == 201, first.describe()
        yield live


@pytest.fixture(scope="module")
def tokens(server: LiveServer) -> dict[str, str]:
    """One token per profile, created with the CLI."""
    made = {}
    for profile in PROFILES:
        output = server.cli("token", "create", f"okta-suite-{profile}", "--profile", profile)
        made[profile] = output.strip().splitlines()[-1]
    return made


@pytest.fixture
def database(server: LiveServer) -> Iterator[Database]:
    db = Database(server.env["SCIMBRIDGE_DATABASE_URL"])
    yield db
    db.dispose()


@pytest.fixture
def okta(server: LiveServer, tokens: dict[str, str], profile: str) -> Iterator[ScimHttp]:
    with requests.Session() as http:
        client = ScimHttp(http, server.scim_url, tokens[profile])
        yield client
        client.delete_created()


def _stored(database: Database, user_id: str) -> Any:
    with database.read() as conn:
        record = store.get(conn, "User", user_id)
    assert record is not None, f"user {user_id} is not stored"
    return record


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("accept", SPEC_ACCEPTS)
def test_okta_spec_test_passes_in_full(
    okta: ScimHttp, database: Database, server: LiveServer, accept: str
) -> None:
    """Every step of the Spec Test, with the suite's headers (and its Accept on every step)."""
    sequence = load("okta_spec_test")
    sequence["headers"] = {**sequence["headers"], "Accept": accept}
    run = Replay(okta, sequence).run()

    first = run["Test Users endpoint"]
    assert first.headers["Content-Type"] == accept
    page = first.json
    assert isinstance(page["totalResults"], int) and isinstance(page["startIndex"], int)
    user = page["Resources"][0]
    for member in ("id", "userName"):
        assert user[member]
    assert user["name"]["familyName"] and user["name"]["givenName"]
    assert user["active"] is True and user["emails"][0]["value"]

    created = run["Create Okta user with realistic values"]
    assert created.headers["Content-Type"] == "application/scim+json; charset=utf-8"
    assert created.headers["Location"].endswith(f"/scim/v2/Users/{created.json['id']}")
    record = _stored(database, created.json["id"])
    assert record.doc["userName"] == run.vars["random_user_name"]
    assert record.doc["name"]["givenName"] == run.vars["random_given_name"]
    assert record.doc["emails"][0]["value"] == run.vars["random_email"]
    assert record.status == UserStatus.ACTIVE

    for name in ("Test invalid User by ID", "Check status 404"):
        assert run[name].json["detail"]
    recreated = run["Expect failure when recreating user with same values"]
    assert recreated.json["detail"]

    # Required Test: Check status 401, sent with "Authorization: non-token".
    refused = requests.get(
        server.scim_url + '/Users?filter=userName eq "' + run.vars["random_user_name_caps"] + '"',
        headers={
            "Accept": accept,
            "Accept-Charset": "utf-8",
            "Authorization": "non-token",
            "Content-Type": "application/scim+json; charset=utf-8",
            "User-Agent": "OKTA SCIM Integration",
        },
        timeout=10,
    )
    assert refused.status_code == 401
    body = refused.json()
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == "401" and body["detail"]


@pytest.mark.parametrize("profile", PROFILES)
def test_okta_crud_test_leaves_the_user_as_okta_left_it(okta: ScimHttp, database: Database) -> None:
    """Create, update, deactivate, reactivate, reassign, unassign: each stored as sent."""
    run = Replay(okta, "okta_crud_test").run(through="Check: firstName updated")
    user_id = run.vars["user_id"]
    record = _stored(database, user_id)
    assert record.doc["name"] == {"givenName": "Updated", "familyName": "Tester"}
    assert record.doc["externalId"] == run.vars["okta_id"]
    assert record.status == UserStatus.ACTIVE

    run.run(through="Check: deactivated")
    assert _stored(database, user_id).status == UserStatus.SUSPENDED

    run.run(through="Check: reactivated and assigned")
    record = _stored(database, user_id)
    # Okta sends no password: reactivated, the user waits for an invitation to set one.
    assert record.status == UserStatus.INVITED
    assert record.doc["active"] is True
    assert record.doc["displayName"] == "Updated Tester"

    run.run()
    record = _stored(database, user_id)
    assert record.status == UserStatus.SUSPENDED
    assert record.doc["active"] is False
    # Every answer names the type the request accepted: Okta's own requests accept
    # "application/scim+json; charset=utf-8", the suite's checks plain application/scim+json.
    default_accept = run.sequence["headers"]["Accept"]
    for step in run.steps:
        accepted = step.get("headers", {}).get("Accept", default_accept)
        assert run[step["name"]].headers["Content-Type"] == accepted, step["name"]
