"""Passwords for a directory that takes them only in clear text (Active Directory).

Active Directory accepts a password only as ``unicodePwd``, in clear, over TLS, and
scimbridge keeps no clear or reversible password at rest. So a new password goes to the
directory while the request that set it still holds it:

1. **At once**, from the request, when the user's entry is written (its record is confirmed),
   no older password of that user waits in the outbox and no job of the user is being
   applied: the directory's answer decides.
   A policy refusal (complexity, history: ``constraintViolation 0000052D``) becomes
   :class:`PasswordRejected` and the whole change is rolled back, so the page (or SCIM
   request) that set the password shows it.
2. **Otherwise** (no entry yet, the directory unreachable, an older password queued): the
   password rides in an ``ldap`` job of the user, encrypted with a key derived from the
   secret key (Fernet: AES-128-CBC + HMAC-SHA256), applied after the user's earlier jobs. The
   secret leaves the job's row in the transaction that settles it (done or parked), and a
   job older than ``ldap.password_job_ttl_hours`` is parked without being applied.

Either way, the user's record notes that the entry has a password; the account is enabled
only then.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from datetime import UTC
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken

from ...adapters.ldap import ConstraintViolation
from ...adapters.ldap import LdapDirectory
from ...adapters.ldap import LdapError
from ...adapters.ldap import LdapUnavailable
from ...adapters.ldap import MappingError
from ...adapters.ldap import entry_builder
from ...domain.lifecycle import PasswordRejected
from ...settings import Settings
from ...store import ldap_entries as ldap_store
from ...store.database import Database
from ...store.database import Transaction
from ...store.jobs import enqueue
from ..operations.secret_key import load_secret_key
from .sync import LDAP_JOB
from .sync import user_key

logger = logging.getLogger(__name__)

PASSWORD_OP = "password"
"""The ``op`` of an ldap job carrying an encrypted password."""

DIRECTORY_HAS_PASSWORD = "directory-password-set"
"""The record's ``password_digest`` once a clear password reached the user's entry."""

UNREACHABLE_PAUSE_SECONDS = 30.0
"""After the directory could not be reached from a request, passwords are queued at once for
this long: a request writing a password holds the store's write transaction, and must not
wait a connect timeout each time during an outage."""


class PasswordExpired(Exception):
    """A queued password is too old (or was encrypted with another key): it is dropped."""


class PasswordCipher:
    """Encrypts passwords for the outbox; decrypts them only while they are young enough."""

    def __init__(self, secret_key: bytes, ttl_seconds: int) -> None:
        derived = hashlib.sha256(b"scimbridge directory passwords\0" + secret_key).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))
        self.ttl_seconds = ttl_seconds

    def encrypt(self, password: str) -> str:
        """Return the token to carry in a job's payload."""
        return self._fernet.encrypt(password.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Return the password of a token; raise PasswordExpired past the time to live."""
        try:
            return self._fernet.decrypt(token.encode(), ttl=self.ttl_seconds).decode()
        except InvalidToken:
            raise PasswordExpired(
                f"the password waited more than {self.ttl_seconds // 3600} h for the directory"
                " (or the secret key changed); set it again"
            ) from None


def password_cipher(settings: Settings, database: Database) -> PasswordCipher:
    """Return the cipher of the settings' secret key (generated beside SQLite when unset)."""
    return PasswordCipher(
        load_secret_key(settings, database), int(settings.ldap.password_job_ttl_hours * 3600)
    )


def scrubbed(payload: dict[str, Any]) -> dict[str, Any]:
    """Return a password job's payload without its secret (what stays once it settled)."""
    return {key: value for key, value in payload.items() if key != "secret"}


class DirectoryPasswords:
    """Hands each new password to the directory, when its map takes clear passwords."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self.enabled = False
        if settings.ldap.enabled:
            try:
                self.enabled = entry_builder(settings.ldap).clear_passwords
            except MappingError:
                self.enabled = False  # the worker reports the broken map on every job
        self._cipher: PasswordCipher | None = None
        self._unreachable_until = 0.0

    def cipher(self) -> PasswordCipher:
        """Return the cipher (the secret key is read on first use)."""
        if self._cipher is None:
            self._cipher = password_cipher(self.settings, self.database)
        return self._cipher

    def deliver(self, conn: Transaction, user_id: str, password: str, now: datetime) -> None:
        """Write a new password to the user's entry now, or queue it encrypted.

        Call it in the transaction that stores the password, before the user's sync job is
        queued. Raises :class:`PasswordRejected` when the directory's policy refuses it (the
        caller's transaction then rolls back).
        """
        if not self.enabled:
            return
        if self._write_now(conn, user_id, password):
            ldap_store.set_password_digest(conn, user_id, DIRECTORY_HAS_PASSWORD)
            return
        payload = {"op": PASSWORD_OP, "id": user_id, "secret": self.cipher().encrypt(password)}
        enqueue(conn, LDAP_JOB, user_key(user_id), payload, now.astimezone(UTC))

    def _write_now(self, conn: Transaction, user_id: str, password: str) -> bool:
        """Try the directory at once; False when the password must wait in the outbox."""
        if time.monotonic() < self._unreachable_until:
            return False
        for status, payload in ldap_store.pending_jobs(conn, LDAP_JOB, user_key(user_id)):
            if payload.get("op") == PASSWORD_OP:
                return False  # an older password waits: this one must land after it
            if status == "running":
                # A worker applying this user's job read the record before this request:
                # its record, written back, would not know of this password.
                return False
        written = ldap_store.written_entries(conn, [user_id]).get(user_id)
        if written is None or ldap_store.unconfirmed_dns(conn, [user_id]):
            return False
        try:
            with LdapDirectory(self.settings.ldap) as directory:
                directory.set_unicode_pwd(written.dn, password)
        except ConstraintViolation as exc:
            if exc.password_policy:
                raise PasswordRejected(
                    [f"the directory's password policy refused it: {exc.message}"]
                ) from None
            logger.info("password of %s queued: %s", user_id, exc)
            return False
        except LdapUnavailable as exc:
            self._unreachable_until = time.monotonic() + UNREACHABLE_PAUSE_SECONDS
            logger.info("password of %s queued: %s", user_id, exc)
            return False
        except LdapError as exc:
            logger.info("password of %s queued: %s", user_id, exc)
            return False
        return True
