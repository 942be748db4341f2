"""Email values: what RFC 7643 lets a client write, and which of them mail can go to.

RFC 7643 §4.1.2 types ``emails.value`` as a string (the provider SHOULD canonicalize it, nothing
more). Clients do write values that are no address: Entra ID's validator and Microsoft's
reference tests write work emails such as ``upd-…`` or ``emailName357``. scimbridge stores
what a client's profile lets it write, and only values that are addresses ever receive mail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping
from functools import lru_cache
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
    if len(value) > _REMEMBERED_LENGTH:
        return _is_address(value)
    return _remembered_is_address(value)


# No address is longer than 254 characters (RFC 5321 paths): a longer value is checked (and
# refused) without being remembered, so the memory the cache holds stays small.
_REMEMBERED_LENGTH = 320


def _is_address(value: str) -> bool:
    """Check a string with email-validator, unless it is a plain address (see below)."""
    if _is_plain_address(value):
        return True
    try:
        email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return False
    return True


# The addresses clients nearly always send: ASCII atoms, a dotted host name ending in a
# letter-only top-level label. Each such address passes every check of email-validator (atom
# characters, dots not leading, trailing or doubled, labels of 1-63 characters neither
# starting nor ending with a hyphen, a period in the domain, a top-level domain ending in a
# letter); the lengths, R-LDH labels (``ab--c``) and special-use domains are checked below.
# Anything else is left to email-validator, so this answers in microseconds what it answers
# in tens of them, and never differently (tests/test_email_plain_check.py).
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_ADDRESS_MAX_LENGTH = 254
_LOCAL_PART_MAX_LENGTH = 64


def _is_plain_address(value: str) -> bool:
    """Whether ``value`` is an address of the plain form email-validator surely accepts."""
    if len(value) > _ADDRESS_MAX_LENGTH or not _PLAIN_ADDRESS.fullmatch(value):
        return False
    local, _, domain = value.partition("@")
    if len(local) > _LOCAL_PART_MAX_LENGTH or "--" in domain:
        return False
    domain = domain.lower()
    # Read at each call: the list is a module setting (see accept_internal_email_domains).
    return not any(
        domain == special or domain.endswith("." + special)
        for special in email_validator.SPECIAL_USE_DOMAIN_NAMES
    )


_remembered_is_address = lru_cache(maxsize=4096)(_is_address)
""":func:`_is_address`, remembering its answers.

The check costs tens of microseconds (domain syntax, character by character) and one write
can ask it several times of the same value: a create with ``invite_on_create`` checks an email
when admitting it and again when choosing where the invitation goes, and every PATCH or PUT
checks the emails it keeps. The answer depends only on the value and on email-validator's
module settings, which change once, at start-up (:func:`forget_email_checks` is called then).
"""


def mail_address(emails: Iterable[Mapping[str, Any]]) -> str | None:
    """Return where a user's mail goes: the primary address, else the first address.

    Values that are no address are passed over: they are kept, never mailed.
    """
    addresses = [entry for entry in emails if is_email_address(entry.get("value"))]
    chosen = next((entry for entry in addresses if entry.get("primary")), None)
    chosen = chosen or (addresses[0] if addresses else None)
    return str(chosen["value"]) if chosen else None


def forget_email_checks() -> None:
    """Drop remembered answers: email-validator's module settings have just changed."""
    _remembered_is_address.cache_clear()
