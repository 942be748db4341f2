"""Helpers for the admin User Directory tests: an app with roles, people to log in as, forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from scimbridge.domain.lifecycle import Actor
from scimbridge.service.directory.lifecycle import ProfileChanges
from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.store.database import Database

from .lifecycle_support import BROWSER
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import csrf_token
from .lifecycle_support import latest_email

SETUP = Actor("cli", None, "test set-up")

_LOCATION_PATH = re.compile(r"^https?://[^/]+")


def location(response: TestResponse) -> str:
    """Return where a redirect leads, as a path on this site."""
    return _LOCATION_PATH.sub("", response.headers["Location"])


@dataclass
class Directory:
    """The app under test and its lifecycle service, to set up users and read the outcome."""

    app: Flask
    database: Database

    @property
    def service(self) -> UserDirectory:
        found: UserDirectory = self.app.extensions["scimbridge"].directory
        return found

    def active_user(self, email: str, role: str = "member", **names: str) -> str:
        """Create a user who has accepted their invitation (password ``STRONG_PASSWORD``)."""
        user_id = self.service.invite(email, role, SETUP)
        token = latest_email(self.database, "invitation", email).token
        self.service.accept_invitation(token, STRONG_PASSWORD, BROWSER)
        if names:
            self.service.update_profile(user_id, ProfileChanges(**names), SETUP)
        return user_id

    def admin(self, email: str = "ada.admin@example.com") -> str:
        """Create an active administrator (password ``STRONG_PASSWORD``)."""
        return self.active_user(email, "admin")

    def status(self, user_id: str) -> str:
        return self.service.account(user_id).status


class PageClient:
    """A browser on the Flask test client: keeps cookies, sends each form's CSRF token."""

    def __init__(self, app: Flask) -> None:
        self.client: FlaskClient = app.test_client()
        self._token: str | None = None

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, **kwargs)

    def token(self) -> str:
        """Return a CSRF token of this browser's current session (from the login page)."""
        if self._token is None:
            page = self.get("/password/forgot").text
            self._token = csrf_token(page)
        return self._token

    def post(self, path: str, data: dict[str, str] | None = None) -> TestResponse:
        return self.client.post(path, data={**(data or {}), "csrf_token": self.token()})

    def post_without_token(self, path: str, data: dict[str, str] | None = None) -> TestResponse:
        return self.client.post(path, data=data or {})

    def login(self, email: str, password: str = STRONG_PASSWORD) -> TestResponse:
        response = self.post("/login", {"identifier": email, "password": password})
        assert response.status_code == 303, response.text
        # The form token names the session it was shown in: a new session needs a new one.
        self._token = None
        return response
