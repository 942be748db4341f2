"""Active Directory for real: scimbridge against a private Samba AD DC over LDAPS.

Users provisioned Entra-style log on to AD with the password they set through scimbridge;
suspension flips only ACCOUNTDISABLE; managers follow renames and deletes; logon names obey
the sAMAccountName policy; refusals show where they happen; an outage loses no password.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scimbridge.adapters.ldap import LdapDirectory
from scimbridge.adapters.ldap import LdapUnavailable
from scimbridge.adapters.ldap import dn_key
from scimbridge.adapters.ldap import load_attribute_map
from scimbridge.adapters.ldap.entries import sam_account_name
from scimbridge.domain.lifecycle import Actor
from scimbridge.service.ldap.reconcile import LdapReconciler
from scimbridge.settings import LdapSettings
from scimbridge.store import ldap_entries
from scimbridge.store.tables import jobs
from scimbridge.worker import ldap_sync_handler

from .ad_server import SambaDc
from .ad_support import AD_PASSWORD
from .ad_support import OTHER_AD_PASSWORD
from .ad_support import THIRD_AD_PASSWORD
from .ad_support import AdSyncEnv
from .ad_support import ad_env
from .ad_support import ad_settings
from .ad_support import bind_result
from .ad_support import samba  # noqa: F401  (the session's DC fixture)
from .admin_support import PageClient
from .lifecycle_support import BROWSER
from .lifecycle_support import latest_email
from .lifecycle_support import use_fast_password_hashing

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ADMIN = Actor("admin", "admin-1", "alice.admin")
ACCOUNTDISABLE = 2
DONT_EXPIRE_PASSWORD = 0x10000
POLICY_REFUSED = "plainlowercasewordsonly"
"""Long and uncommon enough for scimbridge, too simple for AD's complexity rules."""


@pytest.fixture
def env(samba: SambaDc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AdSyncEnv]:  # noqa: F811
    use_fast_password_hashing(monkeypatch)
    environment = ad_env(samba, tmp_path)
    yield environment
    environment.close()
    if samba.process is None:
        samba.start()  # a test that stopped the DC must not leave the session without it


