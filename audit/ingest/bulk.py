"""The fast path into the answers table: raw DBAPI ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

Callers own the transaction (pass the Connection of their Session). Two levels:

- :func:`insert_answers` takes :class:`AnswerRow` tuples with aware datetimes; the benchmark
  synthesiser uses it to load millions of answers.
- :func:`insert_stored_answers` takes rows already in the backend's storage form
  (:func:`storage_timestamp` applied to both timestamps); the ingest hot path builds those
  directly, saving a second tuple per row.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

if TYPE_CHECKING:  # the decoding worker (audit.ingest.pipeline) imports this module without SQLAlchemy
    from sqlalchemy import Connection


class AnswerRow(NamedTuple):
    """One answers row, in column order. Timestamps are timezone-aware; ``sources_json`` is JSON text."""

    external_id: str
    question: str
    answer_text: str
    asker_department_id: int
    model_version_id: int
    sources_json: str
    top_source_department_id: int | None
    cites_other_department: bool
    confidence: float | None
    latency_ms: int | None
    created_at: dt.datetime
    content_hash: str
    ingested_at: dt.datetime


# A row in storage form: AnswerRow's fields, timestamps as the backend stores them.
StoredAnswer = tuple[Any, ...]
EXTERNAL_ID, MODEL_ID, CONTENT_HASH = 0, 4, 11  # positions in AnswerRow / StoredAnswer

_ANSWER_COLUMNS = (
    "external_id",
    "question",
    "answer_text",
    "asker_department_id",
    "model_version_id",
    "sources",
    "top_source_department_id",
    "cites_other_department",
    "confidence",
    "latency_ms",
    "created_at",
    "content_hash",
    "ingested_at",
)
# The statements are built from the constant column names above, never from input (hence the noqa).
_COLUMN_LIST = ", ".join(_ANSWER_COLUMNS)
_SQLITE_INSERT = f"INSERT INTO answers ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(_ANSWER_COLUMNS))})"  # noqa: S608
_SQLITE_INSERT_NEW = f"{_SQLITE_INSERT} ON CONFLICT (external_id) DO NOTHING"
_PG_COPY = f"COPY answers ({_COLUMN_LIST}) FROM STDIN"
_UPDATED_COLUMNS = ", ".join(f"{c} = {{p}}" for c in _ANSWER_COLUMNS[1:])
_SQLITE_UPDATE = f"UPDATE answers SET {_UPDATED_COLUMNS.format(p='?')} WHERE id = ?"  # noqa: S608
_PG_UPDATE = f"UPDATE answers SET {_UPDATED_COLUMNS.format(p='%s')} WHERE id = %s"  # noqa: S608


def driver_connection(connection: Connection) -> Any:
    """The sqlite3 / psycopg connection under a SQLAlchemy Connection, inside its transaction."""
    return connection.connection.driver_connection


_encode_json = msgspec.json.Encoder().encode


def sqlite_timestamp(value: dt.datetime) -> str:
    """An aware datetime exactly as UTCDateTime stores it on SQLite: naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``
    (so text comparison is time order, and the ORM reads it back)."""
    if value.tzinfo is not dt.UTC:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: auditloop stores only timezone-aware timestamps")
        value = value.astimezone(dt.UTC)
    # msgspec writes '"YYYY-MM-DDTHH:MM:SS[.ffffff]Z"' three times faster than isoformat() does
    text = _encode_json(value).decode()
    if len(text) == 29:
        return f"{text[1:11]} {text[12:27]}"
    if len(text) == 22:
        return f"{text[1:11]} {text[12:20]}.000000"
    return value.isoformat(" ", "microseconds")[:26]  # years outside 1000-9999


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: auditloop stores only timezone-aware timestamps")
    return value


def storage_timestamp(connection: Connection) -> Callable[[dt.datetime], Any]:
    """How this backend takes a timestamp in :func:`insert_stored_answers`: text on SQLite, the
    aware datetime itself on PostgreSQL (timestamptz)."""
    return timestamp_formatter(connection.dialect.name)


def timestamp_formatter(dialect: str) -> Callable[[dt.datetime], Any]:
    """:func:`storage_timestamp` by the backend's dialect name (``"sqlite"``, ``"postgresql"``)."""
    return sqlite_timestamp if dialect == "sqlite" else _aware


def to_storage(connection: Connection, rows: Sequence[AnswerRow]) -> list[StoredAnswer]:
    stamp = storage_timestamp(connection)
    ingested: dict[dt.datetime, Any] = {}  # one ingest shares one ingested_at: format it once
    stored = []
    for r in rows:
        at = ingested.get(r[12])
        if at is None:
            at = ingested[r[12]] = stamp(r[12])
        stored.append(r[:10] + (stamp(r[10]), r[11], at))
    return stored


def insert_answers(connection: Connection, rows: Sequence[AnswerRow]) -> int:
    """Insert answers in the caller's transaction; return how many. The external ids must be new."""
    return insert_stored_answers(connection, to_storage(connection, rows))


def insert_stored_answers(connection: Connection, rows: Sequence[StoredAnswer]) -> int:
    """Insert rows already in storage form (see :func:`storage_timestamp`); return how many."""
    if not rows:
        return 0
    raw = driver_connection(connection)
    if connection.dialect.name == "sqlite":
        cursor = raw.cursor()
        try:
            cursor.executemany(_SQLITE_INSERT, rows)
        finally:
            cursor.close()
    else:
        with raw.cursor() as cursor, cursor.copy(_PG_COPY) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)
    return len(rows)


def insert_new_stored_answers_sqlite(connection: Connection, rows: Sequence[StoredAnswer]) -> int:
    """SQLite only: insert the rows whose external_id is not stored yet, skip the others (the first of
    repeated ids wins); return how many were inserted. The unique index does the look-up the insert
    needs anyway, so no query beforehand."""
    if not rows:
        return 0
    cursor = driver_connection(connection).cursor()
    try:
        cursor.executemany(_SQLITE_INSERT_NEW, rows)
        return int(cursor.rowcount)
    finally:
        cursor.close()


def update_stored_answers(connection: Connection, rows: Sequence[tuple[int, StoredAnswer]]) -> int:
    """Overwrite existing answers by id with rows in storage form (``--update``); return how many."""
    if not rows:
        return 0
    sql = _SQLITE_UPDATE if connection.dialect.name == "sqlite" else _PG_UPDATE
    cursor = driver_connection(connection).cursor()
    try:
        cursor.executemany(sql, [(*row[1:], answer_id) for answer_id, row in rows])
    finally:
        cursor.close()
    return len(rows)


def existing_answers(connection: Connection, external_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """``{external_id: (id, content_hash)}`` for those of ``external_ids`` already stored (one indexed query)."""
    if not external_ids:
        return {}
    cursor = driver_connection(connection).cursor()
    try:
        if connection.dialect.name == "sqlite":
            cursor.execute(
                "SELECT external_id, id, content_hash FROM answers "
                "WHERE external_id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(external_ids)),),
            )
        else:
            cursor.execute(
                "SELECT external_id, id, content_hash FROM answers WHERE external_id = ANY(%s)", (list(external_ids),)
            )
        return {external_id: (answer_id, content_hash) for external_id, answer_id, content_hash in cursor.fetchall()}
    finally:
        cursor.close()


def max_answer_id(connection: Connection) -> int:
    """The highest answer id so far (0 when there are none): rows above it were added since."""
    cursor = driver_connection(connection).cursor()
    try:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM answers")
        return int(cursor.fetchone()[0])
    finally:
        cursor.close()
