"""scimbridge: the user lifecycle of a platform, driven by SCIM, admins and programs."""

__version__ = "0.1.0"
