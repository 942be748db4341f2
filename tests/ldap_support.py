"""Helpers for LDAP sync tests: a fresh subtree per test, draining the worker, reading entries."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scimbridge.adapters.ldap import LdapDirectory
from scimbridge.adapters.ldap import dn_key
from scimbridge.service.outbox.worker import OutboxWorker
from scimbridge.service.outbox.worker import RetryPolicy
from scimbridge.settings import LdapSettings
from scimbridge.settings import Settings
from scimbridge.settings import WorkerSettings
from scimbridge.store import jobs as job_store
from scimbridge.store.database import Database
from scimbridge.worker import build_worker

from .ldap_server import PLACEHOLDER_DN
from .ldap_server import SlapdServer

_subtrees = itertools.count()

USER_CLASSES = "(objectClass=inetOrgPerson)"
GROUP_CLASSES = "(objectClass=groupOfNames)"


def ldap_settings(server: SlapdServer, **overrides: Any) -> LdapSettings:
    """Settings for a subtree of the server no other test uses (created by scimbridge)."""
    base = f"ou=t{next(_subtrees)},{server.suffix}"
    values: dict[str, Any] = {
        "url": server.url,
        "bind_dn": server.admin_dn,
        "bind_password": server.admin_password,
        "users_dn": f"ou=people,{base}",
        "groups_dn": f"ou=groups,{base}",
        "connect_timeout_seconds": 1.0,
        "timeout_seconds": 5.0,
        **overrides,
    }
    return LdapSettings(**values)


def fast_worker_settings() -> WorkerSettings:
    """Retries within a test's patience."""
    return WorkerSettings(
        backoff_base_seconds=0.05, backoff_max_seconds=0.2, poll_interval_seconds=0.02
    )


def worker_for(settings: Settings, database: Database) -> OutboxWorker:
    """Return the worker scimbridge runs, with retries fast enough for a test."""
    worker = build_worker(settings, database)
    worker.policy = RetryPolicy(max_attempts=5, base_seconds=0.05, max_seconds=0.2)
    return worker


def pending_jobs(database: Database, kind: str = "ldap") -> int:
    """Count the jobs of a kind not done yet (failed ones included)."""
    with database.read() as conn:
        return sum(
            count.count
            for count in job_store.count_jobs(conn)
            if count.kind == kind and count.status != "done"
        )


def drain(worker: OutboxWorker, database: Database, timeout: float = 30.0) -> None:
    """Run the worker until no LDAP job is pending; fail on a parked one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.run_once() == 0:
            with database.read() as conn:
                infos = job_store.list_jobs(conn, kind="ldap", limit=10_000)
            failed = [info for info in infos if info.status == "failed"]
            assert not failed, [info.last_error for info in failed]
            if not any(info.status in job_store.PENDING for info in infos):
                return
            time.sleep(0.02)
    raise AssertionError("LDAP jobs still pending")


@dataclass
class DirectoryView:
    """The admin's view of one test's subtree."""

    directory: LdapDirectory
    settings: LdapSettings

    @classmethod
    def of(cls, settings: LdapSettings) -> DirectoryView:
        return cls(LdapDirectory(settings), settings)

    def users(self, *attributes: str) -> dict[str, dict[str, list[str]]]:
        """Return the user entries by DN key, with the named attributes."""
        assert self.settings.users_dn
        found = self.directory.search(
            self.settings.users_dn, USER_CLASSES, list(attributes) or ["*"], scope="one"
        )
        return {dn_key(dn): values for dn, values in found}

    def user(self, dn: str, *attributes: str) -> dict[str, list[str]] | None:
        return self.directory.read(dn, list(attributes) or ["*"])

    def groups(self) -> dict[str, set[str]]:
        """Return the group entries by DN key, with their members' DN keys (placeholder kept)."""
        assert self.settings.groups_dn
        found = self.directory.search(
            self.settings.groups_dn, GROUP_CLASSES, ["member"], scope="one"
        )
        return {
            dn_key(dn): {dn_key(member) for member in values.get("member", [])}
            for dn, values in found
        }

    def user_dn(self, user_name: str) -> str:
        from scimbridge.adapters.ldap.names import child_dn

        assert self.settings.users_dn
        return child_dn("uid", user_name, self.settings.users_dn)

    def group_dn(self, name: str) -> str:
        from scimbridge.adapters.ldap.names import child_dn

        assert self.settings.groups_dn
        return child_dn("cn", name, self.settings.groups_dn)

    def members(self, group: str) -> set[str]:
        """Return the DN keys of a group's members (by group name), placeholder included."""
        return self.groups()[dn_key(self.group_dn(group))]

    def bind_works(self, dn: str, password: str) -> bool:
        """Whether a simple bind as ``dn`` with ``password`` succeeds."""
        from scimbridge.adapters.ldap import LdapUnavailable

        user = LdapDirectory(
            LdapSettings(**{**self.settings.model_dump(), "bind_dn": dn, "bind_password": password})
        )
        try:
            user.check()
        except LdapUnavailable:
            return False
        return True


PLACEHOLDER_KEY = dn_key(PLACEHOLDER_DN)


class LdapSyncEnv:
    """scimbridge with LDAP sync on a fresh subtree: app, SCIM client, worker, directory view."""

    def __init__(self, server: SlapdServer, database_url: str, **ldap_overrides: Any) -> None:
        from scimbridge.app import create_app
        from scimbridge.store.migrations import upgrade

        from .conftest import ScimClient
        from .conftest import make_settings

        self.server = server
        self.ldap = ldap_settings(server, **ldap_overrides)
        self.settings = make_settings(database_url, ldap=self.ldap, worker=fast_worker_settings())
        self.database = Database(self.settings.database_url)
        upgrade(self.database)
        self.app = create_app(self.settings, self.database)
        token = self.app.extensions["scimbridge"].tokens.create("idp")
        self.scim = ScimClient(self.app.test_client(), token)
        self.worker = worker_for(self.settings, self.database)
        self.view = DirectoryView.of(self.ldap)

    def drain(self, timeout: float = 30.0) -> None:
        drain(self.worker, self.database, timeout)

    def close(self) -> None:
        for handler in self.worker.handlers.values():
            close = getattr(handler, "close", None)
            if close is not None:
                close()
        self.view.directory.close()
        self.database.dispose()


@pytest.fixture
def env(slapd: SlapdServer, tmp_path: Path) -> Iterator[LdapSyncEnv]:
    """LDAP sync from a fresh SQLite store to the session's directory."""
    environment = LdapSyncEnv(slapd, f"sqlite:///{tmp_path / 'scimbridge.db'}")
    yield environment
    environment.close()
    if slapd.process is None:
        slapd.start()  # a test that stopped the directory must not leave the session without it
