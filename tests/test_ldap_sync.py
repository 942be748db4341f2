"""LDAP sync against a real slapd: what SCIM and the lifecycle change reaches the directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from scimbridge.adapters.ldap import LdapDirectory
from scimbridge.adapters.ldap import LdapUnavailable
from scimbridge.adapters.ldap import dn_key
from scimbridge.adapters.ldap import escape_filter_value
from scimbridge.domain.lifecycle import Actor
from scimbridge.store.tables import jobs

from .conftest import created
from .conftest import group_payload
from .conftest import patch_payload
from .conftest import user_payload
from .ldap_server import SlapdServer
from .ldap_server import slapd_server
from .ldap_support import PLACEHOLDER_KEY
from .ldap_support import LdapSyncEnv
from .ldap_support import env

PASSWORD = "correct horse battery staple"
ADMIN = Actor("user", None, "admin@example.org")

__all__ = ["env"]


def keys(*dns: str) -> set[str]:
    return {dn_key(dn) for dn in dns}


@pytest.fixture
def env_on_each_database(slapd: SlapdServer, database_url: str) -> Iterator[LdapSyncEnv]:
    """LDAP sync on SQLite, then on PostgreSQL."""
    environment = LdapSyncEnv(slapd, database_url)
    yield environment
    environment.close()


def test_an_identity_provider_lifecycle_is_mirrored_exactly(
    env_on_each_database: LdapSyncEnv,
) -> None:
    """An IdP's whole sequence leaves exactly the entries and memberships scimbridge has.

    Create, group, nest, rename a group, change a userName, deactivate, reactivate, remove a
    member, delete a user and a group.
    """
    env = env_on_each_database
    scim, view = env.scim, env.view
    ada = created(
        scim.post(
            "/Users",
            user_payload(
                "ada",
                name={"givenName": "Ada", "familyName": "Lovelace"},
                emails=[{"value": "ada@example.org", "primary": True, "type": "work"}],
                title="Countess",
            ),
        )
    )
    bob = created(scim.post("/Users", user_payload("bob", displayName="Bob")))
    cyd = created(scim.post("/Users", user_payload("cyd")))
    engineers = created(scim.post("/Groups", group_payload("engineers", [ada, bob])))
    staff = created(scim.post("/Groups", group_payload("staff")))
    env.drain()

    scim.patch(
        f"/Groups/{staff}",
        patch_payload(
            {"op": "add", "path": "members", "value": [{"value": cyd}, {"value": engineers}]}
        ),
    )
    scim.patch(
        f"/Groups/{engineers}",
        patch_payload({"op": "replace", "path": "displayName", "value": "engineering"}),
    )
    scim.patch(
        f"/Users/{ada}",
        patch_payload(
            {"op": "replace", "path": "userName", "value": "ada.lovelace"},
            {"op": "replace", "path": "title", "value": "Analyst"},
        ),
    )
    scim.patch(f"/Users/{bob}", patch_payload({"op": "replace", "path": "active", "value": False}))
    scim.patch(f"/Users/{cyd}", patch_payload({"op": "replace", "path": "active", "value": False}))
    env.drain()
    assert view.users("pwdAccountLockedTime")[dn_key(view.user_dn("bob"))] == {
        "pwdAccountLockedTime": ["000001010000Z"]
    }

    scim.patch(f"/Users/{bob}", patch_payload({"op": "replace", "path": "active", "value": True}))
    scim.patch(
        f"/Groups/{engineers}",
        patch_payload({"op": "remove", "path": f'members[value eq "{bob}"]'}),
    )
    assert scim.delete(f"/Users/{cyd}").status_code == 204
    env.drain()

    ada_dn, bob_dn = view.user_dn("ada.lovelace"), view.user_dn("bob")
    users = view.users("uid", "title", "mail", "pwdAccountLockedTime")
    assert set(users) == keys(ada_dn, bob_dn)
    assert users[dn_key(ada_dn)] == {
        "uid": ["ada.lovelace"],
        "title": ["Analyst"],
        "mail": ["ada@example.org"],
    }
    assert users[dn_key(bob_dn)] == {"uid": ["bob"]}  # unlocked again
    assert view.groups() == {
        dn_key(view.group_dn("engineering")): keys(ada_dn),
        dn_key(view.group_dn("staff")): keys(view.group_dn("engineering")),
    }
    assert view.user(ada_dn, "memberOf") == {"memberOf": [view.group_dn("engineering")]}

    assert scim.delete(f"/Groups/{engineers}").status_code == 204
    env.drain()
    assert view.groups() == {dn_key(view.group_dn("staff")): {PLACEHOLDER_KEY}}


@pytest.mark.parametrize(
    "user_name",
    ["x)(uid=*", "a,b=c", "#lead", " padded ", "back\\slash", 'q"+<>;', "*"],
)
def test_injection_attempts_in_names_are_stored_literally(env: LdapSyncEnv, user_name: str) -> None:
    """Names full of DN and filter syntax become exactly one entry with that literal value."""
    user = created(env.scim.post("/Users", user_payload(user_name)))
    created(env.scim.post("/Groups", group_payload(f"cn={user_name},dc=evil", [user])))
    env.drain()
    directory = env.view.directory
    assert env.ldap.users_dn is not None
    found = list(
        directory.search(
            env.ldap.users_dn, f"(uid={escape_filter_value(user_name)})", ["uid"], scope="one"
        )
    )
    assert [values["uid"] for _, values in found] == [[user_name]]
    [(dn, _)] = found
    groups = env.view.groups()
    assert groups == {dn_key(env.view.group_dn(f"cn={user_name},dc=evil")): {dn_key(dn)}}


def test_passwords_reach_the_directory_as_argon2_hashes_and_never_the_queue(
    env: LdapSyncEnv,
) -> None:
    """A password set through SCIM lets the user bind to the directory; the job carries none."""
    user = created(env.scim.post("/Users", user_payload("grace", password=PASSWORD)))
    env.drain()
    dn = env.view.user_dn("grace")
    stored = env.view.user(dn, "userPassword")
    assert stored is not None
    assert stored["userPassword"][0].startswith("{ARGON2}$argon2id$")
    assert env.view.bind_works(dn, PASSWORD)

    env.scim.patch(
        f"/Users/{user}",
        patch_payload({"op": "replace", "path": "password", "value": "another long secret"}),
    )
    env.drain()
    assert not env.view.bind_works(dn, PASSWORD)
    assert env.view.bind_works(dn, "another long secret")
    with env.database.read() as conn:
        payloads = [str(payload) for payload in conn.execute(select(jobs.c.payload)).scalars()]
    assert not [payload for payload in payloads if "argon2" in payload or "secret" in payload]


def test_suspension_locks_the_directory_account_until_reactivation(env: LdapSyncEnv) -> None:
    """A suspended user cannot bind (ppolicy lock); reactivated, they can again."""
    directory = env.app.extensions["scimbridge"].directory
    user = created(env.scim.post("/Users", user_payload("hopper", password=PASSWORD)))
    env.drain()
    dn = env.view.user_dn("hopper")
    directory.suspend(user, ADMIN)
    env.drain()
    assert not env.view.bind_works(dn, PASSWORD)
    directory.reactivate(user, ADMIN)
    env.drain()
    assert env.view.bind_works(dn, PASSWORD)


def test_an_empty_group_holds_the_placeholder_only_while_empty(env: LdapSyncEnv) -> None:
    """A groupOfNames needs a member: cn=nobody stands in for none, and only then."""
    scim, view = env.scim, env.view
    user = created(scim.post("/Users", user_payload("lin")))
    group = created(scim.post("/Groups", group_payload("empty-at-first")))
    env.drain()
    assert view.members("empty-at-first") == {PLACEHOLDER_KEY}
    add = {"op": "add", "path": "members", "value": [{"value": user}]}
    scim.patch(f"/Groups/{group}", patch_payload(add))
    env.drain()
    assert view.members("empty-at-first") == keys(view.user_dn("lin"))
    scim.patch(f"/Groups/{group}", patch_payload({"op": "remove", "path": "members"}))
    env.drain()
    assert view.members("empty-at-first") == {PLACEHOLDER_KEY}
    # Replaying the same member change (at-least-once delivery) changes nothing.
    scim.patch(f"/Groups/{group}", patch_payload({"op": "remove", "path": "members"}))
    scim.patch(f"/Groups/{group}", patch_payload(add))
    scim.patch(f"/Groups/{group}", patch_payload(add))
    env.drain()
    assert view.members("empty-at-first") == keys(view.user_dn("lin"))


def test_a_member_change_costs_one_modify_whatever_the_group_size(
    env: LdapSyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changing members of a 300-member group neither reads the group nor rewrites it."""
    scim = env.scim
    members = [created(scim.post("/Users", user_payload(f"m{i}"))) for i in range(300)]
    group = created(scim.post("/Groups", group_payload("big", members)))
    newcomer = created(scim.post("/Users", user_payload("newcomer")))
    env.drain()
    calls: list[tuple[str, Any]] = []
    for name in ("read", "search", "replace", "change_values", "add"):
        original = getattr(LdapDirectory, name)

        def spy(
            self: LdapDirectory, *args: Any, _name: str = name, _f: Any = original, **kw: Any
        ) -> Any:
            calls.append((_name, args[0]))
            return _f(self, *args, **kw)

        monkeypatch.setattr(LdapDirectory, name, spy)
    response = scim.patch(
        f"/Groups/{group}",
        patch_payload(
            {"op": "add", "path": "members", "value": [{"value": newcomer}]},
            {"op": "remove", "path": f'members[value eq "{members[0]}"]'},
        ),
    )
    assert response.status_code == 204
    env.drain()
    assert calls == [("change_values", env.view.group_dn("big"))]
    monkeypatch.undo()
    assert len(env.view.members("big")) == 300


