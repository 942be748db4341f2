"""A session's browser in words: "Chrome 120 on Linux" instead of a raw user-agent string."""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

# Parsing runs a large rule set: each distinct string (a user has a few) is parsed once.
_CACHED_STRINGS = 1024
_MAX_LENGTH = 1000


@lru_cache(maxsize=_CACHED_STRINGS)
def client_label(user_agent: str | None) -> str:
    """Name the browser (with its major version) and the operating system of a user-agent."""
    if not user_agent:
        return "Unknown client"
    found = parse(user_agent[:_MAX_LENGTH])
    browser = found.user_agent
    system = found.os
    if browser is None or browser.family == "Other":
        name = "Unknown browser"
    else:
        name = f"{browser.family} {browser.major}" if browser.major else browser.family
    if system is None or system.family == "Other":
        return name
    return f"{name} on {system.family}"
