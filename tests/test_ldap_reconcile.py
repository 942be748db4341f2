"""``scimbridge ldap reconcile`` and ``ldap status``: the directory kept true from the outside."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from click.testing import Result

from scimbridge.adapters.ldap import dn_key
from scimbridge.cli.main import main
from scimbridge.service.ldap.sync import LDAP_JOB

from .conftest import created
from .conftest import group_payload
from .conftest import patch_payload
from .conftest import user_payload
from .ldap_server import PLACEHOLDER_DN
from .ldap_support import LdapSyncEnv
from .ldap_support import env
from .outbox_support import queue_job

PASSWORD = "correct horse battery staple"

__all__ = ["env"]


def cli(env: LdapSyncEnv, *args: str) -> Result:
    """Run ``scimbridge`` with the settings of the test's environment."""
    ldap = env.ldap
    variables = {
        "SCIMBRIDGE_DATABASE_URL": env.settings.database_url,
        "SCIMBRIDGE_LDAP__URL": ldap.url or "",
        "SCIMBRIDGE_LDAP__BIND_DN": ldap.bind_dn or "",
        "SCIMBRIDGE_LDAP__BIND_PASSWORD": env.server.admin_password,
        "SCIMBRIDGE_LDAP__USERS_DN": ldap.users_dn or "",
        "SCIMBRIDGE_LDAP__GROUPS_DN": ldap.groups_dn or "",
    }
    return CliRunner().invoke(main, list(args), env=variables)


def test_out_of_band_edits_are_found_and_repaired(env: LdapSyncEnv) -> None:
    """Edits made behind scimbridge's back are listed by a dry run, then undone."""
    scim, view = env.scim, env.view
    ann = created(scim.post("/Users", user_payload("ann", password=PASSWORD, title="Lead")))
    ben = created(scim.post("/Users", user_payload("ben")))
    cat = created(scim.post("/Users", user_payload("cat")))
    dan = created(scim.post("/Users", user_payload("dan", active=False, password=PASSWORD)))
    created(scim.post("/Groups", group_payload("team", [ann, ben, dan])))
    created(scim.post("/Groups", group_payload("nobody-here")))
    env.drain()

    directory = view.directory
    directory.replace(view.user_dn("ann"), {"title": ["Intern"], "userPassword": []})
    directory.delete(view.user_dn("ben"))
    directory.replace(view.user_dn("dan"), {"pwdAccountLockedTime": []})
    intruder = view.user_dn("intruder")
    directory.add(intruder, ["inetOrgPerson"], {"uid": ["intruder"], "cn": ["i"], "sn": ["i"]})
    directory.change_values(view.group_dn("team"), "member", [intruder, PLACEHOLDER_DN])
    # A rename the worker has not applied yet: the entry sits at its old name.
    rename = {"op": "replace", "path": "userName", "value": "cathy"}
    assert scim.patch(f"/Users/{cat}", patch_payload(rename)).status_code == 200

    dry = cli(env, "ldap", "reconcile", "--dry-run")
    assert dry.exit_code == 0, dry.output
    lines = dry.output.splitlines()
    assert sorted(lines[:-1]) == sorted(
        [
            f"changed user {view.user_dn('ann')}: title, userPassword",
            f"changed user {view.user_dn('dan')}: pwdAccountLockedTime",
            f"missing user {view.user_dn('ben')}",
            f"moved user {view.user_dn('cathy')}: from {view.user_dn('cat')}",
            f"changed user {view.user_dn('cathy')}: cn, sn",
            f"extra user {intruder}",
            f"members group {view.group_dn('team')}: +{view.user_dn('ben')} "
            f"-{intruder} -{PLACEHOLDER_DN}",
        ]
    )
    assert lines[-1] == (
        "7 differences (3 changed, 1 extra, 1 members, 1 missing, 1 moved); "
        "dry run, nothing changed"
    )
    assert view.user(intruder, "uid") is not None  # a dry run changes nothing

    repaired = cli(env, "ldap", "reconcile")
    assert repaired.exit_code == 0, repaired.output
    assert repaired.output.splitlines()[-1].endswith("; repaired")
    again = cli(env, "ldap", "reconcile", "--dry-run")
    assert again.output.splitlines() == ["0 differences; dry run, nothing changed"]
    assert view.bind_works(view.user_dn("ann"), PASSWORD)
    assert view.members("team") == {dn_key(view.user_dn(name)) for name in ("ann", "ben", "dan")}

    # The queued rename and later changes apply on top of the repaired directory.
    env.drain()
    scim.patch(f"/Users/{ann}", patch_payload({"op": "replace", "path": "title", "value": "CTO"}))
    env.drain()
    assert view.user(view.user_dn("ann"), "title") == {"title": ["CTO"]}
    assert cli(env, "ldap", "reconcile", "--dry-run").output.startswith("0 differences")


def test_status_shows_the_queue_the_lag_and_parked_jobs(env: LdapSyncEnv) -> None:
    """What an operator checks first: is the directory there, how far behind, what failed."""
    from datetime import UTC
    from datetime import datetime

    queue_job(env.database, LDAP_JOB, "user:x", {"op": "no-such-operation"}, datetime.now(UTC))
    env.worker.run_once()
    created(env.scim.post("/Users", user_payload("waiting")))
    result = cli(env, "ldap", "status")
    assert result.exit_code == 0, result.output
    lines = dict(line.split("\t", 1) for line in result.output.splitlines() if "\t" in line)
    assert lines["reachable"] == "yes"
    assert lines["pending"] == "1 jobs"
    assert lines["parked"] == "1 jobs"
    assert lines["lane ldap"].startswith("depth 1\trunning 0\tretrying 0\tparked 1\tlag ")
    assert lines["lane email"].startswith("depth 0\trunning 0\tretrying 0\tparked 0\tlag ")
    assert "unknown ldap job 'no-such-operation'" in result.output


def test_the_ldap_commands_say_when_sync_is_off(tmp_path: Path) -> None:
    """Without a directory configured, the commands explain instead of failing obscurely."""
    result = CliRunner().invoke(
        main,
        ["ldap", "status"],
        env={
            "SCIMBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
            "SCIMBRIDGE_LDAP__URL": "",
        },
    )
    assert result.exit_code == 1
    assert "LDAP sync is off" in result.output