def test_role_changes_move_the_user_between_role_groups(env: LdapSyncEnv) -> None:
    """Role groups are groups like any other: a role change moves the user in the directory."""
    directory = env.app.extensions["scimbridge"].directory
    created_user = directory.create_user("kay@example.org", "Kay", "Ko", "admin", None, ADMIN)
    env.drain()
    user_dn = env.view.user_dn("kay@example.org")
    assert env.view.members("scimbridge-admins") == keys(user_dn)
    directory.change_role(created_user.user_id, "manager", ADMIN)
    env.drain()
    assert env.view.members("scimbridge-admins") == {PLACEHOLDER_KEY}
    assert env.view.members("scimbridge-managers") == keys(user_dn)
    assert env.view.bind_works(user_dn, created_user.generated_password or "")


def test_a_change_the_directory_refuses_is_parked_with_its_message(
    slapd: SlapdServer, tmp_path: Path
) -> None:
    """A schema violation is permanent: the job is parked with slapd's own words."""
    mapping = tmp_path / "map.yaml"
    shipped = Path(__file__).resolve().parent.parent / "config" / "ldap-openldap.yaml"
    mapping.write_text(
        shipped.read_text().replace("  static: {}", "  static: {favouriteColour: blue}", 1)
    )
    environment = LdapSyncEnv(slapd, f"sqlite:///{tmp_path / 'db'}", mapping_file=mapping)
    try:
        created(environment.scim.post("/Users", user_payload("misfit")))
        environment.worker.run_once()
        from scimbridge.store import jobs as job_store

        with environment.database.read() as conn:
            [parked] = job_store.list_jobs(conn, ["failed"], "ldap")
        assert parked.attempts == 1
        assert "favouriteColour" in (parked.last_error or "")
        assert "attribute type undefined" in (parked.last_error or "")
    finally:
        environment.close()


