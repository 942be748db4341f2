"""Bearer tokens for SCIM clients and System API programs: created once, shown once, hashed."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from datetime import UTC
from datetime import datetime

from ...store import tokens as token_store
from ...store.database import Database
from ...store.resources import DuplicateKey
from ...store.tokens import TokenInfo

PROFILES = ("strict", "entra", "okta", "generic")
"""Client profiles: which known deviations of an identity provider a token's client may send."""

KINDS = ("scim", "api")
"""``scim`` tokens open ``/scim/v2``, ``api`` tokens the System API (``/api/v1``); never both."""

SCOPES = ("users:read", "users:write", "invitations:write", "sessions:write", "audit:read")
"""What a System API token may be allowed to do; each API operation needs one of them."""

# last_used is advisory: writing it on every request would turn every read into a write.
_TOUCH_INTERVAL_SECONDS = 60.0

# A checked token is trusted for this long without a database read, so a revocation takes
# effect in every worker within this delay.
_CACHE_SECONDS = 5.0


class TokenNameTaken(Exception):
    """A token with this name already exists."""


def hash_token(token: str) -> str:
    """Return the stored digest of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenService:
    """Create, list, revoke and check bearer tokens."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._last_touch: dict[str, float] = {}
        self._cache: dict[str, tuple[float, TokenInfo]] = {}

    def create(
        self,
        name: str,
        profile: str = "strict",
        kind: str = "scim",
        scopes: Iterable[str] = (),
    ) -> str:
        """Create a token and return it; it cannot be read back later.

        ``scopes`` are for ``api`` tokens only (see :data:`SCOPES`).
        """
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}, expected one of {PROFILES}")
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}, expected one of {KINDS}")
        granted = frozenset(scopes)
        unknown = sorted(granted - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}, expected some of {SCOPES}")
        if granted and kind != "api":
            raise ValueError("scopes are for api tokens; a scim token may do all of SCIM")
        token = secrets.token_urlsafe(32)
        with self.database.write() as conn:
            try:
                token_store.insert_token(
                    conn, name, hash_token(token), kind, profile, datetime.now(UTC), granted
                )
            except DuplicateKey as exc:
                raise TokenNameTaken(name) from exc
        return token

    def list(self) -> list[TokenInfo]:
        """Return every token's name, kind, profile, scopes and dates."""
        with self.database.read() as conn:
            return token_store.list_tokens(conn)

    def revoke(self, name: str) -> bool:
        """Delete a token; return whether it existed."""
        with self.database.write() as conn:
            deleted = token_store.delete_token(conn, name)
        self._cache = {key: value for key, value in self._cache.items() if value[1].name != name}
        return deleted

    def authenticate(self, token: str, kind: str = "scim") -> TokenInfo | None:
        """Return the token's information when it is valid for ``kind``, else None."""
        digest = hash_token(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < _CACHE_SECONDS:
            info: TokenInfo | None = cached[1]
        else:
            with self.database.read() as conn:
                info = token_store.find_token(conn, digest)
            if info is None:
                self._cache.pop(digest, None)
            else:
                self._cache[digest] = (now, info)
        if info is None or info.kind != kind:
            return None
        if now - self._last_touch.get(info.name, -_TOUCH_INTERVAL_SECONDS) >= (
            _TOUCH_INTERVAL_SECONDS
        ):
            self._last_touch[info.name] = now
            with self.database.write() as conn:
                token_store.touch_token(conn, info.name, datetime.now(UTC))
        return info
