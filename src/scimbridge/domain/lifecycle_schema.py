"""The SCIM extension exposing a user's lifecycle state (read-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from scim2_models import URN
from scim2_models import Extension
from scim2_models import Mutability
from scim2_models import Returned

LIFECYCLE_SCHEMA = "urn:scimbridge:params:scim:schemas:extension:lifecycle:1.0:User"


class LifecycleExtension(Extension):
    """Where a user stands in scimbridge's lifecycle; maintained by scimbridge, never written.

    Published in ``/Schemas`` and returned when a request names it in ``attributes`` (every
    attribute is ``returned: request``). It is left out of the User resource type's
    ``schemaExtensions`` so that clients which write every extension they are told about
    never try to write this read-only one.
    """

    __schema__ = URN(LIFECYCLE_SCHEMA)

    status: Annotated[str | None, Mutability.read_only, Returned.request] = None
    """One of invited, active or suspended (SCIM active=false)."""

    invitation_sent: Annotated[datetime | None, Mutability.read_only, Returned.request] = None
    """When the pending invitation was sent."""

    invitation_expires: Annotated[datetime | None, Mutability.read_only, Returned.request] = None
    """When the pending invitation's link stops working."""

    password_change_required: Annotated[bool | None, Mutability.read_only, Returned.request] = None
    """Whether the user must set a new password at next login (temporary password)."""

    last_login: Annotated[datetime | None, Mutability.read_only, Returned.request] = None
    """When the user last logged in through scimbridge."""


LIFECYCLE_ATTRIBUTES = (
    "status",
    "invitationSent",
    "invitationExpires",
    "passwordChangeRequired",
    "lastLogin",
)
"""The extension's attribute names, as they appear on the wire."""
