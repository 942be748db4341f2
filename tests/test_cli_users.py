"""``scimbridge users …``, ``scimbridge audit`` and API tokens on the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from click.testing import Result

from scimbridge.cli.main import main
from scimbridge.domain.lifecycle import Actor
from scimbridge.domain.lifecycle import RequestInfo
from scimbridge.service.directory.lifecycle import UserDirectory
from scimbridge.service.directory.roles import load_roles
from scimbridge.settings import Settings
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .lifecycle_support import ROLES_FILE
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import audit_rows
from .lifecycle_support import queued_emails


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A migrated store: the commands refuse to create one (only ``db upgrade`` does)."""
    created = f"sqlite:///{tmp_path / 'scimbridge.db'}"
    store = Database(created)
    upgrade(store)
    store.dispose()
    return created


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        list(args),
        env={"SCIMBRIDGE_DATABASE_URL": url, "SCIMBRIDGE_ROLES__FILE": str(ROLES_FILE)},
    )


def ok(url: str, *args: str) -> str:
    result = run(url, *args)
    assert result.exit_code == 0, result.output
    return result.output


@contextmanager
def database(url: str) -> Iterator[Database]:
    found = Database(url)
    try:
        upgrade(found)
        yield found
    finally:
        found.dispose()


def emails(url: str, template: str, to: str | None = None) -> list[str]:
    with database(url) as db:
        return [email.to for email in queued_emails(db, template, to)]


def events(url: str, action: str) -> list[Any]:
    with database(url) as db:
        return audit_rows(db, action)


def test_create_prints_the_temporary_password_last_and_show_finds_the_user(url: str) -> None:
    output = ok(url, "users", "create", "ada@example.com", "--given-name", "Ada", "--role", "admin")
    password = output.strip().splitlines()[-1]
    assert len(password) >= 12
    shown = ok(url, "users", "show", "ADA@example.com")
    assert "ada@example.com" in shown and "admin" in shown and "active" in shown
    assert password not in shown
    as_json = json.loads(ok(url, "users", "show", "ada@example.com", "--json"))
    assert as_json["role"] == "admin" and as_json["given_name"] == "Ada"
    assert as_json == json.loads(ok(url, "users", "show", as_json["id"], "--json"))
    [event] = events(url, "user.created")
    assert event.actor_type == "cli" and event.actor_name == "scimbridge users create"


def test_list_shows_a_table_and_json_with_filters(url: str) -> None:
    ok(url, "users", "create", "ada@example.com", "--role", "manager")
    ok(url, "users", "invite", "bob@example.com", "carol@example.com")
    table = ok(url, "users", "list").splitlines()
    assert table[0].split() == ["ID", "EMAIL", "NAME", "STATUS", "ROLE", "LAST", "LOGIN"]
    assert len(table) == 5 and table[-1] == "(1-3 of 3)"
    invited = json.loads(ok(url, "users", "list", "--status", "invited", "--json"))
    assert [u["email"] for u in invited["items"]] == ["bob@example.com", "carol@example.com"]
    managers = json.loads(ok(url, "users", "list", "--role", "manager", "--json"))
    assert [u["email"] for u in managers["items"]] == ["ada@example.com"]
    found = json.loads(ok(url, "users", "list", "--search", "CAROL", "--json"))
    assert found["total"] == 1
    refused = run(url, "users", "list", "--role", "owner")
    assert refused.exit_code == 1 and "no role named 'owner'" in refused.output


def test_invite_reports_each_address_and_fails_when_one_is_refused(url: str) -> None:
    ok(url, "users", "invite", "ada@example.com")
    result = run(url, "users", "invite", "bob@example.com", "ada@example.com", "not-an-email")
    assert result.exit_code == 1
    assert "bob@example.com: invited" in result.output
    assert "ada@example.com: not invited: ada@example.com already belongs to a user" in (
        result.output
    )
    assert "not-an-email: not invited:" in result.output
    assert "not a valid email address" in result.output
    sent = emails(url, "invitation")
    assert sent == ["ada@example.com", "bob@example.com"]


