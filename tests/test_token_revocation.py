"""A revoked token is refused at once by every process serving the database.

Each process trusts a token it checked a moment ago without reading the database again, but
only while no revocation happened meanwhile: on SQLite every revocation moves a mark beside
the database file, which each check compares first; on PostgreSQL every check reads the
database.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from scimbridge.service.clients.tokens import TokenService
from scimbridge.store import tokens as token_store
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .services import LiveServer


@pytest.fixture
def two_processes(database_url: str) -> Iterator[tuple[TokenService, TokenService]]:
    """Two token services on one database, each with its own connections and cache."""
    first, second = Database(database_url), Database(database_url)
    upgrade(first)
    yield TokenService(first), TokenService(second)
    first.dispose()
    second.dispose()


@pytest.fixture
def database_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each token look-up in the database (by digest)."""
    reads: list[str] = []
    find: Callable[..., Any] = token_store.find_token

    def counted(conn: Any, token_hash: str) -> Any:
        reads.append(token_hash)
        return find(conn, token_hash)

    monkeypatch.setattr(token_store, "find_token", counted)
    return reads


def test_a_token_revoked_in_another_process_is_refused_at_once(
    two_processes: tuple[TokenService, TokenService],
) -> None:
    """The other process had just checked (and cached) the token; its next check refuses it."""
    revoking, serving = two_processes
    token = revoking.create("entra")
    kept = revoking.create("okta")
    assert serving.authenticate(token) is not None
    assert serving.authenticate(kept) is not None

    assert revoking.revoke("entra")

    assert serving.authenticate(token) is None
    assert serving.authenticate(kept) is not None
    assert revoking.authenticate(token) is None


def test_a_checked_token_is_trusted_without_a_read_until_a_revocation(
    two_processes: tuple[TokenService, TokenService],
    database_reads: list[str],
    database_url: str,
) -> None:
    """On SQLite, repeated checks read once; any revocation elsewhere makes the next read again.

    On PostgreSQL there is no mark to compare: every check reads the database.
    """
    revoking, serving = two_processes
    token = revoking.create("entra")
    other = revoking.create("leaver")
    for _ in range(3):
        assert serving.authenticate(token) is not None
    reads_before_revocation = len(database_reads)

    assert revoking.revoke("leaver")
    assert serving.authenticate(token) is not None
    assert serving.authenticate(token) is not None

    sqlite = database_url.startswith("sqlite")
    assert reads_before_revocation == (1 if sqlite else 3)
    assert len(database_reads) == reads_before_revocation + (1 if sqlite else 2)
    assert serving.authenticate(other) is None


def test_revoking_an_unknown_token_leaves_the_mark_alone(database: Database) -> None:
    """Only a revocation that deleted a token moves the mark (and costs the others a read)."""
    tokens = TokenService(database)
    path = token_store.revocation_mark_path(database)
    assert path is not None
    tokens.create("entra")

    assert not tokens.revoke("nobody")
    assert token_store.revocation_mark(path) == 0
    assert tokens.revoke("entra")
    assert token_store.revocation_mark(path) == 1


def test_a_token_revoked_from_the_command_line_is_refused_by_every_worker(
    live: LiveServer,
) -> None:
    """Every worker of the server checked the token; the command revokes it; none admits it."""
    token = live.cli("token", "create", "revoked-live", "--profile", "strict").split()[-1]

    def statuses() -> list[int]:
        # A new connection each time: gunicorn hands them to its workers in turn.
        return [
            requests.get(
                f"{live.scim_url}/Users?count=1",
                headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                timeout=30,
            ).status_code
            for _ in range(24)
        ]

    assert set(statuses()) == {200}
    live.cli("token", "revoke", "revoked-live")
    assert set(statuses()) == {401}


def test_a_revocation_whose_mark_cannot_be_written_still_revokes(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The token is refused where it was revoked, and the failure is logged (SQLite)."""
    tokens = TokenService(database)
    path = token_store.revocation_mark_path(database)
    assert path is not None
    token = tokens.create("entra")
    assert tokens.authenticate(token) is not None
    # A directory where the mark file should be: appending to it fails as a read-only
    # file owned by another account would.
    os.mkdir(path)

    assert tokens.revoke("entra")

    assert tokens.authenticate(token) is None
    assert "revocation mark" in caplog.text
