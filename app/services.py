"""How pages reach the database: one cached engine per database URL, and a unit of work per action.

A page never commits by hand: it runs its service calls inside ``unit_of_work()``, which commits on
success and rolls back on any error, and hands the services the logged-in user re-read inside the
same transaction (so a role changed a second ago already counts, and the actor is never ``None`` —
``None`` means the command-line operator, who may do anything).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import session as login_session
from audit import schema
from audit.db import make_engine, make_read_session_factory, make_session_factory, session_scope
from audit.errors import AuditloopError, PermissionDenied
from audit.org import repository as org_repo
from audit.org.models import User
from audit.settings import ENV_PREFIX, Settings, load_settings


class SchemaNotReady(AuditloopError):
    """The database exists but its schema is behind the migrations."""


# the dashboards' dependencies (scikit-learn, fairlearn, SciPy, Altair) take seconds to import
SLOW_IMPORTS = ("audit.measures.service", "altair", "training.gate")


def settings() -> Settings:
    """The settings, parsed once per distinct AUDITLOOP_* environment (a page asks several times a run)."""
    return _settings_for(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX))))


@functools.lru_cache(maxsize=8)
def _settings_for(environment: tuple[tuple[str, str], ...]) -> Settings:
    return load_settings(dict(environment))


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Import the slow modules once per server process, in the background, as soon as the first
    visitor arrives: by the time someone has logged in and opens a dashboard they are loaded."""

    def load() -> None:
        for name in SLOW_IMPORTS:
            importlib.import_module(name)

    thread = threading.Thread(target=load, name="auditloop-warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_resource(show_spinner=False)
def _engine_for(database_url: str) -> Engine:
    # Keyed by URL so that one process serving (or testing) two databases never mixes them up.
    engine = make_engine(database_url)
    if not schema.is_up_to_date(engine):
        engine.dispose()
        raise SchemaNotReady("the database schema is not up to date: run `auditloop db upgrade` first")
    return engine


@st.cache_resource(show_spinner=False)
def _session_factory_for(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(_engine_for(database_url))


@st.cache_resource(show_spinner=False)
def _read_session_factory_for(database_url: str) -> sessionmaker[Session]:
    return make_read_session_factory(_engine_for(database_url))


def engine() -> Engine:
    return _engine_for(settings().database_url)


def new_session() -> Session:
    return _session_factory_for(settings().database_url)()


@contextlib.contextmanager
def read_only() -> Iterator[Session]:
    """A session for reads: never committed; closing it ends the transaction and detaches what was read
    (with its loaded attributes intact, so pages can use the objects afterwards). On SQLite it takes
    no write lock (``make_read_session_factory``)."""
    session = _read_session_factory_for(settings().database_url)()
    try:
        yield session
    finally:
        session.close()


@dataclass(frozen=True)
class UnitOfWork:
    session: Session
    actor: User


@contextlib.contextmanager
def _acting_as_user(scope: contextlib.AbstractContextManager[Session]) -> Iterator[UnitOfWork]:
    # Widget callbacks run before the entrypoint's session check: an action must check on its own,
    # or a click after the idle limit would still act once.
    user_id = login_session.user_id(st.session_state)
    if login_session.check(st.session_state) != "active" or user_id is None:
        raise PermissionDenied("you are not logged in, or your session has ended: log in again")
    with scope as session:
        actor = org_repo.user_by_id(session, user_id)
        if actor is None or not actor.active:
            raise PermissionDenied("your account is no longer active")
        yield UnitOfWork(session=session, actor=actor)


def unit_of_work() -> contextlib.AbstractContextManager[UnitOfWork]:
    """One transaction acting as the logged-in user: commit on success, roll back on any error.

    Call ``st.rerun()``/``st.stop()`` after the ``with`` block, not inside it: they work by raising,
    and an exception inside rolls the work back.
    """
    return _acting_as_user(transaction())


def reading() -> contextlib.AbstractContextManager[UnitOfWork]:
    """Like ``unit_of_work`` for pages that only read (reports, dashboards): the same session check,
    the user re-read and the services' permission checks, in a read-only transaction that is never
    committed, so a long report does not hold SQLite's write lock while auditors submit."""
    return _acting_as_user(read_only())


def transaction() -> contextlib.AbstractContextManager[Session]:
    """A unit of work without a logged-in user, for the login itself (failed attempts must be kept)."""
    return session_scope(_session_factory_for(settings().database_url))
