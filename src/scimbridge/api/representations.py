"""From the service's views to the System API's response models (also the CLI's ``--json``)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from ..service.directory.reads import GroupView
from ..service.directory.reads import RoleView
from ..service.directory.reads import UserView
from ..store.audit import AuditEvent as StoredEvent
from ..store.lifecycle import SessionRow
from . import models


def user(view: UserView) -> models.User:
    """Represent a user."""
    return models.User(
        id=view.id,
        user_name=view.user_name,
        email=view.email,
        given_name=view.given_name,
        family_name=view.family_name,
        display_name=view.display_name,
        phone_numbers=[
            models.PhoneNumber(value=phone.value, type=phone.type) for phone in view.phone_numbers
        ],
        title=view.title,
        department=view.department,
        status=view.status,
        role=view.role,
        role_until=view.role_until,
        password_change_required=view.password_change_required,
        last_login=view.last_login,
        created=view.created,
        last_modified=view.last_modified,
    )


def created_user(view: UserView, temporary_password: str | None) -> models.CreatedUser:
    """Represent a user just created, with the generated password when there is one."""
    return models.CreatedUser(**user(view).model_dump(), temporary_password=temporary_password)


def invitation(view: UserView, now: datetime | None = None) -> models.Invitation:
    """Represent the pending invitation of an invited user."""
    now = now or datetime.now(UTC)
    return models.Invitation(
        id=view.id,
        email=view.email,
        role=view.role,
        sent=view.invitation_sent,
        expires=view.invitation_expires,
        expired=view.invitation_expires is not None and view.invitation_expires <= now,
    )


def session(row: SessionRow) -> models.Session:
    """Represent a login session."""
    return models.Session(
        id=row.id,
        created=row.created,
        last_seen=row.last_seen,
        client_address=row.client_address,
        user_agent=row.user_agent,
    )


def audit_event(event: StoredEvent) -> models.AuditEvent:
    """Represent an audit event."""
    return models.AuditEvent(
        id=event.pk,
        at=event.at,
        actor=models.AuditActor(type=event.actor_type, id=event.actor_id, name=event.actor_name),
        action=event.action,
        target=models.AuditTarget(
            type=event.target_type, id=event.target_id, name=event.target_name
        ),
        changes=event.changes,
        request_id=event.request_id,
        client_address=event.client_address,
    )


def role(view: RoleView) -> models.Role:
    """Represent a configured role and its granting groups."""
    return models.Role(
        name=view.role.name,
        description=view.role.description,
        permissions=sorted(view.role.permissions),
        priority=view.role.priority,
        default=view.is_default,
        groups=[
            models.RoleGroup(
                spec=entry.spec,
                group_id=entry.group.id if entry.group else None,
                display_name=entry.group.display_name if entry.group else None,
                member_count=entry.group.member_count if entry.group else None,
            )
            for entry in view.groups
        ],
    )


def group(view: GroupView) -> models.Group:
    """Represent a group."""
    return models.Group(
        id=view.group.id,
        display_name=view.group.display_name,
        external_id=view.group.external_id,
        member_count=view.group.member_count,
        grants_roles=view.grants_roles,
    )
