"""LDAP names, attribute maps and entries: plain functions, tested plainly (no directory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from scimbridge.adapters.ldap import EntryBuilder
from scimbridge.adapters.ldap import GroupState
from scimbridge.adapters.ldap import MappingError
from scimbridge.adapters.ldap import UserState
from scimbridge.adapters.ldap import changed_attributes
from scimbridge.adapters.ldap import load_attribute_map
from scimbridge.adapters.ldap.attribute_map import SamAccountNamePolicy
from scimbridge.adapters.ldap.attribute_map import parse_attribute_map
from scimbridge.adapters.ldap.entries import sam_account_name
from scimbridge.adapters.ldap.entries import scim_values
from scimbridge.adapters.ldap.names import dn_key
from scimbridge.adapters.ldap.names import escape_dn_value
from scimbridge.adapters.ldap.names import escape_filter_value
from scimbridge.adapters.ldap.names import first_rdn
from scimbridge.adapters.ldap.names import parent_dn
from scimbridge.service.ldap.sync import LdapSyncQueue
from scimbridge.service.ldap.sync import MemberDelta
from scimbridge.store.database import Database
from scimbridge.store.tables import jobs

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ARGON2_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"

DOC = {
    "userName": "ada@example.org",
    "name": {"givenName": "Ada", "familyName": "Lovelace"},
    "displayName": "Ada Lovelace",
    "emails": [
        {"value": "ada@home.example", "type": "home"},
        {"value": "ada@example.org", "type": "work", "primary": True},
    ],
    "active": True,
    ENTERPRISE: {"employeeNumber": "1815", "department": "Analytical Engines"},
}


def openldap() -> EntryBuilder:
    return EntryBuilder(load_attribute_map("openldap"), "ou=people,dc=x", "ou=groups,dc=x")


def active_directory() -> EntryBuilder:
    return EntryBuilder(
        load_attribute_map("activedirectory"), "OU=Users,DC=corp", "OU=Groups,DC=corp"
    )


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("a,b=c", r"a\,b\=c"),
        ("x)(uid=*", r"x)(uid\=*"),
        ('q"+<>;\\', r"q\"\+\<\>\;\\"),
        ("#lead", r"\#lead"),
        (" both ", r"\ both\ "),
        ("nul\x00", r"nul\00"),
        ("Zoë", "Zoë"),
    ],
)
def test_dn_values_are_escaped_as_rfc_4514_says(value: str, escaped: str) -> None:
    """Every character with a meaning in a DN is escaped, and only those."""
    assert escape_dn_value(value) == escaped
    assert first_rdn(f"uid={escaped},ou=people,dc=x") == ("uid", value)


def test_filter_values_are_escaped_as_rfc_4515_says() -> None:
    """A userName cannot widen a search."""
    assert escape_filter_value("x)(uid=*") == r"x\29\28uid=\2a"
    assert escape_filter_value("a\\b\x00") == r"a\5cb\00"


def test_dn_keys_ignore_escaping_style_case_and_spaces() -> None:
    """Directories answer with their own spelling of a DN; keys compare them."""
    ours = r"uid=A\,b\=c,ou=People,dc=X"
    theirs = r"UID=a\2Cb\3Dc, ou=people,DC=x"
    assert dn_key(ours) == dn_key(theirs) == r"uid=a\,b\=c,ou=people,dc=x"
    assert dn_key(r"cn=caf\c3\a9,dc=x") == "cn=café,dc=x"
    assert dn_key(r"cn=\ kept\ ,dc=x") != dn_key("cn=kept,dc=x")
    assert parent_dn(r"uid=a\,b,ou=people,dc=x") == "ou=people,dc=x"


def test_scim_paths_reach_attributes_sub_attributes_primary_values_and_extensions() -> None:
    """The attribute map's paths read the stored SCIM document."""
    assert scim_values(DOC, "name.givenName") == ["Ada"]
    assert scim_values(DOC, "emails.value") == ["ada@example.org", "ada@home.example"]
    assert scim_values(DOC, "emails[primary].value") == ["ada@example.org"]
    assert scim_values(DOC, f"{ENTERPRISE}:employeeNumber") == ["1815"]
    assert scim_values(DOC, "active") == ["TRUE"]
    assert scim_values(DOC, "title") == []