def entra_user(user_name: str, **extra: Any) -> dict[str, Any]:
    """A user as Microsoft Entra ID provisions it (no password; enterprise extension)."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": user_name,
        "externalId": user_name.split("@")[0],
        "active": True,
        "displayName": user_name.split("@")[0].replace(".", " ").title(),
        "name": {"givenName": "Test", "familyName": user_name.split("@")[0]},
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        ENTERPRISE: {"department": "Research"},
        **extra,
    }


def create(env: AdSyncEnv, body: dict[str, Any]) -> str:
    response = env.scim.post("/Users", body)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


def patch(env: AdSyncEnv, user_id: str, *operations: dict[str, Any]) -> Any:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": list(operations),
    }
    return env.scim.patch(f"/Users/{user_id}", body)


def flags(env: AdSyncEnv, user_name: str) -> int:
    found = env.read(env.user_dn(user_name), "userAccountControl")
    assert found is not None, f"no entry for {user_name}"
    return int(found["userAccountControl"][0])


def accept_invitation(env: AdSyncEnv, email: str, password: str) -> Any:
    link = latest_email(env.database, "invitation", email)
    return env.submit_form(link.path, {"new_password": password, "confirmation": password})


def reconcile(env: AdSyncEnv, *, dry_run: bool) -> Any:
    handler = ldap_sync_handler(env.settings, env.database)
    with LdapDirectory(env.ldap) as directory:
        return LdapReconciler(env.database, directory, handler.builder).run(dry_run=dry_run)


def password_jobs(env: AdSyncEnv) -> list[tuple[str, dict[str, Any]]]:
    with env.database.read() as conn:
        rows = conn.execute(select(jobs.c.status, jobs.c.payload).where(jobs.c.kind == "ldap"))
        return [(row.status, row.payload) for row in rows if row.payload.get("op") == "password"]


# -- passwords and logging on ------------------------------------------------------------------


def test_an_invited_entra_user_logs_on_to_ad_with_the_password_set_in_scimbridge(
    env: AdSyncEnv,
) -> None:
    """Created disabled; the invitation's password binds within seconds; 533 when suspended."""
    email = "grace.hopper@ad.example.com"
    user_id = create(env, entra_user(email))
    env.drain()
    assert flags(env, email) & ACCOUNTDISABLE  # no password yet: disabled, as AD's tools do
    accepted = accept_invitation(env, email, AD_PASSWORD)
    assert accepted.status_code == 303, accepted.get_data(as_text=True)
    started = time.monotonic()
    env.drain()  # the worker enables the account: its password is there now
    assert bind_result(env.dc, email, AD_PASSWORD) == (True, "")
    assert time.monotonic() - started < 5
    assert not password_jobs(env)  # written from the request: nothing kept in the outbox

    # An AD administrator's flag survives suspension and reactivation.
    env.admin.replace(env.user_dn(email), {"userAccountControl": [str(512 | DONT_EXPIRE_PASSWORD)]})
    assert (
        patch(env, user_id, {"op": "replace", "path": "active", "value": False}).status_code == 200
    )
    env.drain()
    assert flags(env, email) == 512 | DONT_EXPIRE_PASSWORD | ACCOUNTDISABLE
    ok, message = bind_result(env.dc, email, AD_PASSWORD)
    assert not ok and "data 533" in message
    assert (
        patch(env, user_id, {"op": "replace", "path": "active", "value": True}).status_code == 200
    )
    env.drain()
    assert flags(env, email) == 512 | DONT_EXPIRE_PASSWORD
    assert bind_result(env.dc, email, AD_PASSWORD)[0]

    # An admin's reset: the user sets a new password through the emailed link.
    env.directory_service.trigger_password_reset(user_id, ADMIN, BROWSER)
    link = latest_email(env.database, "password_reset", email)
    reset = env.submit_form(
        link.path, {"new_password": OTHER_AD_PASSWORD, "confirmation": OTHER_AD_PASSWORD}
    )
    assert reset.status_code == 303, reset.get_data(as_text=True)
    assert bind_result(env.dc, email, OTHER_AD_PASSWORD)[0]
    ok, message = bind_result(env.dc, email, AD_PASSWORD)
    assert not ok and "data 52e" in message

    # Self-service change, then a SCIM password.
    env.directory_service.change_password(user_id, OTHER_AD_PASSWORD, THIRD_AD_PASSWORD, BROWSER)
    assert bind_result(env.dc, email, THIRD_AD_PASSWORD)[0]
    scim_password = "Scim-Pass-2026-orbit"
    replaced = patch(env, user_id, {"op": "replace", "path": "password", "value": scim_password})
    assert replaced.status_code == 200
    assert bind_result(env.dc, email, scim_password)[0]
    env.drain()
    assert reconcile(env, dry_run=True).differences == []


def test_a_forced_change_at_first_login_reaches_ad(env: AdSyncEnv) -> None:
    """An admin-created user with a temporary password: both passwords reach AD in turn."""
    email = "temporary.user@ad.example.com"
    created = env.directory_service.create_user(
        email, "Temporary", "User", "member", "Temp-Pass-2026-one", ADMIN
    )
    env.drain()  # the temporary password waited, encrypted, behind the entry's creation
    assert bind_result(env.dc, email, "Temp-Pass-2026-one")[0]
    assert all("secret" not in payload for _, payload in password_jobs(env))
    env.directory_service.change_password(
        created.user_id, "Temp-Pass-2026-one", AD_PASSWORD, BROWSER
    )
    assert bind_result(env.dc, email, AD_PASSWORD)[0]


