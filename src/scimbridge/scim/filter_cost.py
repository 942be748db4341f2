"""The cost bound on SCIM filters and PATCH paths: length, terms and nesting depth.

A filter costs the database a test per term on every resource it looks at, and a PATCH value
path (``emails[value eq "a" or ...]``) costs Python about 2 ms a term; SQLite also refuses
expressions nested about 1,000 deep. So a filter or path is measured on its text, before it is
parsed, and refused with 400 when it is longer, has more terms or nests deeper than
``ScimSettings`` allows. Quoted strings are skipped, so a value that contains ``" and "`` or a
parenthesis costs nothing extra.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scim2_models import InvalidFilterException
from scim2_models import InvalidPathException
from scim2_models import SCIMException

from ..settings import ScimSettings

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"?')
_LOGICAL = re.compile(r"\b(?:and|or)\b", re.IGNORECASE)


@dataclass(frozen=True)
class FilterCost:
    """What a filter or path text would cost once parsed."""

    length: int
    terms: int
    """Comparisons joined by ``and``/``or``: one more than the logical operators."""
    depth: int
    """Deepest nesting of ``(`` and ``[``."""


def measure(text: str) -> FilterCost:
    """Return the cost of a filter or path text, counting nothing inside quoted strings."""
    bare = _QUOTED.sub('""', text)
    depth = deepest = 0
    for char in bare:
        if char in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]":
            depth = max(depth - 1, 0)
    return FilterCost(len(text), len(_LOGICAL.findall(bare)) + 1, deepest)


def _check(text: str, limits: ScimSettings, error: type[SCIMException], what: str) -> None:
    if "\x00" in text:
        raise error(detail=f"the {what} holds a NUL character")
    if len(text) > limits.max_filter_length:
        raise error(detail=f"the {what} is longer than {limits.max_filter_length} characters")
    cost = measure(text)
    if cost.terms > limits.max_filter_terms:
        raise error(
            detail=f"the {what} joins {cost.terms} terms; at most {limits.max_filter_terms}"
        )
    if cost.depth > limits.max_filter_depth:
        raise error(detail=f"the {what} nests {cost.depth} deep; at most {limits.max_filter_depth}")


def check_filter(text: str, limits: ScimSettings) -> None:
    """Refuse a filter over the cost bound with 400 ``invalidFilter``."""
    _check(text, limits, InvalidFilterException, "filter")


def check_patch_path(text: str, limits: ScimSettings) -> None:
    """Refuse a PATCH path over the cost bound with 400 ``invalidPath``."""
    _check(text, limits, InvalidPathException, "path")