def test_an_openldap_user_entry_follows_the_shipped_map() -> None:
    """Users are inetOrgPerson entries named by uid; unmapped values are absent attributes."""
    entry = openldap().user_entry(UserState("id-1", DOC, False, ARGON2_HASH))
    assert entry.dn == r"uid=ada@example.org,ou=people,dc=x"
    assert entry.dn_key == dn_key(entry.dn)
    assert entry.object_classes == ("inetOrgPerson", "organizationalPerson", "person", "top")
    attributes = entry.attributes
    assert attributes["cn"] == ["Ada Lovelace"]
    assert attributes["sn"] == ["Lovelace"]
    assert attributes["mail"] == ["ada@example.org", "ada@home.example"]
    assert attributes["employeeNumber"] == ["1815"]
    assert attributes["departmentNumber"] == ["Analytical Engines"]
    assert attributes["title"] == []
    assert attributes["pwdAccountLockedTime"] == []
    assert entry.password == "{ARGON2}" + ARGON2_HASH
    assert "title" not in entry.present_attributes()


def test_a_suspended_user_is_locked_for_good_by_ppolicy() -> None:
    """The ppolicy lock 000001010000Z holds until it is removed."""
    entry = openldap().user_entry(UserState("id-1", DOC, True, None))
    assert entry.attributes["pwdAccountLockedTime"] == ["000001010000Z"]
    assert entry.password is None


def test_only_argon2_hashes_are_written_as_passwords() -> None:
    """A value the directory could not verify is never written."""
    entry = openldap().user_entry(UserState("id-1", DOC, False, "$2b$12$bcrypt-hash"))
    assert entry.password is None


def test_an_active_directory_user_has_logon_names_and_account_control() -> None:
    """The logon name is the userName before its @; a longer one is cut with a hash suffix."""
    doc = {**DOC, "userName": "ada.lovelace.countess.of.lovelace@corp.example"}
    builder = active_directory()
    active = builder.user_entry(UserState("id-1", doc, False, ARGON2_HASH))
    assert active.dn == "cn=ada.lovelace.countess.of.lovelace@corp.example,OU=Users,DC=corp"
    [logon_name] = active.attributes["sAMAccountName"]
    assert len(logon_name) == 20
    assert logon_name.startswith("ada.lovelace.c-")
    assert active.attributes["userPrincipalName"] == [doc["userName"]]
    assert active.attributes["mail"] == ["ada@example.org"]
    assert active.attributes["userAccountControl"] == ["512"]
    assert active.password is None  # Active Directory takes no hashes
    suspended = builder.user_entry(UserState("id-1", doc, True, None))
    assert suspended.attributes["userAccountControl"] == ["514"]


def test_group_entries_carry_static_attributes() -> None:
    """An Active Directory group is a global security group."""
    entry = active_directory().group_entry(GroupState("g-1", {"displayName": "Engineers"}))
    assert entry.dn == "cn=Engineers,OU=Groups,DC=corp"
    assert entry.attributes["groupType"] == ["-2147483646"]


def test_a_resource_without_a_naming_value_cannot_be_written() -> None:
    """The RDN needs a value: the job is refused, not written with a made-up name."""
    with pytest.raises(MappingError):
        openldap().group_entry(GroupState("g-1", {}))


def test_only_changed_attributes_are_replaced() -> None:
    """Value order and attribute name case do not count as changes."""
    before = {"mail": ["b", "a"], "Title": ["x"], "sn": ["s"]}
    after = {"mail": ["a", "b"], "title": [], "sn": ["t"], "cn": ["c"]}
    assert changed_attributes(before, after) == {"title": [], "sn": ["t"], "cn": ["c"]}


def test_the_example_maps_in_config_are_the_shipped_defaults() -> None:
    """config/ldap-*.yaml document what an installed scimbridge uses without them."""
    root = Path(__file__).resolve().parent.parent
    for profile in ("openldap", "activedirectory"):
        example = root / "config" / f"ldap-{profile}.yaml"
        shipped = root / "src/scimbridge/adapters/ldap/profiles" / f"{profile}.yaml"
        assert example.read_text() == shipped.read_text()
        assert load_attribute_map(profile, example) == load_attribute_map(profile, shipped)


