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
from collections.abc import Callable, Collection, Sequence
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


# --- ratings (ingest ratings: past audits, origin 'import') ----------------------------------------

RATING_COLUMNS = (
    "id",
    "answer_id",
    "auditor_id",
    "accuracy",
    "completeness",
    "relevance",
    "coherence",
    "sources_correct",
    "bias_flag",
    "favoured_department_id",
    "disfavoured_department_id",
    "comment",
    "rubric_version",
    "origin",
    "is_current",
    "supersedes_id",
    "idempotency_key",
    "created_at",
)
RATING_IS_CURRENT, RATING_KEY = RATING_COLUMNS.index("is_current"), RATING_COLUMNS.index("idempotency_key")
_RATING_COLUMN_LIST = ", ".join(RATING_COLUMNS)
_SQLITE_INSERT_RATINGS = f"INSERT INTO ratings ({_RATING_COLUMN_LIST}) VALUES ({', '.join('?' * len(RATING_COLUMNS))})"  # noqa: S608
_PG_COPY_RATINGS = f"COPY ratings ({_RATING_COLUMN_LIST}) FROM STDIN"


def reserve_rating_ids(connection: Connection, count: int) -> list[int]:
    """``count`` new rating ids, so that rows can refer to each other before they are stored.

    PostgreSQL: drawn from the id sequence (safe beside concurrent writers). SQLite: the ids after
    the highest one, which is safe because the caller's transaction holds the database's write lock
    (``BEGIN IMMEDIATE``, audit.db) until it commits.
    """
    if count <= 0:
        return []
    cursor = driver_connection(connection).cursor()
    try:
        if connection.dialect.name == "sqlite":
            cursor.execute("SELECT COALESCE(MAX(id), 0) FROM ratings")
            first = int(cursor.fetchone()[0]) + 1
            return list(range(first, first + count))
        # the sequence's name looked up once (MATERIALIZED): in the select list it is looked up per row,
        # which makes 10,000 ids take six times as long
        cursor.execute(
            "WITH seq AS MATERIALIZED (SELECT pg_get_serial_sequence('ratings', 'id')::regclass AS name) "
            "SELECT nextval(seq.name) FROM seq, generate_series(1, %s)",
            (count,),
        )
        return [int(row[0]) for row in cursor.fetchall()]
    finally:
        cursor.close()


def insert_ratings(connection: Connection, rows: Sequence[Sequence[Any]]) -> int:
    """Insert rating rows (the values of RATING_COLUMNS, ``created_at`` in storage form, see
    :func:`storage_timestamp`): ``executemany`` on SQLite, ``COPY`` on PostgreSQL; return how many."""
    if not rows:
        return 0
    raw = driver_connection(connection)
    if connection.dialect.name == "sqlite":
        cursor = raw.cursor()
        try:
            cursor.executemany(_SQLITE_INSERT_RATINGS, rows)
        finally:
            cursor.close()
    else:
        with raw.cursor() as cursor, cursor.copy(_PG_COPY_RATINGS) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)
    return len(rows)


def retire_ratings(connection: Connection, *, superseded: Sequence[int], key_moved: Sequence[int]) -> None:
    """Before their successors are stored: ``superseded`` ratings stop being current, and
    ``key_moved`` ratings give up their idempotency key (it moves to the row that replaces them)."""
    placeholder = "?" if connection.dialect.name == "sqlite" else "%s"
    cursor = driver_connection(connection).cursor()
    try:
        if key_moved:
            cursor.executemany(
                f"UPDATE ratings SET idempotency_key = NULL WHERE id = {placeholder}",  # noqa: S608
                [(rating_id,) for rating_id in key_moved],
            )
        if superseded:
            cursor.executemany(
                f"UPDATE ratings SET is_current = {'0' if placeholder == '?' else 'false'} WHERE id = {placeholder}",  # noqa: S608
                [(rating_id,) for rating_id in superseded],
            )
    finally:
        cursor.close()


_RATING_CONTENT_COLUMNS = (
    "accuracy, completeness, relevance, coherence, sources_correct, bias_flag, "
    "favoured_department_id, disfavoured_department_id, comment"
)


def _any_of(connection: Connection, column: str) -> str:
    """``column`` is one of a list passed as one parameter (a JSON array on SQLite, an array on
    PostgreSQL): one statement and one bound value however long the list."""
    if connection.dialect.name == "sqlite":
        return f"{column} IN (SELECT value FROM json_each(?))"  # noqa: S608 -- column names are constants
    return f"{column} = ANY(%s)"


def _list_parameter(connection: Connection, values: Sequence[Any]) -> Any:
    return json.dumps(list(values)) if connection.dialect.name == "sqlite" else list(values)


def imported_ratings(connection: Connection, keys: Sequence[str]) -> dict[str, tuple[int, tuple[Any, ...]]]:
    """``{idempotency_key: (rating id, (accuracy, ..., comment))}`` for the stored keys among ``keys``
    (import keys: no spaces)."""
    if not keys:
        return {}
    if connection.dialect.name == "sqlite":
        condition, parameter = _any_of(connection, "idempotency_key"), _list_parameter(connection, keys)
    else:
        # one text split on the server: psycopg takes ~2.5 µs a string to send a list as an array
        if any(" " in key for key in keys):
            raise ValueError("import keys have no spaces")
        condition, parameter = "idempotency_key = ANY(string_to_array(%s, ' '))", " ".join(keys)
    cursor = driver_connection(connection).cursor()
    try:
        cursor.execute(
            f"SELECT idempotency_key, id, {_RATING_CONTENT_COLUMNS} FROM ratings WHERE {condition}",  # noqa: S608 -- constants
            (parameter,),
        )
        return {row[0]: (row[1], (*row[2:7], bool(row[7]), *row[8:])) for row in cursor.fetchall()}
    finally:
        cursor.close()


def answer_ids_by_external_id(connection: Connection, external_ids: Collection[str]) -> dict[str, int]:
    """``{external_id: id}`` of the stored answers among ``external_ids`` (one indexed query and one
    bound value: the ORM's IN list binds a parameter per id, and psycopg rewrites that long statement each time)."""
    if not external_ids:
        return {}
    cursor = driver_connection(connection).cursor()
    try:
        cursor.execute(
            f"SELECT external_id, id FROM answers WHERE {_any_of(connection, 'external_id')}",  # noqa: S608 -- constants
            (_list_parameter(connection, list(external_ids)),),
        )
        return dict(cursor.fetchall())
    finally:
        cursor.close()


def current_ratings(connection: Connection, answer_ids: Sequence[int]) -> dict[tuple[int, int], int]:
    """``{(answer_id, auditor_id): rating id}`` of the current ratings of ``answer_ids`` (by the
    current-rating index, which leads with the answer)."""
    if not answer_ids:
        return {}
    cursor = driver_connection(connection).cursor()
    try:
        cursor.execute(
            f"SELECT answer_id, auditor_id, id FROM ratings WHERE is_current = {'1' if connection.dialect.name == 'sqlite' else 'true'} "  # noqa: S608
            f"AND {_any_of(connection, 'answer_id')}",
            (_list_parameter(connection, answer_ids),),
        )
        return {(answer_id, auditor_id): rating_id for answer_id, auditor_id, rating_id in cursor.fetchall()}
    finally:
        cursor.close()
