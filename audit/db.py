"""Engines and sessions: SQLite with WAL, foreign keys and a busy timeout; PostgreSQL via psycopg 3."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import CursorResult, Engine, Executable, Update, bindparam, create_engine, event, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _on_sqlite_connect(dbapi_connection, connection_record) -> None:  # type: ignore[no-untyped-def]
    # Python's sqlite3 opens transactions lazily and never for SELECT; take control so that
    # SQLAlchemy's BEGIN is what starts a transaction (see SQLAlchemy "pysqlite serializable").
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # up to 64 MiB of page cache per connection (SQLite's default is 2 MiB): a report over a month
    # of ratings reads its covering index from memory on the next run (CPU of the fairness, funnel
    # and agreement reports at 1M answers: -15-35%, measured on a loaded 2-core machine)
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


#: Execution option marking a connection's transactions as reads only (``make_read_session_factory``).
READ_ONLY = "auditloop_read_only"


def _on_sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
    # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
    # one failing with "database is locked" when it upgrades a read lock mid-transaction.
    # A read-only transaction takes no write lock (plain BEGIN): under WAL it reads a snapshot while
    # writers go on, so a dashboard's second-long report never holds up an auditor's submit.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """Create an engine configured for auditloop's access patterns on either backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
    )


def _register_every_table() -> None:
    """Import every mapped class, so that a relationship or foreign key to a table the caller never
    imported resolves (the CLI loads only the modules its command needs: `demo seed` once failed on
    examples.origin_review_id -> review_items)."""
    import audit.models  # noqa: F401


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    _register_every_table()
    return sessionmaker(bind=engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reading only (reports, dashboards, lists): same pool, but on SQLite their
    transactions do not take the write lock. Never write through them: SQLite would have to upgrade
    the read lock mid-transaction, which fails at once with "database is locked" under contention."""
    _register_every_table()
    return sessionmaker(bind=engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


_UPDATE_BY_ID: dict[tuple[type[Any], tuple[str, ...]], Update] = {}


def _update_by_id_statement(entity: type[Any], keys: tuple[str, ...]) -> Update:
    statement = _UPDATE_BY_ID.get((entity, keys))
    if statement is None:
        statement = (
            update(entity)
            .where(entity.id == bindparam("row_id"))
            .values({key: bindparam(f"new_{key}") for key in keys})
        )
        _UPDATE_BY_ID[(entity, keys)] = statement
    return statement


def core_execute(session: Session, statement: Executable, parameters: dict[str, Any]) -> CursorResult[*tuple[Any, ...]]:
    """Run a Core statement (plain columns, no entities) on the session's connection and
    transaction, without the ORM's per-statement work (about 0.1 ms of CPU each, a good part of a
    hot-path statement on SQLite). Pending changes are flushed first exactly when
    ``session.execute`` would flush them (autoflush on, i.e. not inside ``no_autoflush``)."""
    if session.autoflush:
        session.flush()
    return session.connection().execute(statement, parameters)


def update_by_id(session: Session, entity: type[Any], row_id: int, values: dict[str, Any]) -> None:
    """``UPDATE <table> SET values WHERE id = row_id`` as one statement (built once per entity and
    columns), and the same values set on the session's copy of the row, if it holds one, as loaded
    (not as a pending change).

    The ORM's own "evaluate" synchronisation leaves attributes it never loaded unset, so a copy
    created in this session would keep reading None for a column written here."""
    statement = _update_by_id_statement(entity, tuple(sorted(values)))
    core_execute(session, statement, {"row_id": row_id, **{f"new_{key}": value for key, value in values.items()}})
    sync_loaded(session, entity, row_id, values)


def sync_loaded(session: Session, entity: type[Any], row_id: int, values: dict[str, Any]) -> None:
    """Set values just written by a Core UPDATE on the session's copy of the row, if it holds one."""
    loaded = session.identity_map.get(session.identity_key(entity, row_id))
    if loaded is not None:
        for key, value in values.items():
            set_committed_value(loaded, key, value)


@contextlib.contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_transient(exc: BaseException) -> bool:
    """True for a database error that a new transaction may not meet again: a dropped or terminated
    connection (server restart, failover, ``pg_terminate_backend``), a serialization failure or
    deadlock victim, SQLite's busy timeout running out. DBAPI's OperationalError is by definition
    "not necessarily under the control of the programmer"; constraint and data errors are not retried."""
    if not isinstance(exc, DBAPIError):
        return False
    return bool(exc.connection_invalidated) or isinstance(exc, OperationalError)


def run_in_transaction(
    factory: sessionmaker[Session],
    fn: Callable[[Session], T],
    *,
    retries: int = 3,
    backoff_s: float = 0.05,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Run ``fn(session)`` in a transaction of its own and commit; on a transient error start over
    with a fresh session, up to ``retries`` more times (exponential back-off with jitter).

    ``fn`` must be safe to run again: a connection lost while COMMIT was in flight leaves it unknown
    whether the commit happened, so the retry has to recognise its own earlier success (e.g. the
    idempotency key of ``submit_rating``). ``on_retry(attempt, error)`` is told about each retry.
    """
    attempt = 0
    while True:
        try:
            with session_scope(factory) as session:
                return fn(session)
        except DBAPIError as exc:
            if attempt >= retries or not is_transient(exc):
                raise
            attempt += 1
            if on_retry is not None:
                on_retry(attempt, exc)
            # jitter, so that many clients dropped at once do not come back in step
            time.sleep(backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))
