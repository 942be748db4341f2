"""CSRF tokens of the HTML forms, and the secret key that signs them."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from scimbridge.service.operations.secret_key import load_secret_key
from scimbridge.service.operations.secret_key import secret_key_path
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.web.csrf import CsrfSigner
from scimbridge.web.csrf import Verdict
from scimbridge.web.csrf import new_cookie_value
from scimbridge.web.csrf import usable_cookie_value
from scimbridge.web.visitor import local_path

KEY = b"k" * 48


def test_a_token_is_valid_for_its_browser_and_session() -> None:
    """The token matches the cookie value and the session it was shown in."""
    signer = CsrfSigner(KEY)
    cookie = new_cookie_value()
    assert signer.check(signer.token(cookie, None), cookie, None) is Verdict.VALID
    assert signer.check(signer.token(cookie, "s1"), cookie, "s1") is Verdict.VALID


def test_a_token_of_another_browser_or_session_is_refused() -> None:
    """Another cookie value, or another live session, makes the token worthless."""
    signer = CsrfSigner(KEY)
    cookie = new_cookie_value()
    token = signer.token(cookie, "s1")
    assert signer.check(token, new_cookie_value(), "s1") is Verdict.INVALID
    assert signer.check(token, cookie, "s2") is Verdict.INVALID
    assert signer.check(signer.token(cookie, None), cookie, "s1") is Verdict.INVALID


def test_a_token_from_an_ended_session_asks_for_a_new_login() -> None:
    """A genuine token whose session has ended is told apart from a forgery."""
    signer = CsrfSigner(KEY)
    cookie = new_cookie_value()
    assert signer.check(signer.token(cookie, "s1"), cookie, None) is Verdict.SESSION_ENDED


@pytest.mark.parametrize(
    "token", [None, "", "garbage", "x" * 600, "WyJhIiwiYiJd.AAAAAA.BBBB", "[1,2]"]
)
def test_missing_or_forged_tokens_are_refused(token: str | None) -> None:
    """Anything not signed by this server is refused."""
    cookie = new_cookie_value()
    assert CsrfSigner(KEY).check(token, cookie, None) is Verdict.INVALID


def test_tokens_signed_with_another_key_or_expired_are_refused() -> None:
    """The signature binds the token to the server's key and to a maximum age."""
    cookie = new_cookie_value()
    token = CsrfSigner(b"another key, just as long as the first one").token(cookie, None)
    assert CsrfSigner(KEY).check(token, cookie, None) is Verdict.INVALID
    own = CsrfSigner(KEY).token(cookie, None)
    assert CsrfSigner(KEY).check(own, cookie, None, max_age=-1) is Verdict.INVALID


def test_only_well_formed_cookie_values_are_used() -> None:
    """A cookie value that scimbridge could not have set is replaced, not trusted."""
    assert usable_cookie_value(new_cookie_value())
    for value in (None, "", "short", "é" * 43, "a" * 44, "a" * 42 + "!"):
        assert not usable_cookie_value(value)
    signer = CsrfSigner(KEY)
    assert signer.check(signer.token("short", None), "short", None) is Verdict.INVALID


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/account", "/account"),
        ("/account?tab=1", "/account?tab=1"),
        ("//evil.example", None),
        ("/\\evil.example", None),
        ("https://evil.example/", None),
        ("javascript:alert(1)", None),
        ("account", None),
        ("/a\r\nSet-Cookie: x=1", None),
        ("", None),
        (None, None),
    ],
)
def test_next_is_a_local_path_or_nothing(target: str | None, expected: str | None) -> None:
    """Only paths of this site are followed after login."""
    assert local_path(target) == expected


def test_a_configured_secret_key_is_used_as_is(tmp_path: Path) -> None:
    """``secret_key`` wins, and no file is written."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", secret_key="s" * 40)
    database = Database(settings.database_url)
    assert load_secret_key(settings, database) == b"s" * 40
    assert not (tmp_path / "secret_key").exists()
    database.dispose()


def test_a_generated_key_lives_beside_the_database_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    """Created once with mode 0600 next to the SQLite file, and the same for every process."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'data' / 'db.sqlite'}")
    database = Database(settings.database_url)
    path = secret_key_path(database, settings.data_dir)
    assert path == (tmp_path / "data" / "secret_key").resolve()
    keys: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: keys.append(load_secret_key(settings, database)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys[0]) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".secret_key")] == []
    database.dispose()
