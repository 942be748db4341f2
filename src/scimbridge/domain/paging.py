"""Positions of cursor paging (RFC 9865): where a page starts in a stable order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PagePosition:
    """A place between two resources in the order of a search (sort key, then store key).

    The page starts just after the resource with ``sort_value`` and ``pk``, or, when
    ``backward``, ends just before it. Keeping the values rather than a row number is what
    keeps a walk stable while resources are created and deleted: a resource that exists
    throughout is met exactly once, wherever the others come and go.
    """

    sort_value: Any
    """The resource's value of the ``sortBy`` attribute (None without one, or when unset)."""
    pk: int
    backward: bool = False
    start: bool = False
    """The position before every resource: the first page (``sort_value``/``pk`` unused)."""


FIRST_PAGE = PagePosition(None, 0, start=True)