def test_sync_is_off_without_a_directory(scim: Any, database: Any) -> None:
    """Without SCIMBRIDGE_LDAP__URL no directory job is queued."""
    created(scim.post("/Users", user_payload("nobody-syncs-me")))
    with database.read() as conn:
        kinds = set(conn.execute(select(jobs.c.kind)).scalars())
    assert "ldap" not in kinds


@pytest.fixture(scope="module")
def active_directory_slapd() -> Iterator[SlapdServer]:
    """A slapd with Microsoft's user schema (Debian's msuser), standing in for AD."""
    with slapd_server(active_directory=True) as server:
        yield server


def _active_directory_stand_in_map(tmp_path: Path) -> Path:
    """The shipped map, plus what Active Directory provides itself and slapd cannot.

    AD fills in its system attributes, and its user class takes sAMAccountName through an
    auxiliary class Debian's msuser schema lacks (extensibleObject stands in for it).
    """
    shipped = Path(__file__).resolve().parent.parent / "config" / "ldap-activedirectory.yaml"
    attribute_map = yaml.safe_load(shipped.read_text())
    system = {
        "instanceType": "4",
        "nTSecurityDescriptor": "stand-in",
        "objectCategory": "CN=Person,CN=Schema,CN=Configuration,DC=example,DC=org",
    }
    for section in ("users", "groups"):
        attribute_map[section]["static"] = {**attribute_map[section]["static"], **system}
        attribute_map[section]["object_classes"].append("extensibleObject")
    # slapd would keep a clear unicodePwd readable, where AD hashes it: real Active Directory
    # passwords are tested against a Samba DC (test_ldap_active_directory.py).
    del attribute_map["users"]["password"]
    path = tmp_path / "ldap-activedirectory.yaml"
    path.write_text(yaml.safe_dump(attribute_map))
    return path


