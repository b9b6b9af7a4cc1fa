"""Shared fixtures: real databases built by the migrations, each test in a rolled-back transaction.

SQLite always; PostgreSQL too when AUDITLOOP_TEST_POSTGRES_URL points at a server (a fresh
database is created for the session and dropped afterwards).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from audit import schema
from audit.db import make_engine

POSTGRES_URL_ENV = "AUDITLOOP_TEST_POSTGRES_URL"


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or None


def skip_without_postgres() -> NoReturn:
    """Skip, or fail where CI demands PostgreSQL (AUDITLOOP_REQUIRE_POSTGRES=1)."""
    reason = f"{POSTGRES_URL_ENV} is not set"
    if os.environ.get("AUDITLOOP_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL tests are required here but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, built once; tests get copies."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    schema.upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite database file for this test."""
    path = tmp_path / "auditloop.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def create_postgres_database(admin_url: str, name: str) -> str:
    admin = make_engine(admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin_url: str, name: str) -> None:
    admin = make_engine(admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """A migrated PostgreSQL database shared by the session (tests roll back their changes)."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        skip_without_postgres()
    name = f"auditloop_test_{uuid.uuid4().hex[:10]}"
    url = create_postgres_database(admin_url, name)
    engine = make_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    yield url
    drop_postgres_database(admin_url, name)


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database (no schema) for this test alone, dropped afterwards."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        skip_without_postgres()
    name = f"auditloop_test_{uuid.uuid4().hex[:10]}"
    yield create_postgres_database(admin_url, name)
    drop_postgres_database(admin_url, name)


@pytest.fixture
def migrated_postgres_url(fresh_postgres_url: str) -> str:
    """A migrated PostgreSQL database for this test alone (for tests that commit)."""
    engine = make_engine(fresh_postgres_url)
    schema.upgrade(engine)
    engine.dispose()
    return fresh_postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database on each backend: a per-test SQLite file, or the session's PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_session_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test.

    Code under test may call commit(): it releases a SAVEPOINT, never the outer transaction.
    """
    connection = engine.connect()
    outer = connection.begin()
    sess = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield sess
    finally:
        sess.close()
        outer.rollback()
        connection.close()
