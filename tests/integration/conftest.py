"""Fixtures of the replays: one bearer token per client profile, HTTP sessions, replays."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ..services import LiveServer
from .replay import Replay
from .replay import ScimHttp
from .replay import load


@pytest.fixture(scope="session")
def profile_token(live: LiveServer) -> Callable[[str], str]:
    """Return a token of the given profile, created once per session with the CLI."""
    tokens: dict[str, str] = {}

    def token(profile: str) -> str:
        if profile not in tokens:
            name = f"integration-{profile}-{uuid.uuid4().hex[:8]}"
            output = live.cli("token", "create", name, "--profile", profile)
            tokens[profile] = output.strip().splitlines()[-1]
        return tokens[profile]

    return token


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http_session:
        yield http_session


@pytest.fixture
def scim_as(
    live: LiveServer, session: requests.Session, profile_token: Callable[[str], str]
) -> Iterator[Callable[[str], ScimHttp]]:
    """Return a SCIM HTTP client whose token has the given profile.

    What a test creates is deleted afterwards: the live server is shared by the session, and
    other suites (scim2-tester's) expect to find their own users on the first page of /Users.
    """
    clients: list[ScimHttp] = []

    def client(profile: str) -> ScimHttp:
        clients.append(ScimHttp(session, live.scim_url, profile_token(profile)))
        return clients[-1]

    yield client
    for each in clients:
        each.delete_created()


@pytest.fixture
def replay(scim_as: Callable[[str], ScimHttp]) -> Callable[..., Replay]:
    """Start replaying ``data/<name>.json`` with a token of ``profile``."""

    def start(name: str, profile: str, variables: dict[str, Any] | None = None) -> Replay:
        return Replay(scim_as(profile), load(name), variables)

    return start
