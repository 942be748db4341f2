"""Queue LDAP sync jobs in the transaction of the change they mirror.

Jobs of kind ``ldap`` are state-based: ``{"op": "user", "id": …}`` and
``{"op": "group", "id": …}`` ask the worker to make one entry match what the store holds when
the job runs, so applying one twice, or late, converges. Member changes are the exception:
``{"op": "members", "group": …, "add": [ids], "remove": [ids]}`` carries only the members a
change touched, so that a group of any size is updated with one small modify. Jobs about a
user share the ordering key ``user:<id>``, jobs about a group ``group:<id>``: each entry's
jobs apply in commit order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime

from ...settings import LdapSettings
from ...store.database import Transaction
from ...store.jobs import enqueue
from ...store.ldap_entries import member_ids

LDAP_JOB = "ldap"
"""Job kind of every LDAP sync job."""


def user_key(user_id: str) -> str:
    """Return the ordering key of a user's jobs."""
    return f"user:{user_id}"


def group_key(group_id: str) -> str:
    """Return the ordering key of a group's jobs."""
    return f"group:{group_id}"


@dataclass
class MemberDelta:
    """Members a change added to and removed from one group, net of each other."""

    added: dict[str, None] = field(default_factory=dict)
    removed: dict[str, None] = field(default_factory=dict)

    def add(self, member_ids: Iterable[str]) -> None:
        """Note members added (after the changes noted so far)."""
        for member_id in member_ids:
            self.removed.pop(member_id, None)
            self.added[member_id] = None

    def remove(self, member_ids: Iterable[str]) -> None:
        """Note members removed (after the changes noted so far)."""
        for member_id in member_ids:
            self.added.pop(member_id, None)
            self.removed[member_id] = None

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


class LdapSyncQueue:
    """Queues LDAP sync jobs in the caller's transaction; queues nothing while sync is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def from_settings(cls, settings: LdapSettings) -> LdapSyncQueue:
        """Return the queue of the LDAP settings (off when no directory is configured)."""
        return cls(settings.enabled)

    def current_members(self, conn: Transaction, group_pk: int) -> set[str]:
        """Return a group's member ids before a change replaces them (none while sync is off).

        Only a change that replaces every member needs this; it costs what the group holds.
        """
        return member_ids(conn, group_pk) if self.enabled else set()

    def queue_user_sync(self, conn: Transaction, user_id: str) -> None:
        """Make the user's entry match the store: created, changed, renamed, locked, deleted."""
        if self.enabled:
            enqueue(conn, LDAP_JOB, user_key(user_id), {"op": "user", "id": user_id}, _now())

    def queue_group_sync(self, conn: Transaction, group_id: str) -> None:
        """Make the group's entry match the store (with every member when it is created)."""
        if self.enabled:
            enqueue(conn, LDAP_JOB, group_key(group_id), {"op": "group", "id": group_id}, _now())

    def queue_membership_change(
        self, conn: Transaction, group_id: str, added: Iterable[str], removed: Iterable[str]
    ) -> None:
        """Add and remove these members of the group's entry (nothing is queued for none)."""
        if not self.enabled:
            return
        add, remove = list(dict.fromkeys(added)), list(dict.fromkeys(removed))
        if add or remove:
            payload = {"op": "members", "group": group_id, "add": add, "remove": remove}
            enqueue(conn, LDAP_JOB, group_key(group_id), payload, _now())

    def queue_member_delta(self, conn: Transaction, group_id: str, delta: MemberDelta) -> None:
        """Queue the net member changes a :class:`MemberDelta` collected."""
        self.queue_membership_change(conn, group_id, delta.added, delta.removed)


def _now() -> datetime:
    return datetime.now(UTC)
