"""SCIM tokens managed by an admin in the browser: created with a client profile, revoked."""

from __future__ import annotations

import re
from datetime import UTC
from datetime import datetime

from ...domain.lifecycle import Actor
from ...domain.lifecycle import LifecycleError
from ...domain.lifecycle import RequestInfo
from ...store.database import Database
from ...store.tokens import TokenInfo
from ..directory import audit
from .tokens import PROFILES
from .tokens import TokenNameTaken
from .tokens import TokenService

__all__ = ["InvalidTokenRequest", "TokenAdmin", "TokenInfo"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class InvalidTokenRequest(LifecycleError):
    """A token cannot be created as asked; ``field`` names the form field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class TokenAdmin:
    """Creates and revokes SCIM tokens on an admin's behalf, leaving an audit event each time."""

    def __init__(self, tokens: TokenService, database: Database) -> None:
        self.tokens = tokens
        self.database = database

    def list(self) -> list[TokenInfo]:
        """Return every token (SCIM and System API), oldest first."""
        return self.tokens.list()

    def create(
        self, name: str, profile: str, actor: Actor, request: RequestInfo | None = None
    ) -> str:
        """Create a SCIM token for a client of ``profile``; return it (shown once, never again)."""
        if not _NAME.fullmatch(name):
            raise InvalidTokenRequest(
                "name",
                "use 1 to 64 letters, digits, dots, dashes or underscores, starting with a "
                "letter or digit",
            )
        if profile not in PROFILES:
            raise InvalidTokenRequest("profile", f"choose one of {', '.join(PROFILES)}")
        try:
            token = self.tokens.create(name, profile=profile, kind="scim")
        except TokenNameTaken:
            raise InvalidTokenRequest("name", f"a token named {name} already exists") from None
        # The token service commits on its own; the event follows in a transaction of its own.
        self._audit("token.created", name, {"kind": "scim", "profile": profile}, actor, request)
        return token

    def revoke(self, name: str, actor: Actor, request: RequestInfo | None = None) -> bool:
        """Revoke a token at once, in every process serving the database; audited."""
        revoked = self.tokens.revoke(name)
        if revoked:
            self._audit("token.revoked", name, None, actor, request)
        return revoked

    def _audit(
        self,
        action: str,
        name: str,
        changes: dict[str, str] | None,
        actor: Actor,
        request: RequestInfo | None,
    ) -> None:
        with self.database.write() as conn:
            audit.record(
                conn,
                actor,
                action,
                target_type="Token",
                target_id=name,
                target_name=name,
                changes=changes,
                request=request,
                now=datetime.now(UTC),
            )
