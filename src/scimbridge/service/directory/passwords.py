"""Passwords: hashing with argon2id, and the password policy."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Return the argon2id hash of a password."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    text = resources.files(__package__).joinpath("common_passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def policy_violations(
    password: str,
    *,
    min_length: int,
    reject_common: bool,
    personal: Iterable[str | None] = (),
) -> list[str]:
    """Return why a new password is refused; an empty list means it is accepted.

    ``personal`` holds the user's own identifiers (email, userName), which a password may not
    be, or contain.
    """
    reasons = []
    if len(password) < min_length:
        reasons.append(f"use at least {min_length} characters")
    if password.strip() != password:
        reasons.append("do not start or end with spaces")
    lowered = password.lower()
    if reject_common and lowered in _common_passwords():
        reasons.append("this password is among the most common ones; choose another")
    for value in personal:
        if not value:
            continue
        local = value.lower().split("@")[0]
        if len(local) >= 4 and local in lowered:
            reasons.append("do not use your username or email address in the password")
            break
    return reasons


def generate_password() -> str:
    """Return a random temporary password (shown once to the admin who asked for it)."""
    return secrets.token_urlsafe(12)
