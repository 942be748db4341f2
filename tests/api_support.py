"""Helpers for System API tests: an app with the project's roles, API tokens, a JSON client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scimbridge.app import create_app
from scimbridge.service.clients.tokens import SCOPES
from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .conftest import make_settings
from .lifecycle_support import ROLES_FILE

PROBLEM = "application/problem+json"
PROBLEMS = "https://scimbridge.dev/problems/"


class ApiClient:
    """A Flask test client for ``/api/v1`` with a bearer token on every call."""

    def __init__(self, client: FlaskClient, token: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

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


def api_token(app: Flask, name: str, *scopes: str) -> str:
    """Create an API token with these scopes (all of them when none are named)."""
    token: str = app.extensions["scimbridge"].tokens.create(
        name, kind="api", scopes=scopes or SCOPES
    )
    return token


def directory_of(app: Flask) -> UserDirectory:
    found: UserDirectory = app.extensions["scimbridge"].directory
    return found


def database_of(app: Flask) -> Database:
    found: Database = app.extensions["scimbridge"].database
    return found


def problem_type(response: Any) -> str:
    """Return the problem ``type`` slug of a problem response (and check its form)."""
    assert response.content_type == PROBLEM, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == response.status_code
    assert body["title"] and body["detail"]
    assert body["type"].startswith(PROBLEMS)
    return str(body["type"]).removeprefix(PROBLEMS)


def error_fields(response: Any) -> set[str]:
    """Return the fields a validation problem names."""
    return {error["field"] for error in response.get_json().get("errors", [])}


def build_app(database_url: str, **overrides: Any) -> Iterator[Flask]:
    settings: Settings = make_settings(database_url, roles={"file": ROLES_FILE}, **overrides)
    database = Database(settings.database_url)
    upgrade(database)
    try:
        yield create_app(settings, database)
    finally:
        database.dispose()


@pytest.fixture
def api_app(sqlite_url: str) -> Iterator[Flask]:
    """The app on a fresh SQLite database, with the project's roles file."""
    yield from build_app(sqlite_url)


@pytest.fixture
def api(api_app: Flask) -> ApiClient:
    """A client whose token has every scope."""
    return ApiClient(api_app.test_client(), api_token(api_app, "hr-script"))
