"""Reading the directory for programs and the command line, filtered and paged in the database.

Users, pending invitations, groups, roles and the audit trail.

Changes go through :class:`~scimbridge.service.directory.lifecycle.UserDirectory`; this module
only reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any
from typing import Generic
from typing import TypeVar

from ...domain.emails import is_email_address
from ...domain.lifecycle import UserNotFound
from ...domain.lifecycle import UserStatus
from ...domain.resources import StoredResource
from ...store import audit as audit_store
from ...store import directory_queries as queries
from ...store import lifecycle as accounts
from ...store import resources as store
from ...store.audit import AuditEvent
from ...store.database import Database
from ...store.database import Transaction
from ...store.directory_queries import GroupSelector
from ...store.directory_queries import GroupSummary
from ...store.directory_queries import RoleCondition
from ...store.directory_queries import UserQuery
from .mapping import group_name_key
from .mapping import user_name_key
from .roles import EXTERNAL_ID_PREFIX
from .roles import Role
from .roles import RolesConfig

_ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int
    """Matches of the filters, on every page."""
    last_key: int | None
    """Key of the last item: the next page starts after it (None on an empty page)."""
    has_more: bool
    """Whether more matches follow this page."""


@dataclass
class PhoneNumberView:
    """A user's phone number."""

    value: str
    type: str | None


@dataclass
class UserView:
    """What listings and the System API show of a user (never a password or its hash)."""

    pk: int
    id: str
    user_name: str
    email: str | None
    given_name: str | None
    family_name: str | None
    display_name: str | None
    phone_numbers: list[PhoneNumberView]
    title: str | None
    department: str | None
    status: str
    role: str
    role_until: datetime | None
    """When a temporary role ends (the user then goes back to their previous role)."""
    password_change_required: bool
    last_login: datetime | None
    created: datetime
    last_modified: datetime
    invitation_sent: datetime | None = None
    invitation_expires: datetime | None = None
    unmailable_emails: tuple[str, ...] = ()
    """Email values a SCIM client stored that are no address: kept, never mailed."""


@dataclass
class GroupView:
    """A group, its member count and the roles it grants."""

    group: GroupSummary
    grants_roles: list[str] = field(default_factory=list)


@dataclass
class RoleGroupView:
    """A group a role names, and the group itself when it exists."""

    spec: str
    """As the roles file names it: a displayName, or ``externalId:<value>``."""
    group: GroupSummary | None


@dataclass
class RoleView:
    """A configured role and its granting groups."""

    role: Role
    is_default: bool
    groups: list[RoleGroupView]


def _selector(specs: Iterable[str]) -> GroupSelector:
    names: set[str] = set()
    external_ids: set[str] = set()
    for spec in specs:
        if spec.startswith(EXTERNAL_ID_PREFIX):
            external_ids.add(spec[len(EXTERNAL_ID_PREFIX) :])
        else:
            names.add(group_name_key(spec))
    return GroupSelector(frozenset(names), frozenset(external_ids))


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _primary_email(doc: dict[str, Any]) -> str | None:
    emails = doc.get("emails") or []
    chosen = next((e for e in emails if e.get("primary")), emails[0] if emails else None)
    return _text(chosen.get("value")) if chosen else None


def _unmailable_emails(doc: dict[str, Any]) -> tuple[str, ...]:
    values = (entry.get("value") for entry in doc.get("emails") or [])
    return tuple(str(value) for value in values if value and not is_email_address(value))


