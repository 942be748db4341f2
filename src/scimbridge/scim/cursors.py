"""Cursors of RFC 9865 cursor paging: page positions, signed and opaque to the client.

A cursor carries the position where the next (or previous) page starts, the query it
belongs to and the ``count`` it was made with, signed with the app's secret key and
stamped with its time of issue. A client cannot forge a position, reuse a cursor on
another query, or keep one beyond ``cursorTimeout``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from itsdangerous import BadData
from itsdangerous import SignatureExpired
from itsdangerous import URLSafeTimedSerializer
from scim2_models import ExpiredCursorException
from scim2_models import InvalidCountException
from scim2_models import InvalidCursorException
from scim2_models import SearchRequest

from ..domain.paging import FIRST_PAGE
from ..domain.paging import PagePosition

_SALT = "scimbridge.scim.cursor"


def query_fingerprint(resource_type: str, search: SearchRequest[Any]) -> str:
    """Return what identifies a query across its pages: resource type, filter and sort."""
    text = "\x1f".join(
        (
            resource_type,
            str(search.filter or ""),
            str(search.sort_by or "").lower(),
            str(search.sort_order or "ascending"),
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_value(value: Any) -> Any:
    # Sort values are JSON scalars, except timestamps (meta.created, meta.lastModified).
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.fromisoformat(str(value["t"]))
    return value


class CursorCodec:
    """Turns page positions into cursors and back."""

    def __init__(self, secret_key: bytes, timeout_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        self.timeout_seconds = timeout_seconds

    def encode(self, query: str, count: int, position: PagePosition) -> str:
        """Return the cursor of ``position`` for a query paged by ``count``."""
        payload: dict[str, Any] = {"q": query, "c": count}
        if not position.start:
            payload["v"] = _encode_value(position.sort_value)
            payload["p"] = position.pk
            payload["b"] = position.backward
        return str(self._serializer.dumps(payload))

    def decode(self, cursor: str, query: str, count: int) -> PagePosition:
        """Return the position a cursor names; an empty cursor names the first page.

        :raises ExpiredCursorException: The cursor is older than the cursor timeout.
        :raises InvalidCursorException: It was not issued here, or for another query.
        :raises InvalidCountException: It was issued for another ``count``.
        """
        if cursor == "":
            return FIRST_PAGE
        try:
            payload = self._serializer.loads(cursor, max_age=self.timeout_seconds)
        except SignatureExpired:
            raise ExpiredCursorException(
                detail=f"the cursor is older than {self.timeout_seconds} seconds "
                "(cursorTimeout); start again with an empty cursor"
            ) from None
        except BadData:
            raise InvalidCursorException(
                detail="the cursor was not issued by this server"
            ) from None
        if not isinstance(payload, dict) or payload.get("q") != query:
            raise InvalidCursorException(
                detail="the cursor belongs to another query: keep filter, sortBy and sortOrder "
                "as they were on the first page"
            )
        if payload.get("c") != count:
            raise InvalidCountException(
                detail=f"count must stay {payload.get('c')}, as on the first page of this query"
            )
        if "p" not in payload:
            return FIRST_PAGE
        return PagePosition(
            _decode_value(payload["v"]), int(payload["p"]), backward=bool(payload["b"])
        )
