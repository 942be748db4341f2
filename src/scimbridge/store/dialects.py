"""What the store spells differently on its two databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy import Text
from sqlalchemy import cast
from sqlalchemy import func
from sqlalchemy import literal_column
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import aggregate_order_by


def conflict_insert(dialect_name: str, table: Table) -> Any:
    """Return an INSERT into ``table`` that takes ``ON CONFLICT`` clauses.

    PostgreSQL and SQLite write ``ON CONFLICT`` alike, but SQLAlchemy builds it only on each
    dialect's own ``insert()``.
    """
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table)


def json_object_text(dialect_name: str, fields: list[tuple[str, Any]]) -> Any:
    """Return the compact JSON text of an object, its keys in the order of ``fields``.

    SQLite's ``json_object`` writes it so. PostgreSQL's ``json_build_object`` puts spaces
    around every colon, so there each value is quoted by ``to_json`` and the text is
    concatenated: both databases give the bytes orjson would (the same escapes too).
    """
    assert not any("'" in key or '"' in key for key, _ in fields)  # the caller's constants
    if dialect_name != "postgresql":
        pairs = (part for key, value in fields for part in (_sql_string(key), value))
        return func.json_object(*pairs)
    text: Any = None
    for key, value in fields:
        opening = "{" if text is None else ","
        piece = _sql_string(f'{opening}"{key}":') + cast(func.to_json(cast(value, Text)), Text)
        text = piece if text is None else text + piece
    return text + _sql_string("}")


def _sql_string(constant: str) -> Any:
    """Return a constant string as an SQL literal rather than a bound parameter."""
    return literal_column(f"'{constant}'", String())


def joined_in_order(dialect_name: str, text: Any, order: Any, separator: str) -> Any:
    """Return an aggregate joining ``text`` with ``separator`` in the order of ``order``.

    PostgreSQL orders inside the aggregate. SQLite takes ``ORDER BY`` inside an aggregate
    only from 3.44 on, so there the rows must come from a subquery ordered by ``order``: an
    aggregate query never flattens an ordered subquery into itself, so it reads the rows in
    that order.
    """
    if dialect_name == "postgresql":
        return func.string_agg(text, aggregate_order_by(_sql_string(separator), order))
    return func.group_concat(text, separator)