def test_a_map_whose_rdn_is_not_mapped_is_refused() -> None:
    """A broken map fails at start, naming the problem."""
    text = """
users: {object_classes: [inetOrgPerson], rdn: uid, attributes: {cn: userName}}
groups: {object_classes: [groupOfNames], rdn: cn, attributes: {cn: displayName}}
"""
    with pytest.raises(MappingError, match="RDN attribute 'uid'"):
        parse_attribute_map(text, "test")


def test_member_changes_of_one_request_are_netted() -> None:
    """A member added then removed by the same PATCH is only removed."""
    delta = MemberDelta()
    delta.add(["a", "b"])
    delta.remove(["b", "c"])
    delta.add(["c"])
    assert list(delta.added) == ["a", "c"]
    assert list(delta.removed) == ["b"]


def test_nothing_is_queued_while_ldap_sync_is_off(database: Database) -> None:
    """Without ldap.url, changes queue no directory job."""
    queue = LdapSyncQueue(enabled=False)
    with database.write() as conn:
        queue.queue_user_sync(conn, "u")
        queue.queue_group_sync(conn, "g")
        queue.queue_membership_change(conn, "g", ["u"], [])
        assert queue.current_members(conn, 1) == set()
    with database.read() as conn:
        assert conn.execute(select(jobs.c.pk)).first() is None


def test_logon_names_follow_the_sam_account_name_policy() -> None:
    """Forbidden characters replaced; long or built-in names cut with a stable, distinct suffix."""
    policy = SamAccountNamePolicy()
    assert sam_account_name("jdoe@corp.example", policy) == "jdoe"
    assert sam_account_name('q"r/s*t?u<v>w@x', policy) == "q_r_s_t_u_v_w"
    assert sam_account_name("a[b]c:d@corp.example", policy) == "a_b_c_d"
    assert sam_account_name(" .dots. @corp.example", policy) == "dots"
    long_names = [f"identical.twenty.char.prefix.{n}@corp.example" for n in range(30)]
    logon_names = {sam_account_name(name, policy) for name in long_names}
    assert len(logon_names) == 30
    assert all(len(name) <= 20 for name in logon_names)
    assert sam_account_name(long_names[0], policy) == sam_account_name(long_names[0], policy)
    built_in = sam_account_name("Administrator@corp.example", policy)
    assert built_in.lower() != "administrator"
    assert built_in.startswith("Administrator-")
    assert sam_account_name("krbtgt@corp.example", policy).startswith("krbtgt-")
    other = SamAccountNamePolicy(max_length=12, replacement="-", reserved=("root",))
    assert sam_account_name("root@x", other).startswith("root-")
    cut = sam_account_name("administrator@x", other)
    assert len(cut) == 12 and cut.startswith("admini-")
    assert sam_account_name("a:b@x", other) == "a-b"


def test_an_active_directory_account_stays_disabled_until_it_has_a_password() -> None:
    """until_password: no password in the directory yet means ACCOUNTDISABLE."""
    builder = active_directory()
    waiting = builder.user_entry(UserState("id-1", DOC, False, None, directory_password=False))
    assert waiting.attributes["userAccountControl"] == ["514"]
    ready = builder.user_entry(UserState("id-1", DOC, False, None, directory_password=True))
    assert ready.attributes["userAccountControl"] == ["512"]
    assert builder.clear_passwords and builder.password_attribute is None


def test_a_manager_is_written_as_the_managers_dn() -> None:
    """resolve: user_dn turns the manager's id into its entry's DN; unknown ids give none."""
    doc = {**DOC, ENTERPRISE: {"manager": {"value": "boss-id"}}}
    dns = {"boss-id": "uid=boss,ou=people,dc=example,dc=org"}
    entry = openldap().user_entry(UserState("id-1", doc, False, None), dns.get)
    assert entry.attributes["manager"] == ["uid=boss,ou=people,dc=example,dc=org"]
    gone = openldap().user_entry(UserState("id-1", doc, False, None), {}.get)
    assert gone.attributes["manager"] == []
