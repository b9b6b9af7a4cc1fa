"""A plain driver connection (sqlite3 or psycopg, no SQLAlchemy) for the floors: the least work the
database itself needs for the same rows."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

from app.bench.databases import BenchDatabase
from audit.db import SQLITE_BUSY_TIMEOUT_MS
from audit.ingest.bulk import sqlite_timestamp


class RawConnection:
    """SQL is written with ``?`` placeholders; on PostgreSQL they become ``%s``."""

    def __init__(self, db: BenchDatabase) -> None:
        self.backend = db.backend
        if db.backend == "sqlite":
            assert db.sqlite_path is not None
            # the same settings as audit.db gives the app: WAL, foreign keys, busy timeout
            self.conn: Any = sqlite3.connect(
                db.sqlite_path, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
            for pragma in (
                "journal_mode=WAL",
                "foreign_keys=ON",
                f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
                "synchronous=NORMAL",
            ):
                self.conn.execute(f"PRAGMA {pragma}")
        else:
            import psycopg

            self.conn = psycopg.connect(db.postgres_conninfo())

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _sql(self, sql: str) -> str:
        return sql if self.backend == "sqlite" else sql.replace("?", "%s")

    def timestamp(self, value: dt.datetime) -> Any:
        """A timestamp parameter as the app stores it (ISO text on SQLite)."""
        return sqlite_timestamp(value) if self.backend == "sqlite" else value

    def begin(self, *, write: bool = False) -> None:
        # SQLite: the app's engine takes the write lock up front for every transaction (BEGIN IMMEDIATE);
        # a floor takes it only when it writes. psycopg opens a transaction on the first statement.
        if self.backend == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def commit(self) -> None:
        if self.backend == "sqlite":
            self.conn.execute("COMMIT")
        else:
            self.conn.commit()

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cursor = self.conn.cursor()
        try:
            cursor.execute(self._sql(sql), tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self.conn.cursor()
        try:
            cursor.execute(self._sql(sql), tuple(params))
            return cursor.fetchone()
        finally:
            cursor.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        cursor = self.conn.cursor()
        try:
            cursor.execute(self._sql(sql), tuple(params))
        finally:
            cursor.close()
