"""Roles through group membership: reading a user's role, and moving them between role groups."""

from __future__ import annotations

import uuid
from datetime import datetime

from ...domain.resources import Group
from ...domain.resources import StoredResource
from ...store import resources as store
from ...store.database import Transaction
from ..ldap.sync import LdapSyncQueue
from .mapping import document
from .mapping import group_columns
from .mapping import group_name_key
from .roles import EXTERNAL_ID_PREFIX
from .roles import Role
from .roles import RolesConfig


class RoleMembership:
    """Applies :class:`RolesConfig` to the groups of the store."""

    def __init__(self, roles: RolesConfig, ldap_sync: LdapSyncQueue | None = None) -> None:
        self.roles = roles
        # Role groups are groups like any other in the directory.
        self.ldap_sync = ldap_sync or LdapSyncQueue(enabled=False)

    def effective_role(self, conn: Transaction, user_id: str) -> Role:
        """Return the role the user's groups (direct or nested) give them."""
        groups = store.groups_of_member(conn, user_id)
        return self.roles.effective_role(
            (group.display_name, group.external_id) for group in groups
        )

    def assign(self, conn: Transaction, user_id: str, role: Role, now: datetime) -> None:
        """Make ``role`` the user's role by moving their direct memberships.

        The user leaves every role-granting group of other roles and joins the first group of
        ``role`` (created when missing). Roles themselves are never edited.
        """
        for group in store.groups_of_member(conn, user_id):
            grants_other = any(
                other.granted_by(group.display_name, group.external_id)
                for other in self.roles.roles
                if other.name != role.name
            )
            if (
                group.direct
                and grants_other
                and not role.granted_by(group.display_name, group.external_id)
            ):
                record = store.get(conn, "Group", group.id)
                if record is not None and store.remove_members(conn, record.pk, [user_id]):
                    store.update_group(conn, record, None, None, now)
                    self.ldap_sync.queue_membership_change(conn, group.id, [], [user_id])
        if not role.groups:
            return
        target = self._role_group(conn, role.groups[0], now)
        if store.add_members(conn, target.pk, {user_id: "User"}):
            store.update_group(conn, target, None, None, now)
            self.ldap_sync.queue_membership_change(conn, target.id, [user_id], [])

    def _role_group(self, conn: Transaction, spec: str, now: datetime) -> StoredResource:
        if spec.startswith(EXTERNAL_ID_PREFIX):
            external_id = spec[len(EXTERNAL_ID_PREFIX) :]
            found = store.group_by_name_or_external_id(conn, None, external_id)
            group = Group(display_name=external_id, external_id=external_id)
        else:
            found = store.group_by_name_or_external_id(conn, group_name_key(spec), None)
            group = Group(display_name=spec)
        if found is not None:
            return found
        created = store.insert_group(
            conn, str(uuid.uuid4()), group_columns(group), document(group), now
        )
        self.ldap_sync.queue_group_sync(conn, created.id)
        return created
