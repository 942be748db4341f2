"""Helpers for the Active Directory tests: the session's Samba DC, scimbridge syncing to it.

Each :class:`AdSyncEnv` writes under an OU of its own, so tests share one DC.
"""

from __future__ import annotations

import itertools
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from scimbridge.adapters.ldap import LdapDirectory
from scimbridge.adapters.ldap.names import child_dn
from scimbridge.service.outbox.worker import OutboxWorker
from scimbridge.service.outbox.worker import RetryPolicy
from scimbridge.settings import LdapSettings
from scimbridge.settings import LifecycleSettings
from scimbridge.store.database import Database
from scimbridge.worker import ldap_sync_handler

from .ad_server import SambaDc
from .ad_server import samba_dc
from .ldap_support import drain
from .ldap_support import fast_worker_settings
from .lifecycle_support import ROLES_FILE

_subtrees = itertools.count()

AD_PASSWORD = "Horse-Battery-42-staple"
"""Passes scimbridge's policy and Active Directory's complexity rules."""
OTHER_AD_PASSWORD = "Lantern-Orbit-7-kayak!"
THIRD_AD_PASSWORD = "Gulls-Harbour-17-violet"

_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def samba() -> Iterator[SambaDc]:
    """The session's Samba AD DC (started on first use: its ports are fixed)."""
    with samba_dc() as dc:
        yield dc


def ad_settings(dc: SambaDc, **overrides: Any) -> LdapSettings:
    """LDAPS settings for an OU of the DC no other test uses, verified against the test CA."""
    base = f"OU=t{next(_subtrees)},{dc.suffix}"
    values: dict[str, Any] = {
        "url": dc.ldaps_url,
        "ca_file": dc.ca_file,
        "bind_dn": dc.admin_dn,
        "bind_password": dc.admin_password,
        "users_dn": f"OU=people,{base}",
        "groups_dn": f"OU=groups,{base}",
        "profile": "activedirectory",
        "connect_timeout_seconds": 1.0,
        "timeout_seconds": 10.0,
        **overrides,
    }
    return LdapSettings(**values)


def bind_result(dc: SambaDc, user: str, password: str) -> tuple[bool, str]:
    """Bind to the DC as ``user`` (a UPN or DN) over LDAPS; return success and AD's message."""
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(dc.ca_file))
    connection = ldap3.Connection(
        ldap3.Server(dc.ldaps_url, tls=tls, connect_timeout=5), user, password
    )
    try:
        ok = bool(connection.bind())
        return ok, str(connection.result.get("message") or "")
    finally:
        connection.unbind()


class AdSyncEnv:
    """scimbridge syncing to the DC: app (SCIM and pages), worker, and the admin's connection."""

    def __init__(self, dc: SambaDc, database_url: str, **ldap_overrides: Any) -> None:
        from scimbridge.app import create_app
        from scimbridge.store.migrations import upgrade

        from .conftest import ScimClient
        from .conftest import make_settings

        self.dc = dc
        self.ldap = ad_settings(dc, **ldap_overrides)
        self.settings = make_settings(
            database_url,
            ldap=self.ldap,
            worker=fast_worker_settings(),
            lifecycle=LifecycleSettings(on_scim_create="invite"),
            roles={"file": ROLES_FILE},
        )
        self.database = Database(self.settings.database_url)
        upgrade(self.database)
        self.app = create_app(self.settings, self.database)
        token = self.app.extensions["scimbridge"].tokens.create("entra")
        self.scim = ScimClient(self.app.test_client(), token)
        # Only LDAP jobs: the emailed links stay in the outbox for the tests to follow.
        self.worker = OutboxWorker(
            self.database,
            {"ldap": ldap_sync_handler(self.settings, self.database)},
            policy=RetryPolicy(max_attempts=5, base_seconds=0.05, max_seconds=0.2),
        )
        self.admin = LdapDirectory(self.ldap)

    @property
    def directory_service(self) -> Any:
        """The app's UserDirectory (lifecycle service)."""
        return self.app.extensions["scimbridge"].directory

    def drain(self, timeout: float = 30.0) -> None:
        drain(self.worker, self.database, timeout)

    def user_dn(self, user_name: str) -> str:
        assert self.ldap.users_dn
        return child_dn("cn", user_name, self.ldap.users_dn)

    def group_dn(self, name: str) -> str:
        assert self.ldap.groups_dn
        return child_dn("cn", name, self.ldap.groups_dn)

    def read(self, dn: str, *attributes: str) -> dict[str, list[str]] | None:
        return self.admin.read(dn, list(attributes) or ["*"])

    def submit_form(self, path: str, data: dict[str, str]) -> Any:
        """GET a page with a form, then POST it with its CSRF token (a browser's session)."""
        client = self.pages
        page = client.get(path)
        match = _CSRF_FIELD.search(page.get_data(as_text=True))
        assert match, f"no form on {path} ({page.status_code})"
        return client.post(path, data={**data, "csrf_token": match.group(1)})

    @property
    def pages(self) -> Any:
        if not hasattr(self, "_pages"):
            self._pages = self.app.test_client()
        return self._pages

    def close(self) -> None:
        for handler in self.worker.handlers.values():
            close = getattr(handler, "close", None)
            if close is not None:
                close()
        self.admin.close()
        self.database.dispose()


def ad_env(dc: SambaDc, tmp_path: Path, **ldap_overrides: Any) -> AdSyncEnv:
    """Return an environment on a fresh SQLite store."""
    return AdSyncEnv(dc, f"sqlite:///{tmp_path / 'scimbridge.db'}", **ldap_overrides)
