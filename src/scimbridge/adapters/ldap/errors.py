"""The LDAP adapter's exceptions: every ldap3 error and refusal becomes one of these."""

from __future__ import annotations


class LdapError(Exception):
    """An LDAP operation did not succeed."""


class LdapUnavailable(LdapError):
    """The directory cannot be used right now: unreachable, timed out, busy, or the bind failed.

    Nothing is wrong with the change itself; it may succeed once the directory is back.
    """


class LdapRefused(LdapError):
    """The directory answered an operation with an error result.

    ``code`` is the LDAP result code (RFC 4511 §4.1.9), ``message`` the server's diagnostic.
    """

    def __init__(self, code: int, description: str, message: str, dn: str) -> None:
        self.code = code
        self.description = description
        self.message = message
        self.dn = dn
        detail = f": {message}" if message else ""
        super().__init__(f"{description} ({code}) on {dn}{detail}")


class NoSuchEntry(LdapRefused):
    """noSuchObject (32): the entry, or its parent, does not exist."""


class EntryAlreadyExists(LdapRefused):
    """entryAlreadyExists (68): another entry has this DN."""


class NoSuchValue(LdapRefused):
    """noSuchAttribute (16): a value to delete is not there."""


class ObjectClassViolation(LdapRefused):
    """objectClassViolation (65), e.g. a groupOfNames left without a member."""


class ConstraintViolation(LdapRefused):
    """constraintViolation (19): e.g. Active Directory's password policy (``0000052D``)."""

    @property
    def password_policy(self) -> bool:
        """Whether Active Directory refused a password for its policy (complexity, history…)."""
        return self.message.upper().startswith("0000052D")


class MappingError(LdapError):
    """A resource cannot be written with the attribute map (e.g. no value for the RDN)."""
