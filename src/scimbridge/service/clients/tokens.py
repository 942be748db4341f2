"""Bearer tokens for SCIM clients and System API programs: created once, shown once, hashed."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from datetime import UTC
from datetime import datetime

from ...store import tokens as token_store
from ...store.database import Database
from ...store.resources import DuplicateKey
from ...store.tokens import TokenInfo

logger = logging.getLogger(__name__)

PROFILES = ("strict", "entra", "okta", "generic")
"""Client profiles: which known deviations of an identity provider a token's client may send."""

KINDS = ("scim", "api")
"""``scim`` tokens open ``/scim/v2``, ``api`` tokens the System API (``/api/v1``); never both."""

SCOPES = ("users:read", "users:write", "invitations:write", "sessions:write", "audit:read")
"""What a System API token may be allowed to do; each API operation needs one of them."""

# last_used is advisory: writing it on every request would turn every read into a write.
_TOUCH_INTERVAL_SECONDS = 60.0

# A checked token is trusted for this long without a database read while no revocation
# happened meanwhile (see authenticate); the bound only limits how long a process holds on.
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
        # digest -> (when checked, revocation mark then, what the database said)
        self._cache: dict[str, tuple[float, int, TokenInfo]] = {}
        self._mark_path = token_store.revocation_mark_path(database)

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
        """Delete a token; return whether it existed.

        It is refused from then on by every process serving the database: this one forgets
        it, the others see the revocation mark move (SQLite) or never cache (PostgreSQL).
        """
        with self.database.write() as conn:
            deleted = token_store.delete_token(conn, name)
        if deleted and self._mark_path is not None:
            try:
                token_store.leave_revocation_mark(self._mark_path)
            except OSError as exc:
                # The token is gone from the database; other processes still trusting it
                # from their cache read it again within _CACHE_SECONDS.
                logger.warning(
                    "token %s revoked, but the revocation mark %s cannot be written (%s): "
                    "other processes refuse it within %.0f s",
                    name,
                    self._mark_path,
                    exc,
                    _CACHE_SECONDS,
                )
        self._cache = {key: value for key, value in self._cache.items() if value[2].name != name}
        return deleted

    def authenticate(self, token: str, kind: str = "scim") -> TokenInfo | None:
        """Return the token's information when it is valid for ``kind``, else None.

        A token checked in the last seconds is trusted without a database read only while
        the revocation mark has not moved; without a mark every check reads the database.
        The mark is read before the database, so a revocation committed after the read
        still moves it past what the cache entry remembers.
        """
        digest = hash_token(token)
        now = time.monotonic()
        mark = token_store.revocation_mark(self._mark_path) if self._mark_path else None
        cached = self._cache.get(digest)
        info: TokenInfo | None
        if (
            mark is not None
            and cached is not None
            and cached[1] == mark
            and now - cached[0] < _CACHE_SECONDS
        ):
            info = cached[2]
        else:
            with self.database.read() as conn:
                info = token_store.find_token(conn, digest)
            if info is None or mark is None:
                self._cache.pop(digest, None)
            else:
                self._cache[digest] = (now, mark, info)
        if info is None or info.kind != kind:
            return None
        if now - self._last_touch.get(info.name, -_TOUCH_INTERVAL_SECONDS) >= (
            _TOUCH_INTERVAL_SECONDS
        ):
            self._last_touch[info.name] = now
            with self.database.write() as conn:
                token_store.touch_token(conn, info.name, datetime.now(UTC))
        return info
