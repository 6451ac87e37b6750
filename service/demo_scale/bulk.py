# ruff: noqa: S608 -- table and column names are constants of service.demo_scale, never input
"""Bulk writers: psycopg COPY on PostgreSQL, multi-row executemany on SQLite.

Both write plain Python values (int, str, bool, date, naive UTC datetime, None) through the
raw DBAPI connection of an SQLAlchemy connection, inside its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

import sqlalchemy as sa


class CopyWriter:
    """PostgreSQL: one `COPY table (columns) FROM STDIN` per call; psycopg adapts the values."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.raw = connection.connection.dbapi_connection

    def write(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with self.raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def finish(self, with_ids: Sequence[str], written: Sequence[str]) -> None:
        """Move the id sequences of the tables written with explicit ids past those ids, then
        ANALYZE what was written, so the app's own inserts and the planner's estimates are
        right straight away."""
        for table in with_ids:
            self.connection.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"))
        for table in written:
            self.connection.execute(sa.text(f"ANALYZE {table}"))


def _sqlite_value(value):
    # The format SQLAlchemy's SQLite DateTime writes (always with microseconds), so string
    # comparisons in SQL order generated and app-written rows alike.
    if isinstance(value, datetime):
        return value.isoformat(" ", "microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


class ExecutemanyWriter:
    """SQLite: one multi-row `executemany` per call (ids are rowids: no sequences to move)."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.raw = connection.connection.dbapi_connection

    def write(self, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
        statement = (f"INSERT INTO {table} ({', '.join(columns)}) "
                     f"VALUES ({', '.join('?' * len(columns))})")
        cursor = self.raw.cursor()
        try:
            cursor.executemany(statement, ([_sqlite_value(v) for v in row] for row in rows))
        finally:
            cursor.close()

    def finish(self, with_ids: Sequence[str], written: Sequence[str]) -> None:  # noqa: ARG002
        for table in written:
            self.connection.execute(sa.text(f"ANALYZE {table}"))


def writer_for(connection: sa.Connection) -> CopyWriter | ExecutemanyWriter:
    if connection.dialect.name == "postgresql":
        return CopyWriter(connection)
    if connection.dialect.name == "sqlite":
        return ExecutemanyWriter(connection)
    raise ValueError(f"no bulk writer for {connection.dialect.name}")
