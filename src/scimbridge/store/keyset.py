"""Keyset paging: the SQL of "the page after (or before) this position" in a sort order.

The order is the ``sortBy`` key (nulls last, as index paging orders them) and then the
primary key, so every position is unique. A page is one indexed range read whatever its
depth: page 500 costs what page 1 costs, unlike ``OFFSET``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import and_
from sqlalchemy import or_

from ..domain.paging import PagePosition


@dataclass(frozen=True)
class SortKey:
    """The expression a search is sorted by, and its direction."""

    expr: ColumnElement[Any]
    descending: bool = False


def page_order(
    sort: SortKey | None, pk: ColumnElement[Any], *, backward: bool = False
) -> list[Any]:
    """Return the ORDER BY of a page; ``backward`` reads the same order from the end."""
    if sort is None:
        return [pk.desc() if backward else pk.asc()]
    ascending = sort.descending == backward
    key = sort.expr.asc() if ascending else sort.expr.desc()
    return [key.nulls_first() if backward else key.nulls_last(), pk.desc() if backward else pk]


def beyond(
    sort: SortKey | None, pk: ColumnElement[Any], position: PagePosition
) -> ColumnElement[bool]:
    """Return the predicate of the rows after ``position`` (before it, when it is backward)."""
    if sort is None:
        return pk < position.pk if position.backward else pk > position.pk
    key, value = sort.expr, position.sort_value
    if position.backward:
        if value is None:
            # Before a row without a key: every row with one, and keyless rows before it.
            return or_(key.is_not(None), pk < position.pk)
        nearer = key > value if sort.descending else key < value
        return or_(nearer, and_(key == value, pk < position.pk))
    if value is None:
        return and_(key.is_(None), pk > position.pk)
    further = key < value if sort.descending else key > value
    return or_(further, and_(key == value, pk > position.pk), key.is_(None))
