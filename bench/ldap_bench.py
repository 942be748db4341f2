"""LDAP sync benchmark: scimbridge's sync throughput against raw ldap3 adds on the same slapd.

Starts a private slapd (the test suite's recipe: mdb without fsync, memberof, refint, ppolicy,
argon2), then, in one run and alternating so both see the same server state:

- **raw ldap3**: one connection adding N inetOrgPerson entries, the attribute set scimbridge
  writes (uid, cn, sn, givenName, displayName, mail, title): the ceiling of a Python client.
- **scimbridge sync**: N users created through the provisioning service (each commit queues
  its ``ldap`` job; not timed), then the outbox worker drains the queue: claim, read the user,
  add the entry, record it, mark the job done. Entries per second of the drain.

Then a 5,000-member group, created two ways: posted with its members (one add), and posted
empty then filled by one member PATCH (an add, then one modify). The time shown is the
worker's drain of the group's jobs, directory and store work together.

Targets: sync ≥ 70 % of raw ldap3; each 5,000-member group in under 1 s.
Exit status 0 when both are met, 1 otherwise.

    python bench/ldap_bench.py [--users 5000] [--members 5000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ldap3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scimbridge.domain.resources import GroupResource  # noqa: E402
from scimbridge.domain.resources import UserResource  # noqa: E402
from scimbridge.service.lifecycle import UserDirectory  # noqa: E402
from scimbridge.service.provisioning import ProvisioningService  # noqa: E402
from scimbridge.service.roles import load_roles  # noqa: E402
from scimbridge.settings import LdapSettings  # noqa: E402
from scimbridge.settings import Settings  # noqa: E402
from scimbridge.store.database import Database  # noqa: E402
from scimbridge.store.migrations import upgrade  # noqa: E402
from scimbridge.worker import build_worker  # noqa: E402
from tests.ldap_server import SlapdServer  # noqa: E402
from tests.ldap_server import slapd_server  # noqa: E402

SYNC_TARGET = 0.70
GROUP_TARGET_SECONDS = 1.0


def _user_attributes(index: int, prefix: str) -> dict[str, Any]:
    name = f"{prefix}{index:06d}"
    return {
        "uid": name,
        "cn": f"User {name}",
        "sn": f"Family{index}",
        "givenName": f"Given{index}",
        "displayName": f"User {name}",
        "mail": f"{name}@example.org",
        "title": "Engineer",
    }


def raw_adds(server: SlapdServer, count: int, round_number: int) -> float:
    """Add ``count`` entries with plain ldap3; return entries per second."""
    base = f"ou=raw{round_number},{server.suffix}"
    connection = ldap3.Connection(
        ldap3.Server(server.url, get_info=ldap3.NONE),
        server.admin_dn,
        server.admin_password,
        auto_bind=True,
    )
    try:
        connection.add(base, ["organizationalUnit"], {"ou": f"raw{round_number}"})
        classes = ["inetOrgPerson", "organizationalPerson", "person", "top"]
        started = time.perf_counter()
        for index in range(count):
            attributes = _user_attributes(index, "raw")
            if not connection.add(f"uid={attributes['uid']},{base}", classes, attributes):
                raise RuntimeError(f"raw add failed: {connection.result}")
        elapsed = time.perf_counter() - started
    finally:
        connection.unbind()
    return count / elapsed


class SyncRun:
    """A fresh scimbridge store with LDAP sync on into its own subtree of the server."""

    def __init__(self, server: SlapdServer, workdir: Path, name: str) -> None:
        base = f"ou={name},{server.suffix}"
        self.settings = Settings(
            database_url=f"sqlite:///{workdir / name}.db",
            ldap=LdapSettings(
                url=server.url,
                bind_dn=server.admin_dn,
                bind_password=server.admin_password,
                users_dn=f"ou=people,{base}",
                groups_dn=f"ou=groups,{base}",
            ),
        )
        self.database = Database(self.settings.database_url)
        upgrade(self.database)
        directory = UserDirectory(
            self.database, self.settings, load_roles(self.settings.roles.file)
        )
        self.provisioning = ProvisioningService(self.database, directory)
        self.worker = build_worker(self.settings, self.database)

    def create_users(self, count: int) -> list[str]:
        ids = []
        for index in range(count):
            attributes = _user_attributes(index, "sync")
            user = UserResource.model_validate(
                {
                    "userName": attributes["uid"],
                    "displayName": attributes["displayName"],
                    "name": {"givenName": attributes["givenName"], "familyName": attributes["sn"]},
                    "emails": [{"value": attributes["mail"], "primary": True}],
                    "title": attributes["title"],
                }
            )
            ids.append(self.provisioning.create_user(user).id)
        return ids

    def drain(self) -> float:
        """Run the worker until the queue is empty; return the seconds it took."""
        started = time.perf_counter()
        while self.worker.run_once():
            pass
        return time.perf_counter() - started

    def close(self) -> None:
        handler: Any = self.worker.handlers.get("ldap")
        if handler is not None:
            handler.close()
        self.database.dispose()


def sync_adds(server: SlapdServer, workdir: Path, count: int, round_number: int) -> float:
    """Sync ``count`` new users through the outbox; return entries per second of the drain."""
    run = SyncRun(server, workdir, f"sync{round_number}")
    try:
        run.create_users(count)
        return count / run.drain()
    finally:
        run.close()


def big_group(server: SlapdServer, workdir: Path, members: int) -> tuple[float, float]:
    """Return the seconds of a group posted with ``members`` members, and of one filled by a
    PATCH after it was posted empty (user entries exist already in both cases)."""
    from scim2_models import PatchOp

    run = SyncRun(server, workdir, "groups")
    try:
        ids = run.create_users(members)
        run.drain()
        group = GroupResource.model_validate(
            {"displayName": "all-at-once", "members": [{"value": user_id} for user_id in ids]}
        )
        run.provisioning.create_group(group)
        posted = run.drain()
        empty = run.provisioning.create_group(GroupResource(display_name="filled-later"))
        patch = PatchOp[GroupResource].model_validate(
            {
                "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}
                ]
            }
        )
        run.provisioning.patch_group(empty.id, patch, memberships=False)
        filled = run.drain()
        return posted, filled
    finally:
        run.close()


def _best(values: list[float], better: Callable[[list[float]], float] = max) -> float:
    return better(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000, help="entries per throughput round")
    parser.add_argument("--members", type=int, default=5000, help="members of the big group")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (best kept)")
    options = parser.parse_args()

    raw: list[float] = []
    synced: list[float] = []
    with tempfile.TemporaryDirectory(prefix="scimbridge-ldap-bench-") as tmp, slapd_server() as server:
        workdir = Path(tmp)
        for round_number in range(options.rounds):
            raw.append(raw_adds(server, options.users, round_number))
            synced.append(sync_adds(server, workdir, options.users, round_number))
            print(
                f"round {round_number + 1}: raw ldap3 {raw[-1]:7.0f} adds/s   "
                f"scimbridge sync {synced[-1]:7.0f} entries/s",
                flush=True,
            )
        posted, filled = big_group(server, workdir, options.members)

    best_raw, best_sync = _best(raw), _best(synced)
    ratio = best_sync / best_raw
    print()
    print(f"raw ldap3 adds            {best_raw:7.0f} /s  (best of {options.rounds}, "
          f"median {statistics.median(raw):.0f})")
    print(f"scimbridge sync           {best_sync:7.0f} /s  (best of {options.rounds}, "
          f"median {statistics.median(synced):.0f})")
    print(f"sync / raw                {ratio:7.0%}    target >= {SYNC_TARGET:.0%}")
    print(f"{options.members}-member group, posted with members      {posted:6.2f} s   "
          f"target < {GROUP_TARGET_SECONDS:.0f} s")
    print(f"{options.members}-member group, posted empty then PATCH  {filled:6.2f} s   "
          f"target < {GROUP_TARGET_SECONDS:.0f} s")
    met = (
        ratio >= SYNC_TARGET
        and posted < GROUP_TARGET_SECONDS
        and filled < GROUP_TARGET_SECONDS
    )
    print("all targets met" if met else "a target was missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
