"""Read-only sessions on SQLite take no write lock: a long report does not hold up a submit."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from audit.db import make_engine, make_read_session_factory, make_session_factory


def test_a_read_transaction_leaves_the_write_lock_to_writers(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
            conn.exec_driver_sql("INSERT INTO t (v) VALUES (1)")
        writer_engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
        with make_read_session_factory(engine)() as reader:
            assert reader.execute(text("SELECT count(*) FROM t")).scalar_one() == 1  # transaction open, snapshot taken
            started = time.perf_counter()
            with make_session_factory(writer_engine)() as writer:  # BEGIN IMMEDIATE: would wait 30 s on a writer
                writer.execute(text("INSERT INTO t (v) VALUES (2)"))
                writer.commit()
            assert time.perf_counter() - started < 5
            # the reader still sees its snapshot (WAL): one row, not two
            assert reader.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
        writer_engine.dispose()
    finally:
        engine.dispose()


def test_ordinary_sessions_still_take_the_write_lock_up_front(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with make_session_factory(engine)() as session:
            session.execute(text("SELECT 1"))
            # inside BEGIN IMMEDIATE the connection holds a RESERVED lock: a second IMMEDIATE cannot start
            other = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
            raw = other.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA busy_timeout=0")
                try:
                    raw.driver_connection.execute("BEGIN IMMEDIATE")
                except Exception as exc:
                    assert "locked" in str(exc)
                else:
                    raise AssertionError("the write lock was free while an ordinary session's transaction was open")
            finally:
                raw.close()
                other.dispose()
    finally:
        engine.dispose()