def test_a_password_ads_policy_refuses_is_shown_on_the_page_that_set_it(env: AdSyncEnv) -> None:
    """The invitation page shows AD's refusal and nothing changes; a SCIM password gets 400."""
    email = "weak.password@ad.example.com"
    user_id = create(env, entra_user(email))
    env.drain()
    refused = accept_invitation(env, email, POLICY_REFUSED)
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "password policy refused it" in page and "complexity" in page
    assert env.directory_service.account(user_id).status == "invited"  # rolled back
    assert accept_invitation(env, email, AD_PASSWORD).status_code == 303
    env.drain()
    assert bind_result(env.dc, email, AD_PASSWORD)[0]
    scim = patch(env, user_id, {"op": "replace", "path": "password", "value": POLICY_REFUSED})
    assert scim.status_code == 400
    assert scim.get_json()["scimType"] == "invalidValue"
    assert "0000052D" in scim.get_json()["detail"]
    assert bind_result(env.dc, email, AD_PASSWORD)[0]  # the old password still holds


def test_an_outage_of_the_dc_during_password_changes_loses_none(
    env: AdSyncEnv,
    samba: SambaDc,  # noqa: F811
) -> None:
    """Passwords set while the DC is down wait encrypted, then land; the secrets then leave."""
    users = {}
    for n in range(3):
        email = f"outage.{n}@ad.example.com"
        users[email] = create(env, entra_user(email))
    env.drain()
    for email in users:
        assert accept_invitation(env, email, AD_PASSWORD).status_code == 303
    env.drain()
    samba.stop()
    try:
        for n, user_id in enumerate(users.values()):
            new = f"{OTHER_AD_PASSWORD}{n}"
            env.directory_service.change_password(user_id, AD_PASSWORD, new, BROWSER)
        waiting = password_jobs(env)
        assert len(waiting) == 3
        for _, payload in waiting:
            assert payload["secret"] and OTHER_AD_PASSWORD not in str(payload)
        env.worker.run_once()  # the DC is away: the jobs wait, never parked
    finally:
        samba.start()
    env.worker._paused_until.clear()  # noqa: SLF001  (do not wait out the pause)
    env.drain()
    for n, email in enumerate(users):
        assert bind_result(env.dc, email, f"{OTHER_AD_PASSWORD}{n}")[0], email
    settled = password_jobs(env)
    assert [status for status, _ in settled] == ["done"] * 3
    assert all("secret" not in payload for _, payload in settled)


def test_an_expired_queued_password_is_dropped_and_parked(
    env: AdSyncEnv,
    samba: SambaDc,  # noqa: F811
) -> None:
    """A password older than its time to live is never applied; its secret leaves, DC or not."""
    email = "late.password@ad.example.com"
    env.directory_service.create_user(
        email, "Late", "Password", "member", "Temp-Pass-2026-two", ADMIN
    )
    handler = env.worker.handlers["ldap"]
    handler.cipher.ttl_seconds = 0  # type: ignore[attr-defined]
    time.sleep(1.1)
    samba.stop()
    try:
        env.worker.run_once()
        [(status, payload)] = password_jobs(env)
        assert status == "failed" and "secret" not in payload
    finally:
        samba.start()
    env.worker._paused_until.clear()  # noqa: SLF001
    env.worker.run_once()  # the user's entry: created disabled, without that password
    assert flags(env, email) & ACCOUNTDISABLE
    assert not bind_result(env.dc, email, "Temp-Pass-2026-two")[0]


# -- manager ---------------------------------------------------------------------------------


