"""Email values: what RFC 7643 lets a client write, and which of them mail can go to.

RFC 7643 §4.1.2 types ``emails.value`` as a string (the provider SHOULD canonicalize it, nothing
more). Clients do write values that are no address: Entra ID's validator and Microsoft's
reference tests write work emails such as ``upd-…`` or ``emailName357``. scimbridge stores
what a client's profile lets it write, and only values that are addresses ever receive mail.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import email_validator
from scim2_models import Email as _Email


class Email(_Email):
    """An email of a user; ``value`` is any string, as RFC 7643 types it."""

    value: str | None = None
    """Email addresses for the user."""


def is_email_address(value: Any) -> bool:
    """Whether ``value`` is an email address mail can be sent to (syntax only, no DNS)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True


def mail_address(emails: Iterable[Mapping[str, Any]]) -> str | None:
    """Return where a user's mail goes: the primary address, else the first address.

    Values that are no address are passed over: they are kept, never mailed.
    """
    addresses = [entry for entry in emails if is_email_address(entry.get("value"))]
    chosen = next((entry for entry in addresses if entry.get("primary")), None)
    chosen = chosen or (addresses[0] if addresses else None)
    return str(chosen["value"]) if chosen else None
