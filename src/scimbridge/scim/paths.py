"""Endpoint names under any letter case and with a trailing slash, as other SCIM servers do.

Identity providers and their test suites write ``/users``, ``/Users/`` or ``/Users/{id}/``.
A redirect would not do: clients do not follow one on a POST. The path is therefore
rewritten to its canonical form before routing, so every view, ``Location`` header and
audit record sees ``/Users/{id}``. Resource ids and schema URNs keep their case.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_ENDPOINTS = (
    "Users",
    "Groups",
    "Me",
    "Bulk",
    "ServiceProviderConfig",
    "ResourceTypes",
    "Schemas",
    ".search",
)
_CANONICAL = {name.lower(): name for name in _ENDPOINTS}
_SEARCH = ".search"


def canonical_path(path: str, prefix: str) -> str:
    """Return ``path`` (under ``prefix``) with its endpoint names canonical, no trailing slash."""
    if not path.startswith(prefix + "/"):
        return path
    segments = path[len(prefix) + 1 :].split("/")
    if len(segments) > 1 and segments[-1] == "":
        segments.pop()
    segments[0] = _CANONICAL.get(segments[0].lower(), segments[0])
    if len(segments) == 2 and segments[1].lower() == _SEARCH:
        segments[1] = _SEARCH
    return "/".join((prefix, *segments))


class CanonicalScimPaths:
    """WSGI middleware rewriting SCIM request paths with :func:`canonical_path`."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """Rewrite ``PATH_INFO``, then hand the request on."""
        path = environ.get("PATH_INFO", "")
        if path.startswith(self.prefix + "/"):
            environ["PATH_INFO"] = canonical_path(path, self.prefix)
        result: Iterable[bytes] = self.app(environ, start_response)
        return result