def test_suspend_reactivate_reset_and_delete(url: str) -> None:
    ok(url, "users", "create", "ada@example.com")
    assert ok(url, "users", "suspend", "ada@example.com").strip() == "ada@example.com: suspended"
    refused = run(url, "users", "reset-password", "ada@example.com")
    assert refused.exit_code == 1 and "reactivate the user" in refused.output
    assert ok(url, "users", "reactivate", "ada@example.com").strip() == "ada@example.com: active"
    assert "reset link sent" in ok(url, "users", "reset-password", "ada@example.com")
    assert emails(url, "password_reset", "ada@example.com")
    unconfirmed = run(url, "users", "delete", "ada@example.com")
    assert unconfirmed.exit_code == 1
    assert ok(url, "users", "delete", "ada@example.com", "--yes").strip() == (
        "ada@example.com: deleted"
    )
    missing = run(url, "users", "show", "ada@example.com")
    assert missing.exit_code == 1 and "no user" in missing.output


def test_sessions_are_listed_and_ended(url: str) -> None:
    ok(url, "users", "create", "bob@example.com")
    settings = Settings(database_url=url, roles={"file": ROLES_FILE})
    browser = RequestInfo(client_address="192.0.2.7", user_agent="Firefox")
    with database(url) as db:
        directory = UserDirectory(db, settings, load_roles(ROLES_FILE))
        directory.create_user(
            "ada@example.com", None, None, "member", STRONG_PASSWORD, Actor("cli")
        )
        first = directory.login("ada@example.com", STRONG_PASSWORD, browser)
        directory.login("ada@example.com", STRONG_PASSWORD, browser)
    listing = json.loads(ok(url, "users", "sessions", "ada@example.com", "--json"))["items"]
    assert len(listing) == 2 and listing[0]["client_address"] == "192.0.2.7"
    table = ok(url, "users", "sessions", "ada@example.com")
    assert "192.0.2.7" in table and "Firefox" in table
    ok(url, "users", "sessions", "ada@example.com", "--end", first.session_id)
    unknown = run(url, "users", "sessions", "ada@example.com", "--end", first.session_id)
    assert unknown.exit_code == 1
    assert "1 session(s) ended" in ok(url, "users", "sessions", "ada@example.com", "--end-all")
    assert ok(url, "users", "sessions", "bob@example.com", "--json") == '{\n  "items": []\n}\n'


def test_audit_filters_and_prints_json(url: str) -> None:
    ok(url, "users", "invite", "ada@example.com", "bob@example.com")
    ok(url, "users", "suspend", "bob@example.com")
    table = ok(url, "audit").splitlines()
    assert table[0].split() == ["AT", "ACTOR", "ACTION", "TARGET", "CHANGES"]
    assert "user.suspended" in table[1] and table[-1] == "(3 of 3)"
    about_bob = json.loads(ok(url, "audit", "--user", "bob@example.com", "--json"))
    assert [e["action"] for e in about_bob["items"]] == ["user.suspended", "user.invited"]
    suspended = json.loads(ok(url, "audit", "--action", "user.suspended", "--json"))
    assert suspended["total"] == 1
    assert suspended["items"][0]["actor"]["name"] == "scimbridge users suspend"
    ok(url, "users", "delete", "bob@example.com", "--yes")
    deleted = json.loads(ok(url, "audit", "--user", "bob@example.com", "--json"))
    assert [e["action"] for e in deleted["items"]][0] == "user.deleted"
    none_later = json.loads(ok(url, "audit", "--since", "2999-01-01", "--json"))
    assert none_later["total"] == 0
    bad = run(url, "audit", "--since", "yesterday")
    assert bad.exit_code == 2 and "ISO 8601" in bad.output


def test_api_tokens_are_created_with_scopes_and_listed_with_kind(url: str) -> None:
    output = ok(
        url,
        "token",
        "create",
        "hr",
        "--kind",
        "api",
        "--scope",
        "users:read",
        "--scope",
        "audit:read",
    )
    assert "scopes audit:read users:read" in output
    ok(url, "token", "create", "okta", "--profile", "okta")
    listing = [line.split("\t")[:3] for line in ok(url, "token", "list").splitlines()]
    assert listing == [["hr", "api", "audit:read users:read"], ["okta", "scim", "okta"]]
    no_scope = run(url, "token", "create", "x", "--kind", "api")
    assert no_scope.exit_code == 2 and "at least one --scope" in no_scope.output
    scim_scope = run(url, "token", "create", "y", "--scope", "users:read")
    assert scim_scope.exit_code == 2
    unknown = run(url, "token", "create", "z", "--kind", "api", "--scope", "users:admin")
    assert unknown.exit_code == 2
