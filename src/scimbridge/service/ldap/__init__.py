"""LDAP sync: queueing directory jobs, applying them, reconciling, passwords for AD."""
