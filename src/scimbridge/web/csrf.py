"""Cross-site request forgery protection for the HTML forms: signed double-submit tokens.

A browser gets a random value in a cookie of its own (``scimbridge_csrf``). Every form carries
a token signed with the server's secret key that names that value and the login session the
form was shown in. A POST is accepted only with a token whose signature holds, whose value
equals the browser's cookie, and whose session is the visitor's current one: another site can
neither read the cookie nor sign a token, and a token lifted from one session does not work in
another. Nothing is stored on the server.
"""

from __future__ import annotations

import hmac
import re
import secrets
from enum import Enum

from itsdangerous import BadData
from itsdangerous import URLSafeTimedSerializer

COOKIE_NAME = "scimbridge_csrf"
FIELD_NAME = "csrf_token"

# A form left open longer than this must be reloaded; a day covers a working day's tab.
MAX_AGE_SECONDS = 24 * 3600

_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


class Verdict(Enum):
    """What a submitted token proves."""

    VALID = "valid"
    INVALID = "invalid"
    """Missing, forged, expired, or not this browser's."""

    SESSION_ENDED = "session-ended"
    """Genuine, but shown in a login session that has ended since (logout, expiry)."""


def new_cookie_value() -> str:
    """Return a fresh random value for a browser's CSRF cookie."""
    return secrets.token_urlsafe(32)


def usable_cookie_value(value: str | None) -> bool:
    """Whether a cookie sent by the browser looks like one scimbridge set."""
    return value is not None and _COOKIE_VALUE.fullmatch(value) is not None


class CsrfSigner:
    """Issues and checks the tokens of one secret key."""

    def __init__(self, secret_key: bytes) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="scimbridge.csrf")

    def token(self, cookie_value: str, session_id: str | None) -> str:
        """Return a token for a form shown to the browser holding ``cookie_value``."""
        return self._serializer.dumps([cookie_value, session_id or ""])

    def check(
        self,
        token: str | None,
        cookie_value: str | None,
        session_id: str | None,
        *,
        max_age: int = MAX_AGE_SECONDS,
    ) -> Verdict:
        """Judge the token a form sent back."""
        if not token or not usable_cookie_value(cookie_value) or len(token) > 512:
            return Verdict.INVALID
        assert cookie_value is not None
        try:
            payload = self._serializer.loads(token, max_age=max_age)
        except BadData:
            return Verdict.INVALID
        if (
            not isinstance(payload, list)
            or len(payload) != 2
            or not all(isinstance(part, str) for part in payload)
        ):
            return Verdict.INVALID
        signed_cookie, signed_session = payload
        if not hmac.compare_digest(signed_cookie, cookie_value):
            return Verdict.INVALID
        if hmac.compare_digest(signed_session, session_id or ""):
            return Verdict.VALID
        # A form shown while logged in, sent after the session ended: it proves the browser,
        # and asking to log in again is kinder than an error.
        return Verdict.SESSION_ENDED if signed_session and not session_id else Verdict.INVALID
