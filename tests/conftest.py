"""Shared fixtures: a fresh store per test (SQLite, and PostgreSQL where asked), the app, clients.

PostgreSQL is started once per session, only when a test asks for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scimbridge.app import create_app
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .ldap_server import SlapdServer
from .ldap_server import slapd_server
from .services import LiveServer
from .services import PostgresServer
from .services import live_server
from .services import postgres_server

_database_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def slapd() -> Iterator[SlapdServer]:
    """A private OpenLDAP server for the session (started only when a test asks for it)."""
    with slapd_server() as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'scimbridge.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Give a fresh database URL: each test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scimbridge.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"test_{next(_database_names)}")


def make_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, public_url="http://scim.test", **overrides)


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url)


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = Database(settings.database_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated store, once on SQLite and once on PostgreSQL."""
    database = Database(database_url)
    upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def app(settings: Settings, database: Database) -> Flask:
    return create_app(settings, database)


@pytest.fixture
def token(app: Flask) -> str:
    tokens = app.extensions["scimbridge"].tokens
    value: str = tokens.create("tests")
    return value


class ScimClient:
    """A Flask test client that speaks SCIM: bearer token and media type set on every call."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
            headers.setdefault("Content-Type", "application/scim+json")
        return self.client.open(f"/scim/v2{path}", method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", path, body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def scim(app: Flask, token: str) -> ScimClient:
    return ScimClient(app.test_client(), token)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Scimbridge under gunicorn over real HTTP, on SQLite, shared by the session."""
    path = tmp_path_factory.mktemp("live") / "scimbridge.db"
    with live_server(f"sqlite:///{path}") as server:
        yield server


USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user_payload(user_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, **attributes}


def group_payload(display_name: str, members: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": display_name}
    if members is not None:
        body["members"] = [{"value": member} for member in members]
    return body


def patch_payload(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def created(response: Any) -> str:
    """Return the id of the resource a SCIM POST created, after checking it answered 201."""
    assert response.status_code == 201, response.json
    resource_id: str = response.json["id"]
    return resource_id
