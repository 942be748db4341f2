"""Adapters to the systems scimbridge writes to: the only places that import their drivers."""
