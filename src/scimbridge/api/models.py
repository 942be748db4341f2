"""The System API's request and response bodies and query parameters, as pydantic models.

They validate what programs send and, through their JSON schemas, make the OpenAPI document:
what the document says is what the code checks. Request bodies are strict (no type coercion,
no unknown members); query parameters are strings by nature and parsed as their type.
"""

from __future__ import annotations

import re
from datetime import UTC
from datetime import datetime
from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import AfterValidator
from pydantic import AwareDatetime
from pydantic import BaseModel
from pydantic import BeforeValidator
from pydantic import ConfigDict
from pydantic import EmailStr
from pydantic import Field
from pydantic import StringConstraints

# Control characters have no place in names or addresses, and PostgreSQL refuses NUL.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

Name = Annotated[str, StringConstraints(max_length=100, pattern=_PRINTABLE)]
ShortText = Annotated[str, StringConstraints(max_length=255, pattern=_PRINTABLE)]
RoleName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]
Email = Annotated[EmailStr, Field(max_length=254)]
UserStatusName = Literal["invited", "active", "suspended"]


def _digits(value: Any) -> Any:
    # Query strings carry text: accept plain decimal digits only, not "1.0", "+5" or "5_0".
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,10}", value):
        raise ValueError("must be a whole number written in digits")
    return value


def _in_utc(value: datetime) -> datetime:
    # An offset at the edge of the calendar (year 9999, -05:00) has no UTC equivalent.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the range of dates") from None


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: Any) -> datetime:
    # pydantic alone would also read numbers ("0.5") as Unix times and "2030-01-01" as a date.
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2030-01-31T17:00:00Z")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError("is not a valid date and time") from None


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_utc)]
"""A date and time with its offset (RFC 3339), held in UTC."""


class RequestBody(BaseModel):
    """A request body: strict types, unknown members refused."""

    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


class ResponseBody(BaseModel):
    """A response body: every member always present (null when unset)."""

    model_config = ConfigDict(
        json_schema_serialization_defaults_required=True, use_attribute_docstrings=True
    )


class QueryParameters(BaseModel):
    """Query parameters; unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True)


# -- requests ----------------------------------------------------------------------------------


class PhoneNumberIn(RequestBody):
    """A phone number to set."""

    value: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]
    type: Literal["work", "mobile", "home", "fax", "pager", "other"] = "work"


class CreateUserRequest(RequestBody):
    """A user to create directly, active, who must change the password at first login."""

    email: Email
    """Email address; also the userName the user logs in with."""
    given_name: Name | None = None
    family_name: Name | None = None
    role: RoleName | None = None
    """Role name (see `GET /roles`); the default role when absent."""
    temporary_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = (
        None
    )
    """A temporary password chosen by the caller (checked against the password policy). When
    absent, one is generated and returned once in the answer."""


class UpdateUserRequest(RequestBody):
    """Profile and contact details to change; absent members stay as they are, "" clears."""

    given_name: Name | None = None
    family_name: Name | None = None
    email: Email | None = None
    """New primary email address; the old address is told of the change."""
    phone_numbers: Annotated[list[PhoneNumberIn], Field(max_length=10)] | None = None
    """Replaces every phone number ([] removes them all)."""
    title: ShortText | None = None
    department: ShortText | None = None


class RoleChangeRequest(RequestBody):
    """A new role, for good or until a moment."""

    role: RoleName
    until: Moment | None = None
    """With a time zone; the user goes back to their current role at that moment."""


class InvitationRequest(RequestBody):
    """One person to invite."""

    email: Email
    role: RoleName | None = None
    """Role name (see `GET /roles`); the default role when absent."""


class InvitationBatchRequest(RequestBody):
    """Several people to invite; each invitation succeeds or fails on its own."""

    invitations: Annotated[list[InvitationRequest], Field(min_length=1, max_length=100)]


# -- query parameters --------------------------------------------------------------------------

# Bounds come before the digits check: after it, pydantic no longer writes them in the schema.
Limit = Annotated[int, Field(ge=1, le=200, description="Items per page."), BeforeValidator(_digits)]
Offset = Annotated[
    int,
    Field(ge=0, le=10_000_000, description="Matches to skip (offset paging)."),
    BeforeValidator(_digits),
]
Cursor = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    Field(description="`next_cursor` of the previous page (cursor paging)."),
]
# Query parameters stay short: with every one at its longest, the request line still fits the
# 4 KiB that HTTP servers (gunicorn) accept.
SearchText = Annotated[
    str,
    StringConstraints(max_length=100, pattern=_PRINTABLE),
    Field(description="Case-insensitive fragment of the name, userName or email."),
]


class PageQuery(QueryParameters):
    """Paging: by cursor (stable while users come and go) or by offset."""

    limit: Limit = 50
    offset: Offset = 0
    cursor: Cursor | None = None


class UserListQuery(PageQuery):
    """Filters of the user list."""

    status: UserStatusName | None = None
    role: RoleName | None = None
    q: SearchText | None = None


class InvitationListQuery(PageQuery):
    """Filters of the pending invitations."""

    q: SearchText | None = None


class AuditQuery(PageQuery):
    """Filters of the audit trail."""

    user_id: Annotated[str, StringConstraints(pattern=_UUID)] | None = Field(
        default=None, description="Events about this user (deleted ones included)."
    )
    actor: Annotated[str, StringConstraints(max_length=128, pattern=_PRINTABLE)] | None = Field(
        default=None, description="Actor id or name, e.g. an API token's name."
    )
    action: Annotated[str, StringConstraints(max_length=64, pattern=_PRINTABLE)] | None = Field(
        default=None, description="E.g. `user.suspended`."
    )
    since: Moment | None = Field(default=None, description="Events at or after.")
    until: Moment | None = Field(default=None, description="Events before.")


# -- responses ---------------------------------------------------------------------------------


class PhoneNumber(ResponseBody):
    """A user's phone number."""

    value: str
    type: str | None


