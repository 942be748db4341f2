"""Opaque cursors of the System API's listings.

A cursor names the last item of a page; the next page starts after it, so items created or
deleted meanwhile neither repeat nor go missing. Its form is not part of the contract.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from ..service.directory.reads import Page
from .problems import ApiProblem
from .problems import FieldError

_FORM = re.compile(r"k([0-9]{1,18})")


def encode_cursor(key: int) -> str:
    """Return the cursor of the item with this key."""
    return base64.urlsafe_b64encode(f"k{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """Return the key a cursor names; refuse a cursor scimbridge did not make."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    found = _FORM.fullmatch(text)
    if found is None:
        raise ApiProblem(
            "validation",
            "the cursor is not one this API returned",
            [FieldError("cursor", "pass the next_cursor of a previous page unchanged")],
        )
    return int(found.group(1))


def next_cursor(page: Page[Any]) -> str | None:
    """Return the cursor of the page after this one, or None on the last page."""
    if not page.has_more or page.last_key is None:
        return None
    return encode_cursor(page.last_key)