def test_the_manager_is_the_managers_entry_through_renames_removal_and_delete(
    env: AdSyncEnv,
) -> None:
    """The manager is the manager's DN; it follows a rename and goes with a removal or delete."""
    boss = create(env, entra_user("the.boss@ad.example.com"))
    manager = {"value": boss, "$ref": f"http://scim.test/scim/v2/Users/{boss}"}
    report = create(
        env, entra_user("the.report@ad.example.com", **{ENTERPRISE: {"manager": manager}})
    )
    env.drain()
    report_dn = env.user_dn("the.report@ad.example.com")
    [manager_dn] = (env.read(report_dn, "manager") or {})["manager"]
    assert dn_key(manager_dn) == dn_key(env.user_dn("the.boss@ad.example.com"))
    renamed = patch(
        env, boss, {"op": "replace", "path": "userName", "value": "big.boss@ad.example.com"}
    )
    assert renamed.status_code == 200
    env.drain()
    [manager_dn] = (env.read(report_dn, "manager") or {})["manager"]
    assert dn_key(manager_dn) == dn_key(env.user_dn("big.boss@ad.example.com"))
    removed = patch(env, report, {"op": "remove", "path": f"{ENTERPRISE}:manager"})
    assert removed.status_code == 200
    env.drain()
    assert env.read(report_dn, "manager") == {}
    again = patch(env, report, {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": manager})
    assert again.status_code == 200
    env.drain()
    assert (env.read(report_dn, "manager") or {}).get("manager")
    assert env.scim.delete(f"/Users/{boss}").status_code == 204
    env.drain()
    assert env.read(report_dn, "manager") == {}
    assert reconcile(env, dry_run=True).differences == []


# -- sAMAccountName -------------------------------------------------------------------------------


def test_logon_names_are_unique_short_and_never_built_in(env: AdSyncEnv) -> None:
    """30 userNames sharing 20 characters, and administrator@…, all land with distinct names."""
    names = [f"identical.prefix.of.twenty.{n}@corp.example.com" for n in range(30)]
    for name in names:
        env.scim.post("/Users", entra_user(name))
    # Outside the realm's UPN suffix: administrator@ad.example.com is the built-in account's
    # implied UPN, which AD refuses whatever the sAMAccountName (parked, see the next test).
    create(env, entra_user("administrator@corp.example.com"))
    group = env.scim.post(
        "/Groups",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Domain Users"},
    )
    assert group.status_code == 201
    env.drain(timeout=60)
    assert env.ldap.users_dn and env.ldap.groups_dn
    found = dict(
        env.admin.search(env.ldap.users_dn, "(objectClass=user)", ["sAMAccountName"], scope="one")
    )
    logon_names = [values["sAMAccountName"][0] for values in found.values()]
    assert len(logon_names) == 31 == len({name.lower() for name in logon_names})
    assert all(len(name) <= 20 for name in logon_names)
    assert "administrator" not in {name.lower() for name in logon_names}
    [group_name] = env.read(env.group_dn("Domain Users"), "sAMAccountName")["sAMAccountName"]  # type: ignore[index]
    assert group_name.startswith("Domain Users-") and not group_name.startswith("$")


def test_a_taken_logon_name_is_parked_at_once_and_shown(env: AdSyncEnv) -> None:
    """AD's "already in use" parks the job with its message; the user's later jobs go on."""
    first = create(env, entra_user("same.name@ad.example.com"))
    env.drain()
    second = create(env, entra_user("same.name@other.example.com"))
    env.worker.run_once()
    with env.database.read() as conn:
        rows = conn.execute(
            select(jobs.c.status, jobs.c.last_error, jobs.c.attempts).where(
                jobs.c.ordering_key == f"user:{second}", jobs.c.kind == "ldap"
            )
        ).all()
    [(status, error, attempts)] = rows
    assert status == "failed" and attempts == 1
    assert "already in use" in error and "same.name" in error
    # The admin sees the directory's message on the Sync and mail page and the profile.
    admin_email = "sync.admin@example.com"
    env.directory_service.invite(admin_email, "admin", ADMIN)
    token = latest_email(env.database, "invitation", admin_email).token
    env.directory_service.accept_invitation(token, AD_PASSWORD, BROWSER)
    browser = PageClient(env.app)
    browser.login(admin_email, AD_PASSWORD)
    for path in ("/admin/status", f"/admin/users/{second}"):
        page = browser.get(path).text
        assert "already in use" in page and "same.name" in page, path
    assert "Directory sync refused" in browser.get(f"/admin/users/{second}").text
    assert "Directory sync refused" not in browser.get(f"/admin/users/{first}").text
    # The user's next change is not held behind the parked job.
    fixed = patch(
        env,
        second,
        {"op": "replace", "path": "userName", "value": "same.name.two@other.example.com"},
    )
    assert fixed.status_code == 200
    env.worker.run_once()
    assert env.read(env.user_dn("same.name.two@other.example.com"), "sAMAccountName") == {
        "sAMAccountName": ["same.name.two"]
    }
    assert first


# -- reconcile and TLS ------------------------------------------------------------------------


def test_reconcile_repairs_an_out_of_band_change_comparing_only_the_disable_bit(
    env: AdSyncEnv,
) -> None:
    """0 differences after sync; a changed title and an enabled suspended account are repaired."""
    email = "reconciled.user@ad.example.com"
    user_id = create(env, entra_user(email, title="Engineer"))
    env.drain()
    assert accept_invitation(env, email, AD_PASSWORD).status_code == 303
    env.drain()
    dn = env.user_dn(email)
    env.admin.replace(dn, {"userAccountControl": [str(512 | DONT_EXPIRE_PASSWORD)]})
    assert reconcile(env, dry_run=True).differences == []  # other flags are not scimbridge's
    patch(env, user_id, {"op": "replace", "path": "active", "value": False})
    env.drain()
    env.admin.replace(dn, {"title": ["Intruder"], "userAccountControl": ["512"]})
    report = reconcile(env, dry_run=False)
    assert {(d.kind, d.detail) for d in report.differences} == {
        ("changed", "title, userAccountControl")
    }
    assert env.read(dn, "title", "userAccountControl") == {
        "title": ["Engineer"],
        "userAccountControl": [str(512 | ACCOUNTDISABLE)],
    }
    assert reconcile(env, dry_run=True).differences == []


def test_tls_is_verified_and_a_plain_bind_names_the_setting(samba: SambaDc) -> None:  # noqa: F811
    """LDAPS and StartTLS verify the CA; AD's refusal of a plain bind says what to set."""
    LdapDirectory(ad_settings(samba)).check()
    LdapDirectory(ad_settings(samba, url=samba.ldap_url, start_tls=True)).check()
    with pytest.raises(LdapUnavailable, match=r"ldap\.start_tls"):
        LdapDirectory(ad_settings(samba, url=samba.ldap_url)).check()
    with pytest.raises(LdapUnavailable):
        LdapDirectory(ad_settings(samba, ca_file=None)).check()  # the system CAs do not know it
    assert isinstance(ad_settings(samba), LdapSettings)


def test_the_policy_is_configurable(tmp_path: Path) -> None:
    """A map may shorten names and reserve its own; the shipped map reserves the built-ins."""
    shipped = load_attribute_map("activedirectory").sam_account_name
    assert "krbtgt" in shipped.reserved
    assert sam_account_name("guest@x", shipped).startswith("guest-")


def test_an_entry_found_without_a_record_keeps_its_password_and_stays_enabled(
    env: AdSyncEnv,
) -> None:
    """A lost record costs a read, not a lockout: pwdLastSet tells the entry has a password."""
    email = "record.lost@ad.example.com"
    user_id = create(env, entra_user(email))
    env.drain()
    assert accept_invitation(env, email, AD_PASSWORD).status_code == 303
    env.drain()
    assert not flags(env, email) & ACCOUNTDISABLE
    with env.database.write() as conn:
        ldap_entries.forget_all(conn)
    retitled = patch(env, user_id, {"op": "replace", "path": "title", "value": "Admiral"})
    assert retitled.status_code == 200
    env.drain()
    assert env.read(env.user_dn(email), "title") == {"title": ["Admiral"]}
    assert not flags(env, email) & ACCOUNTDISABLE
    assert bind_result(env.dc, email, AD_PASSWORD)[0]
