"""The SCIM resource models scimbridge serves, and the record a stored resource comes back as."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Annotated
from typing import Any
from typing import Protocol
from typing import Union

import email_validator
from pydantic import Field
from scim2_models import CaseExact
from scim2_models import Group as _Group
from scim2_models import GroupMember as _GroupMember
from scim2_models import Mutability
from scim2_models import Reference
from scim2_models import ScimPolicy
from scim2_models import User as _User
from scim2_models.resources.resource import AnyExtension

from .emails import Email
from .emails import forget_email_checks
from .enterprise import EnterpriseUser
from .lifecycle_schema import LifecycleExtension

# Domains that email-validator refuses as "special use" but that directories really use:
# ".local" is Active Directory's classic internal domain, and Okta's own samples use it.
INTERNAL_EMAIL_DOMAINS = ("local",)


def accept_internal_email_domains() -> None:
    """Let SCIM email values use internal domains such as ``alice@corp.local``.

    scim2-models validates ``emails.value`` with email-validator, whose list of refused
    special-use domains is a module setting; RFC 7643 sets no such rule.
    """
    for domain in INTERNAL_EMAIL_DOMAINS:
        if domain in email_validator.SPECIAL_USE_DOMAIN_NAMES:
            email_validator.SPECIAL_USE_DOMAIN_NAMES.remove(domain)
    forget_email_checks()


class User(_User[AnyExtension]):
    """User Account: scim2-models' User whose ``emails.value`` is any string (RFC 7643 §4.1.2)."""

    emails: list[Email] | None = None  # type: ignore[assignment]
    """Email addresses for the User."""


UserResource = User[EnterpriseUser | LifecycleExtension]
"""Core User with the Enterprise User extension and scimbridge's lifecycle extension."""


class GroupMember(_GroupMember):
    """A member of a Group; its id and URI compare without regard to case (RFC 7643 §8.7.1).

    Ids scimbridge issues are lower-case UUIDs, so the stored form is the comparison form.
    """

    value: Annotated[str | None, Mutability.immutable, CaseExact.false] = None
    """Identifier of the member of this Group."""

    ref: Annotated[
        Reference[Union["User", "Group"]] | None,  # type: ignore[type-arg]  # noqa: UP007, UP037
        Mutability.immutable,
        CaseExact.false,
    ] = Field(None, serialization_alias="$ref", validation_alias="$ref")  # type: ignore[assignment]
    """The URI corresponding to a SCIM resource that is a member of this Group."""

    display: str | None = None
    """A human-readable name for the group member, primarily used for display purposes."""


class Group(_Group):
    """Group."""

    members: list[GroupMember] | None = None  # type: ignore[assignment]
    """A list of members of the Group."""


GroupResource = Group


@dataclass
class Membership:
    """A direct membership, as seen from either side."""

    id: str
    """The other side: the member's id, or the group's id."""

    type: str
    """``User`` or ``Group``."""

    display: str | None = None

    kind: str = "direct"
    """For a user's groups: ``direct``, or ``indirect`` through a nested group."""


@dataclass
class StoredResource:
    """A resource as the store holds it: its document plus what the store manages itself."""

    pk: int
    id: str
    resource_type: str
    doc: dict[str, Any]
    """The SCIM representation without ``id``, ``meta``, ``groups`` and ``members``."""
    created: datetime
    last_modified: datetime
    version: int
    memberships: list[Membership] | None = field(default=None)
    """``groups`` of a user or ``members`` of a group; None when not loaded."""
    members_json: str | None = None
    """A group's ``members`` as the JSON text of the SCIM array, when read so for a response
    (``memberships`` is then None); None also when the group has no members."""

    status: str | None = None
    """A user's lifecycle state (``invited``, ``active``, ``suspended``); None for groups."""

    password_change_required: bool = False
    last_login: datetime | None = None
    invitation: tuple[datetime, datetime] | None = None
    """(sent, expires) of an invited user's latest invitation, when loaded."""

    @property
    def etag(self) -> str:
        """The weak entity tag of this version (RFC 7644 §3.14)."""
        return f'W/"{self.version}"'


class PatchTolerance(Protocol):
    """How far a client's PATCH requests may depart from RFC 7644 (its token's profile)."""

    @property
    def policy(self) -> ScimPolicy:
        """The scim2-models policy operations are applied under."""

    @property
    def unmatched_filter_policy(self) -> ScimPolicy | None:
        """The policy to retry with when a path filter matched nothing, or None to refuse."""

    def note_unmatched_filter(self, detail: str) -> None:
        """Record that the retry policy was needed."""

    def admit_email_values(self, values: Iterable[str]) -> None:
        """Accept the email values a write adds, or refuse (raise) those it may not store."""