def test_the_active_directory_profile_writes_user_and_group_objects(
    active_directory_slapd: SlapdServer, tmp_path: Path
) -> None:
    """Users get logon names and userAccountControl; groups need no placeholder."""
    environment = LdapSyncEnv(
        active_directory_slapd,
        f"sqlite:///{tmp_path / 'db'}",
        profile="activedirectory",
        mapping_file=_active_directory_stand_in_map(tmp_path),
    )
    try:
        scim, view = environment.scim, environment.view
        user = created(
            scim.post(
                "/Users",
                user_payload(
                    "dana.scully@fbi.example",
                    name={"givenName": "Dana", "familyName": "Scully"},
                    password=PASSWORD,
                ),
            )
        )
        group = created(scim.post("/Groups", group_payload("x-files", [user])))
        created(scim.post("/Groups", group_payload("empty")))
        environment.drain()
        assert environment.ldap.users_dn and environment.ldap.groups_dn
        user_dn = f"cn=dana.scully@fbi.example,{environment.ldap.users_dn}"
        attributes = view.user(
            user_dn, "sAMAccountName", "userPrincipalName", "userAccountControl", "sn", "unicodePwd"
        )
        assert attributes == {
            "sAMAccountName": ["dana.scully"],
            "userPrincipalName": ["dana.scully@fbi.example"],
            "userAccountControl": ["512"],
            "sn": ["Scully"],
        }
        scim.patch(
            f"/Users/{user}", patch_payload({"op": "replace", "path": "active", "value": False})
        )
        scim.patch(f"/Groups/{group}", patch_payload({"op": "remove", "path": "members"}))
        environment.drain()
        assert view.user(user_dn, "userAccountControl") == {"userAccountControl": ["514"]}
        found = dict(
            view.directory.search(
                environment.ldap.groups_dn,
                "(objectClass=group)",
                ["member", "groupType"],
                scope="one",
            )
        )
        assert {dn_key(dn): values for dn, values in found.items()} == {
            dn_key(f"cn=x-files,{environment.ldap.groups_dn}"): {"groupType": ["-2147483646"]},
            dn_key(f"cn=empty,{environment.ldap.groups_dn}"): {"groupType": ["-2147483646"]},
        }
    finally:
        environment.close()


def test_a_rename_whose_answer_was_lost_is_not_applied_twice(
    env: LdapSyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename the directory applied while its answer was lost leaves no stray entry."""
    group = env.scim.post("/Groups", group_payload("before")).get_json()
    env.drain()
    handler = env.worker.handlers["ldap"]
    directory = handler.directory  # type: ignore[attr-defined]
    real_rename = directory.rename

    def rename_then_lose_the_answer(old_dn: str, new_dn: str) -> None:
        real_rename(old_dn, new_dn)
        monkeypatch.setattr(directory, "rename", real_rename)
        raise LdapUnavailable("connection lost before the answer")

    monkeypatch.setattr(directory, "rename", rename_then_lose_the_answer)
    rename = {"op": "replace", "path": "displayName", "value": "middle"}
    env.scim.patch(f"/Groups/{group['id']}", patch_payload(rename))
    env.worker.run_once()  # applied in the directory, but the job is to be retried
    assert dn_key(env.view.group_dn("middle")) in {dn_key(dn) for dn in env.view.groups()}
    rename = {"op": "replace", "path": "displayName", "value": "after"}
    env.scim.patch(f"/Groups/{group['id']}", patch_payload(rename))
    env.drain()

    names = {dn_key(dn) for dn in env.view.groups()}
    assert dn_key(env.view.group_dn("after")) in names
    assert dn_key(env.view.group_dn("middle")) not in names
    assert dn_key(env.view.group_dn("before")) not in names


def test_the_manager_follows_the_managers_entry(env: LdapSyncEnv) -> None:
    """The manager is the manager's DN: set, repointed after a rename, removed after a delete."""
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    boss = created(env.scim.post("/Users", user_payload("boss")))
    manager = {"value": boss, "$ref": f"http://scim.test/scim/v2/Users/{boss}"}
    core = "urn:ietf:params:scim:schemas:core:2.0:User"
    report = user_payload(
        "report", schemas=[core, enterprise], **{enterprise: {"manager": manager}}
    )
    created(env.scim.post("/Users", report))
    env.drain()
    report_dn = env.view.user_dn("report")

    def manager_keys() -> list[str]:
        return [dn_key(dn) for dn in (env.view.user(report_dn, "manager") or {}).get("manager", [])]

    assert manager_keys() == [dn_key(env.view.user_dn("boss"))]
    rename = {"op": "replace", "path": "userName", "value": "chief"}
    assert env.scim.patch(f"/Users/{boss}", patch_payload(rename)).status_code == 200
    env.drain()
    assert manager_keys() == [dn_key(env.view.user_dn("chief"))]
    assert env.scim.delete(f"/Users/{boss}").status_code == 204
    env.drain()
    assert manager_keys() == []