class DirectoryReader:
    """Read-only queries over users, groups, roles and the audit trail."""

    def __init__(self, database: Database, roles: RolesConfig) -> None:
        self.database = database
        self.roles = roles

    # -- users ------------------------------------------------------------------------------

    def role_condition(self, role_name: str) -> RoleCondition:
        """Translate "holds this role" into group memberships; raise UnknownRole."""
        target = self.roles.get(role_name)
        outranking = [r for r in self.roles.roles if r.priority > target.priority]
        lower = None
        if target.name == self.roles.default_role:
            others = [r for r in self.roles.roles if r.name != target.name and r not in outranking]
            lower = _selector(g for r in others for g in r.groups)
        return RoleCondition(
            granting=_selector(target.groups),
            outranking=_selector(g for r in outranking for g in r.groups),
            lower=lower,
        )

    def list_users(
        self,
        *,
        status: UserStatus | None = None,
        role: str | None = None,
        text: str | None = None,
        after: int | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[UserView]:
        """Return one page of users, oldest first, matching every filter given.

        ``text`` is a case-insensitive fragment of the userName, displayName or email.
        """
        text = (text or "").strip()
        query = UserQuery(
            status=status.value if status else None,
            text_key=user_name_key(text) if text else None,
            role=self.role_condition(role) if role is not None else None,
        )
        with self.database.read() as conn:
            total, records = queries.list_users(
                conn, query, after_pk=after, offset=offset, limit=limit + 1
            )
            views = self._views(conn, records[:limit])
        return Page(views, total, views[-1].pk if views else None, len(records) > limit)

    def get_user(self, user_id: str) -> UserView:
        """Return one user, or raise UserNotFound."""
        with self.database.read() as conn:
            record = store.get(conn, "User", user_id)
            if record is None:
                raise UserNotFound(f"no user {user_id}")
            return self._views(conn, [record])[0]

    def find_user(self, identifier: str) -> UserView:
        """Return the user with this id, userName or email address; raise UserNotFound."""
        with self.database.read() as conn:
            record = store.get(conn, "User", identifier)
            if record is None:
                account = accounts.account_by_login(conn, user_name_key(identifier.strip()))
                record = store.get(conn, "User", account.id) if account else None
            if record is None:
                raise UserNotFound(f"no user {identifier}")
            return self._views(conn, [record])[0]

    def _views(self, conn: Transaction, records: list[StoredResource]) -> list[UserView]:
        memberships = queries.groups_of_users(conn, [record.id for record in records])
        grants = queries.grants_of(conn, [record.pk for record in records])
        invited = [record.pk for record in records if record.status == UserStatus.INVITED]
        invitations = accounts.latest_invitations(conn, invited)
        views = []
        for record in records:
            doc = record.doc
            name = doc.get("name") or {}
            grant = grants.get(record.pk)
            sent, expires = invitations.get(record.pk, (None, None))
            views.append(
                UserView(
                    pk=record.pk,
                    id=record.id,
                    user_name=str(doc.get("userName") or ""),
                    email=_primary_email(doc),
                    given_name=_text(name.get("givenName")),
                    family_name=_text(name.get("familyName")),
                    display_name=_text(doc.get("displayName")),
                    phone_numbers=[
                        PhoneNumberView(str(phone["value"]), _text(phone.get("type")))
                        for phone in doc.get("phoneNumbers") or []
                        if phone.get("value")
                    ],
                    title=_text(doc.get("title")),
                    department=_text((doc.get(_ENTERPRISE) or {}).get("department")),
                    status=record.status or UserStatus.ACTIVE.value,
                    role=self.roles.effective_role(memberships[record.id]).name,
                    role_until=grant.expires if grant else None,
                    password_change_required=record.password_change_required,
                    last_login=record.last_login,
                    created=record.created,
                    last_modified=record.last_modified,
                    invitation_sent=sent,
                    unmailable_emails=_unmailable_emails(doc),
                    invitation_expires=expires,
                )
            )
        return views

    # -- groups and roles ----------------------------------------------------------------------

    def list_groups(
        self, *, after: int | None = None, offset: int = 0, limit: int = 50
    ) -> Page[GroupView]:
        """Return one page of groups, oldest first, with member counts and granted roles."""
        with self.database.read() as conn:
            total, found = queries.list_groups(conn, after_pk=after, offset=offset, limit=limit + 1)
        views = [
            GroupView(
                group,
                [
                    role.name
                    for role in self.roles.roles
                    if role.granted_by(group.display_name, group.external_id)
                ],
            )
            for group in found[:limit]
        ]
        return Page(views, total, views[-1].group.pk if views else None, len(found) > limit)

    def list_roles(self) -> list[RoleView]:
        """Return every configured role, highest priority first, with its granting groups."""
        with self.database.read() as conn:
            existing = queries.groups_matching(
                conn, _selector(g for role in self.roles.roles for g in role.groups)
            )
        views = []
        for role in sorted(self.roles.roles, key=lambda r: -r.priority):
            groups = []
            for spec in role.groups:
                matches = [
                    group
                    for group in existing
                    if Role(role.name, groups=(spec,)).granted_by(
                        group.display_name, group.external_id
                    )
                ]
                groups.append(RoleGroupView(spec, matches[0] if matches else None))
            views.append(RoleView(role, role.name == self.roles.default_role, groups))
        return views

    # -- audit ----------------------------------------------------------------------------------

    def audit_events(
        self,
        *,
        user_id: str | None = None,
        target: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: int | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[AuditEvent]:
        """Return one page of audit events, newest first; ``before`` pages by event key.

        ``target`` matches the target's id or name (a deleted user's address).
        """
        with self.database.read() as conn:
            total, events = audit_store.query(
                conn,
                target_id=user_id,
                target=target,
                actor=actor,
                action=action,
                since=since,
                until=until,
                offset=offset,
                limit=limit + 1,
                before_pk=before,
            )
        page = events[:limit]
        return Page(page, total, page[-1].pk if page else None, len(events) > limit)