class User(ResponseBody):
    """A user (never a password)."""

    id: str
    user_name: str
    email: str | None
    given_name: str | None
    family_name: str | None
    display_name: str | None
    phone_numbers: list[PhoneNumber]
    title: str | None
    department: str | None
    status: UserStatusName
    role: str
    role_until: datetime | None
    """When a temporary role ends."""
    password_change_required: bool
    last_login: datetime | None
    created: datetime
    last_modified: datetime


class CreatedUser(User):
    """A user just created."""

    temporary_password: str | None
    """The generated temporary password, shown this once; null when the caller chose it, and
    in a replayed answer (it is never stored)."""


class UserList(ResponseBody):
    """A page of users, oldest first."""

    items: list[User]
    total: int
    """Users matching the filters."""
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


class Invitation(ResponseBody):
    """A pending invitation; its id is the invited user's."""

    id: str
    email: str | None
    role: str
    sent: datetime | None
    expires: datetime | None
    expired: bool
    """The link has expired: resend it."""


class InvitationList(ResponseBody):
    """A page of pending invitations, oldest first."""

    items: list[Invitation]
    total: int
    next_cursor: str | None


class FieldProblem(ResponseBody):
    """One field at fault."""

    field: str
    message: str


class Problem(ResponseBody):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)

    type: str
    """Stable URI of the kind of problem (see the reference)."""
    title: str
    status: int
    detail: str
    request_id: str | None = None
    errors: list[FieldProblem] | None = None


class InvitationOutcome(ResponseBody):
    """What became of one invitation of a batch: an invitation, or a problem."""

    email: str
    invitation: Invitation | None
    problem: Problem | None


class InvitationBatchResult(ResponseBody):
    """Outcomes in the order of the request."""

    results: list[InvitationOutcome]


class PasswordResetQueued(ResponseBody):
    """A reset email is on its way."""

    user_id: str
    email: str


class Session(ResponseBody):
    """A login session (never its token)."""

    id: str
    created: datetime
    last_seen: datetime
    client_address: str | None
    user_agent: str | None


class SessionList(ResponseBody):
    """A user's sessions, newest first."""

    items: list[Session]


class SessionsEnded(ResponseBody):
    """How many sessions ended."""

    ended: int


class AuditActor(ResponseBody):
    """Who acted: ``admin``, ``user``, ``scim``, ``api``, ``cli`` or ``system``."""

    type: str
    id: str | None
    name: str | None


class AuditTarget(ResponseBody):
    """What was acted on."""

    type: str | None
    id: str | None
    name: str | None


class AuditEvent(ResponseBody):
    """One recorded change."""

    id: int
    at: datetime
    actor: AuditActor
    action: str
    target: AuditTarget
    changes: dict[str, Any] | None
    request_id: str | None
    client_address: str | None


class AuditEventList(ResponseBody):
    """A page of audit events, newest first."""

    items: list[AuditEvent]
    total: int
    next_cursor: str | None


class RoleGroup(ResponseBody):
    """A group granting a role, as the roles file names it, and the group when it exists."""

    spec: str
    """A displayName, or `externalId:<value>`."""
    group_id: str | None
    display_name: str | None
    member_count: int | None


class Role(ResponseBody):
    """A configured role."""

    name: str
    description: str
    permissions: list[str]
    priority: int
    default: bool
    """Users in no granting group hold this role."""
    groups: list[RoleGroup]


class RoleList(ResponseBody):
    """Every role, highest priority first."""

    items: list[Role]


class Group(ResponseBody):
    """A group, with its direct member count and the roles it grants."""

    id: str
    display_name: str
    external_id: str | None
    member_count: int
    grants_roles: list[str]


class GroupList(ResponseBody):
    """A page of groups, oldest first."""

    items: list[Group]
    total: int
    next_cursor: str | None
