"""What the store spells differently on its two databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite


def conflict_insert(dialect_name: str, table: Table) -> Any:
    """Return an INSERT into ``table`` that takes ``ON CONFLICT`` clauses.

    PostgreSQL and SQLite write ``ON CONFLICT`` alike, but SQLAlchemy builds it only on each
    dialect's own ``insert()``.
    """
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table)
