"""The user lifecycle: states, who acts, and the refusals a lifecycle operation can end in."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum


class UserStatus(StrEnum):
    """Where a user stands. SCIM ``active=false`` is ``suspended``."""

    INVITED = "invited"
    """Created by invitation; has no password until the invitation is accepted."""

    ACTIVE = "active"
    """May log in."""

    SUSPENDED = "suspended"
    """Login blocked at once; data and audit history kept."""


class LinkPurpose(StrEnum):
    """What a single-use emailed link is for."""

    INVITATION = "invitation"
    PASSWORD_RESET = "reset"


@dataclass(frozen=True)
class Actor:
    """Who performs an operation, as the audit trail names them."""

    type: str
    """``admin``, ``user`` (the user themself), ``scim`` (a SCIM token), ``api`` (an API
    token), ``cli`` or ``system``."""

    id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls) -> Actor:
        """Scimbridge itself (timed role grants reverting…)."""
        return cls("system", None, "scimbridge")


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_of(header: str | None) -> str:
    """Return the caller's request id when usable (1–64 of ``A-Za-z0-9._:-``), else a new one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    # 128 random bits as 32 hex digits, the form of a uuid4 hex; without building a UUID
    # object, a third of the cost, on every request.
    return secrets.token_hex(16)


@dataclass(frozen=True)
class RequestInfo:
    """Where a request came from, for the audit trail and rate limits."""

    request_id: str | None = None
    client_address: str | None = None
    user_agent: str | None = None


class LifecycleError(Exception):
    """A lifecycle operation was refused; ``str()`` is safe to show to the person acting."""


class UserNotFound(LifecycleError):
    """No user with this id."""


class InvalidEmail(LifecycleError):
    """The address is not a usable email address."""


class EmailTaken(LifecycleError):
    """Another user already has this email address (or userName)."""


class InvalidTransition(LifecycleError):
    """The user's state does not allow this operation (e.g. resend to an active user)."""


class LinkInvalid(LifecycleError):
    """An invitation or reset link is unknown, used, voided or expired."""


class PasswordRejected(LifecycleError):
    """A new password breaks the password policy."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class LoginRefused(LifecycleError):
    """Wrong credentials, or an account that may not log in."""


class RateLimited(LifecycleError):
    """Too many attempts; try again later."""


class UnknownRole(LifecycleError):
    """The role is not defined in the roles file."""
