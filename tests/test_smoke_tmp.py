import pytest
from tests.conftest import user_payload, group_payload, patch_payload
from tests.ldap_support import LdapSyncEnv

@pytest.fixture
def env(slapd, tmp_path):
    e = LdapSyncEnv(slapd, f"sqlite:///{tmp_path/'db'}")
    yield e
    e.close()

def test_smoke(env):
    scim, view = env.scim, env.view
    r = scim.post("/Users", user_payload("x)(uid=*", name={"givenName": "A", "familyName": "B"}, emails=[{"value": "a@example.org", "primary": True}], password="correct horse battery staple"))
    assert r.status_code == 201, r.json
    uid = r.json["id"]
    r2 = scim.post("/Users", user_payload("a,b=c"))
    g = scim.post("/Groups", group_payload("admins", [uid]))
    e = scim.post("/Groups", group_payload("empty"))
    env.drain()
    print(view.users())
    print(view.groups())
    assert view.bind_works(view.user_dn("x)(uid=*"), "correct horse battery staple")
    scim.patch(f"/Users/{uid}", patch_payload({"op": "replace", "path": "userName", "value": "renamed"}))
    scim.patch(f"/Groups/{e.json['id']}", patch_payload({"op": "add", "path": "members", "value": [{"value": uid}, {"value": r2.json["id"]}]}))
    scim.patch(f"/Users/{uid}", patch_payload({"op": "replace", "path": "active", "value": False}))
    env.drain()
    print(view.users("uid", "pwdAccountLockedTime"))
    print(view.groups())
    assert not view.bind_works(view.user_dn("renamed"), "correct horse battery staple")
    scim.patch(f"/Groups/{e.json['id']}", patch_payload({"op": "remove", "path": "members"}))
    scim.delete(f"/Users/{uid}")
    env.drain()
    print(view.users("uid"))
    print(view.groups())

def test_reconcile_smoke(env):
    from scimbridge.adapters.ldap import LdapDirectory, entry_builder
    from scimbridge.service.ldap_reconcile import LdapReconciler
    scim = env.scim
    ids = [scim.post("/Users", user_payload(f"u{i}", password="correct horse battery staple" if i % 2 else None)).json["id"] for i in range(5)]
    g = scim.post("/Groups", group_payload("g", ids[:3])).json["id"]
    scim.post("/Groups", group_payload("empty"))
    env.drain()
    with LdapDirectory(env.ldap) as d:
        r = LdapReconciler(env.database, d, entry_builder(env.ldap))
        rep = r.run(dry_run=True)
        print([str(x) for x in rep.differences])
        assert not rep.differences
        # out of band
        d.replace(env.view.user_dn("u1"), {"sn": ["tampered"], "mail": ["x@y.z"]})
        d.delete(env.view.user_dn("u2"))
        d.add(env.view.user_dn("intruder"), ["inetOrgPerson"], {"uid": ["intruder"], "cn": ["i"], "sn": ["i"]})
        d.change_values(env.view.group_dn("g"), "member", [env.view.user_dn("intruder")], [env.view.user_dn("u0")])
        rep = r.run(dry_run=True)
        print("\n".join(str(x) for x in rep.differences))
        rep = r.run(dry_run=False)
        rep = r.run(dry_run=True)
        print("\n".join(str(x) for x in rep.differences))
        assert not rep.differences
