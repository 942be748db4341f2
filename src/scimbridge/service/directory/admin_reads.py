"""What the admin User Directory reads: the sorted users table, groups, the audit log, deviations.

Built on :class:`~scimbridge.service.directory.reads.DirectoryReader` (shared with the System
API and the command line); this module adds what only the browser pages need.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from ...domain.lifecycle import LifecycleError
from ...domain.lifecycle import UserStatus
from ...store import admin_listings as listings
from ...store import audit as audit_store
from ...store import deviations as deviation_store
from ...store.admin_listings import GroupMember
from ...store.admin_listings import UserSort
from ...store.audit import AuditEvent
from ...store.deviations import DeviationCount
from ...store.directory_queries import GroupSummary
from ...store.directory_queries import UserQuery
from .mapping import user_name_key
from .reads import DirectoryReader
from .reads import GroupView
from .reads import Page
from .reads import UserView

# The pages take these from here: the web layer never imports the store.
__all__ = [
    "AdminGroupView",
    "AdminReader",
    "AuditEvent",
    "AuditFilters",
    "GroupMember",
    "GroupNotFound",
    "UserSort",
]


EXPORT_CHUNK = 500
"""Rows an export reads per read transaction."""


class GroupNotFound(LifecycleError):
    """No group with this id."""


@dataclass
class AdminGroupView(GroupView):
    """A group as the admin pages list it."""

    idp_managed: bool = False
    """Whether an identity provider manages the group (it has an externalId, or a SCIM token
    created it): changes made elsewhere would be overwritten by the next sync."""


@dataclass
class AuditFilters:
    """Filters of the audit log; None filters nothing."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AdminReader(DirectoryReader):
    """Read-only queries of the admin pages."""

    def user_table(
        self,
        *,
        status: UserStatus | None = None,
        role: str | None = None,
        text: str | None = None,
        sort: UserSort = UserSort.NAME,
        descending: bool = False,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[UserView]:
        """Return one sorted page of users matching every filter given (UnknownRole raised).

        ``text`` is a case-insensitive fragment of the name, username or email address.
        """
        text = (text or "").strip()
        query = UserQuery(
            status=status.value if status else None,
            text_key=user_name_key(text) if text else None,
            role=self.role_condition(role) if role else None,
        )
        with self.database.read() as conn:
            total, records = listings.users_page(conn, query, sort, descending, offset, limit)
            views = self._views(conn, records)
        return Page(views, total, views[-1].pk if views else None, offset + len(views) < total)

    def group_page(self, *, offset: int = 0, limit: int = 50) -> Page[AdminGroupView]:
        """Return one page of groups, oldest first, marking those an identity provider manages."""
        page = self.list_groups(offset=offset, limit=limit)
        with self.database.read() as conn:
            by_scim = listings.groups_created_by_scim(conn, [v.group.id for v in page.items])
        views = [
            AdminGroupView(
                view.group,
                view.grants_roles,
                idp_managed=view.group.external_id is not None or view.group.id in by_scim,
            )
            for view in page.items
        ]
        return Page(views, page.total, page.last_key, page.has_more)

    def group(self, group_id: str) -> AdminGroupView:
        """Return one group, or raise GroupNotFound."""
        with self.database.read() as conn:
            found: GroupSummary | None = listings.group_summary(conn, group_id)
            by_scim = listings.groups_created_by_scim(conn, [group_id]) if found else set()
        if found is None:
            raise GroupNotFound(f"no group {group_id}")
        return AdminGroupView(
            found,
            [
                role.name
                for role in self.roles.roles
                if role.granted_by(found.display_name, found.external_id)
            ],
            idp_managed=found.external_id is not None or group_id in by_scim,
        )

    def group_members(
        self, group: AdminGroupView, *, offset: int = 0, limit: int = 50
    ) -> Page[GroupMember]:
        """Return one page of a group's direct members: nested groups first, then users."""
        with self.database.read() as conn:
            members = listings.group_members_page(conn, group.group.pk, offset, limit)
        total = group.group.member_count
        return Page(members, total, None, offset + len(members) < total)

    def audit_log(
        self, filters: AuditFilters, *, offset: int = 0, limit: int = 50
    ) -> Page[AuditEvent]:
        """Return one page of audit events, newest first.

        Filtering by a user's login (their address now, or one they had) finds every event
        about them, whatever their address was at the time.
        """
        with self.database.read() as conn:
            total, events = audit_store.query(
                conn,
                actor=filters.actor,
                actor_key=user_name_key(filters.actor) if filters.actor else None,
                action=filters.action,
                target=filters.target,
                target_key=user_name_key(filters.target) if filters.target else None,
                since=filters.since,
                until=filters.until,
                offset=offset,
                limit=limit,
            )
        return Page(events, total, events[-1].pk if events else None, offset + len(events) < total)

    def actor_names(self, events: list[AuditEvent]) -> dict[str, str]:
        """Return today's display names of the people who acted in these events, by id."""
        ids = {e.actor_id for e in events if e.actor_id and e.actor_type in ("admin", "user")}
        with self.database.read() as conn:
            return listings.display_names(conn, sorted(ids))

    def export_audit_log(
        self, filters: AuditFilters, *, chunk: int | None = None
    ) -> Iterator[AuditEvent]:
        """Yield every event the audit log shows with these filters, newest first.

        Read ``chunk`` events (default EXPORT_CHUNK) per short read transaction: memory stays
        flat however many events match, and no transaction is held open while a slow client
        downloads.
        """
        chunk = chunk or EXPORT_CHUNK
        criteria = audit_store.AuditCriteria(
            target=filters.target,
            target_key=user_name_key(filters.target) if filters.target else None,
            actor=filters.actor,
            actor_key=user_name_key(filters.actor) if filters.actor else None,
            action=filters.action,
            since=filters.since,
            until=filters.until,
        )
        before: int | None = None
        while True:
            with self.database.read() as conn:
                events = audit_store.events_before(conn, criteria, before, chunk)
            yield from events
            if len(events) < chunk:
                return
            before = events[-1].pk

    def export_users(
        self,
        *,
        status: UserStatus | None = None,
        role: str | None = None,
        text: str | None = None,
        chunk: int | None = None,
    ) -> Iterator[UserView]:
        """Yield every user the users table shows with these filters, oldest first.

        Chunked like :meth:`export_audit_log`; UnknownRole is raised before the first user.
        """
        text = (text or "").strip()
        query = UserQuery(
            status=status.value if status else None,
            text_key=user_name_key(text) if text else None,
            role=self.role_condition(role) if role else None,
        )
        return self._export_users(query, chunk or EXPORT_CHUNK)

    def _export_users(self, query: UserQuery, chunk: int) -> Iterator[UserView]:
        after: int | None = None
        while True:
            with self.database.read() as conn:
                records = listings.users_after(conn, query, after, chunk)
                views = self._views(conn, records)
            yield from views
            if len(records) < chunk:
                return
            after = records[-1].pk

    def history_of(self, user_id: str, limit: int = 20) -> Page[AuditEvent]:
        """Return the newest audit events about one user."""
        return self.audit_events(user_id=user_id, limit=limit)

    def recent_deviations(self, limit: int = 100) -> list[DeviationCount]:
        """Return the deviations SCIM clients sent, most recently met first."""
        with self.database.read() as conn:
            return deviation_store.recent_deviations(conn, limit)
