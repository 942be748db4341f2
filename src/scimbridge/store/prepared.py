"""Statements compiled once per database and run straight on the driver's cursor.

SQLAlchemy's execution path (cache-key lookup, execution context, result object, events)
costs several times what SQLite takes to run a primary-key lookup. The statements of the SCIM
hot paths never change, so a :class:`PreparedStatement` compiles each once per dialect, then
runs it on the DBAPI connection of the caller's transaction, converting parameters and
results with the column types' own processors: the same SQL, the same transaction and the
same stored forms as ``conn.execute`` produces, without the per-call machinery.

The caller's transaction is the one ``Database.read`` or ``Database.write`` opened: both
begin it on the driver, as SQLAlchemy itself would. Only statements with plain bound
parameters qualify (no ``expanding`` lists, no Python-side
column defaults to fill in): everything else goes through ``conn.execute`` as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

_Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    """One statement compiled for one dialect and one set of parameter names."""

    sql: str
    positional: tuple[str, ...] | None
    """Parameter names in placeholder order, or None for named placeholders."""
    binds: tuple[tuple[str, _Processor], ...]
    """Parameters whose values the column type converts before they reach the driver."""
    constants: dict[str, Any]
    """Values the statement itself binds (``.values(version=users.c.version + 1)``)."""
    results: tuple[_Processor | None, ...]
    """Per result column, the conversion of the driver's value, if any."""
    converts_results: bool


class PreparedStatement:
    """A fixed statement, compiled once per dialect, run on the transaction's own cursor."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def _compile(self, dialect: Dialect, names: tuple[str, ...]) -> _Compiled:
        key = (dialect.name, names)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = _compile(self.statement, dialect, names)
        return compiled

    def _run(
        self, conn: Connection, params: dict[str, Any], many: list[dict[str, Any]] | None = None
    ) -> tuple[Any, _Compiled]:
        dialect = conn.dialect
        compiled = self._compile(dialect, tuple(params))
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if many is None:
                cursor.execute(compiled.sql, _arguments(compiled, params))
            else:
                cursor.executemany(compiled.sql, [_arguments(compiled, row) for row in many])
        except dialect.loaded_dbapi.Error as exc:
            cursor.close()
            # The same exception types conn.execute raises (IntegrityError, …).
            raise DBAPIError.instance(
                compiled.sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        return cursor, compiled

    def execute_many(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        """Run a statement once per parameter set (all with the same names).

        :returns: the rows changed in all, as the driver counts them (SQLite sums them; a
            driver that cannot count answers -1).
        """
        if not rows:
            return 0
        cursor, _ = self._run(conn, rows[0], rows)
        count: int = cursor.rowcount
        cursor.close()
        return count

    def execute(self, conn: Connection, params: dict[str, Any] | None = None) -> int:
        """Run a statement that returns no rows; return how many rows it changed."""
        cursor, _ = self._run(conn, params or {})
        count: int = cursor.rowcount
        cursor.close()
        return count

    def all(self, conn: Connection, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return every row, as tuples in the statement's column order."""
        cursor, compiled = self._run(conn, params or {})
        rows = cursor.fetchall()
        cursor.close()
        if not compiled.converts_results:
            return [tuple(row) for row in rows]
        return [_convert(row, compiled.results) for row in rows]

    def first(
        self, conn: Connection, params: dict[str, Any] | None = None
    ) -> tuple[Any, ...] | None:
        """Run a query and return its first row, or None."""
        cursor, compiled = self._run(conn, params or {})
        row = cursor.fetchone()
        cursor.close()
        if row is None:
            return None
        return _convert(row, compiled.results) if compiled.converts_results else tuple(row)

    def scalar(self, conn: Connection, params: dict[str, Any] | None = None) -> Any:
        """Run a query and return the first column of its first row, or None."""
        row = self.first(conn, params)
        return None if row is None else row[0]


def _arguments(compiled: _Compiled, params: dict[str, Any]) -> Any:
    """Convert the parameters for the driver, in its placeholder style."""
    if compiled.binds or compiled.constants:
        params = {**compiled.constants, **params}
        for name, process in compiled.binds:
            params[name] = process(params[name])
    if compiled.positional is None:
        return params
    return tuple(params[name] for name in compiled.positional)


def _convert(row: Sequence[Any], processors: tuple[_Processor | None, ...]) -> tuple[Any, ...]:
    return tuple(
        value if process is None or value is None else process(value)
        for value, process in zip(row, processors, strict=True)
    )


def _compile(statement: ClauseElement, dialect: Dialect, names: tuple[str, ...]) -> _Compiled:
    # column_keys: an INSERT without explicit values names exactly the columns given.
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(names))
    binds: list[tuple[str, _Processor]] = []
    constants: dict[str, Any] = {}
    for name, bind in compiled.binds.items():
        if bind.expanding or bind.callable is not None:
            raise ValueError(f"{name}: parameters computed at execution need conn.execute")
        if name not in names:
            if bind.value is None:
                raise ValueError(f"{name}: parameter missing")
            constants[name] = bind.value
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds.append((name, process))
    columns = getattr(statement, "exported_columns", ())
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    )
    return _Compiled(
        sql=compiled.string,
        positional=tuple(compiled.positiontup) if compiled.positional else None,
        binds=tuple(binds),
        constants=constants,
        results=results,
        converts_results=any(process is not None for process in results),
    )
