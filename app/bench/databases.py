"""The bench's own databases: a SQLite file in a temporary directory, or a PostgreSQL database created
on the server the admin URL names; migrated on creation, dropped afterwards."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from audit import schema
from audit.db import make_engine

BACKENDS = ("sqlite", "postgres")


@dataclass
class BenchDatabase:
    backend: str  # sqlite | postgres
    url: str
    sqlite_path: Path | None = None  # the file, on SQLite

    def engine(self, *, pool_size: int = 10) -> Engine:
        return make_engine(self.url, pool_size=pool_size)

    def postgres_conninfo(self) -> str:
        """The URL as libpq takes it (for a raw psycopg connection)."""
        parsed = make_url(self.url).set(drivername="postgresql")
        return parsed.render_as_string(hide_password=False)


def _admin_engine(admin_url: str) -> Engine:
    return make_engine(admin_url, pool_size=1)


@contextlib.contextmanager
def bench_database(
    backend: str, *, postgres_url: str | None, label: str, migrate: bool = True
) -> Iterator[BenchDatabase]:
    """A fresh database (migrated unless ``migrate=False``) for the duration of the block."""
    if backend == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix=f"auditloop-bench-{label}-"))
        path = directory / "bench.db"
        db = BenchDatabase("sqlite", f"sqlite:///{path}", sqlite_path=path)
        try:
            if migrate:
                _migrate(db)
            yield db
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}")
    if not postgres_url:
        raise ValueError("a PostgreSQL admin URL is needed")
    name = f"auditloop_bench_{label}_{uuid.uuid4().hex[:8]}".lower()
    admin = _admin_engine(postgres_url)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        db = BenchDatabase("postgres", make_url(postgres_url).set(database=name).render_as_string(hide_password=False))
        try:
            if migrate:
                _migrate(db)
            yield db
        finally:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _migrate(db: BenchDatabase) -> None:
    engine = db.engine(pool_size=1)
    try:
        schema.upgrade(engine)
    finally:
        engine.dispose()  # on SQLite the last close checkpoints the WAL


def postgres_reachable(postgres_url: str) -> str | None:
    """None when the server answers, else why not (one line)."""
    try:
        admin = _admin_engine(postgres_url)
        try:
            with admin.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            admin.dispose()
    except Exception as exc:  # any failure to connect is reported, not raised
        return str(exc).strip().splitlines()[0]
    return None
