"""The ``scimbridge`` command: serve, tokens and users, the outbox, LDAP sync, backups."""

from .main import main

__all__ = ["main"]
