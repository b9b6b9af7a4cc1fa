"""Every query the app runs at scale is backed by an index: no sequential scan of answers or ratings.

A PostgreSQL database is filled by the bench synthesizer (20k answers over 60 days, ANALYZEd), the
real service functions are called while SQLAlchemy's ``before_cursor_execute`` event records the
statements they send, and each recorded statement is EXPLAINed (FORMAT JSON) with its own parameters.
The SQL is the services' own: nothing here is copied from them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.orm import Session

from app.bench.synth import synthesize
from audit.db import make_engine
from audit.measures import service as measures_service
from audit.org.models import User
from audit.ratings import service as ratings_service
from audit.review import service as review_service
from audit.sampling import service as sampling_service

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ANSWERS = 20_000
DAYS = 60  # 333 answers and ~68 ratings a day: a one-week window is a small slice, as in production
WATCHED_TABLES = {"answers", "ratings"}
Captured = list[tuple[str, Any]]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Any]]:
    from audit import schema
    from tests.conftest import create_postgres_database, drop_postgres_database, postgres_admin_url

    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip("AUDITLOOP_TEST_POSTGRES_URL is not set")
    name = f"auditloop_plans_{tmp_path_factory.getbasetemp().name[-8:].replace('-', '_')}"
    url = create_postgres_database(admin_url, name)
    engine = make_engine(url)
    try:
        schema.upgrade(engine)
        result = synthesize(engine, answers=ANSWERS, days=DAYS)  # ANALYZEs at the end
        yield engine, result
    finally:
        engine.dispose()
        drop_postgres_database(admin_url, name)


@contextlib.contextmanager
def capturing(connection: Connection) -> Iterator[Captured]:
    statements: Captured = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not executemany and not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK", "SET ")):
            statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


def seq_scans(plan: Any) -> list[str]:
    """Relations read by a Seq Scan anywhere in an EXPLAIN (FORMAT JSON) plan tree."""
    found = []
    if isinstance(plan, dict):
        if plan.get("Node Type") == "Seq Scan":
            found.append(plan.get("Relation Name", "?"))
        for value in plan.values():
            found += seq_scans(value)
    elif isinstance(plan, list):
        for value in plan:
            found += seq_scans(value)
    return found


def explain(connection: Connection, statement: str, parameters: Any) -> Any:
    row = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar_one()
    return row if isinstance(row, list) else json.loads(row)


def assert_indexed(connection: Connection, statements: Captured, what: str) -> int:
    """EXPLAIN each statement; fail naming the statement and the plan when answers or ratings are seq-scanned."""
    assert statements, f"{what}: no SQL was captured"
    checked = 0
    for statement, parameters in statements:
        plan = explain(connection, statement, parameters)
        scanned = sorted(set(seq_scans(plan)) & WATCHED_TABLES)
        assert not scanned, (
            f"{what}: Seq Scan on {', '.join(scanned)} in\n{statement}\nparameters: {parameters}\n"
            f"plan: {json.dumps(plan, indent=1)[:4000]}"
        )
        checked += 1
    return checked


@pytest.fixture
def connection(seeded: tuple[Engine, Any]) -> Iterator[Connection]:
    engine, _ = seeded
    conn = engine.connect()
    outer = conn.begin()
    try:
        yield conn
    finally:
        outer.rollback()
        conn.close()


def _session(connection: Connection) -> Session:
    return Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


def _user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).one()
    return user


def _run(connection: Connection, work: Callable[[Session], Any]) -> Captured:
    session = _session(connection)
    try:
        with capturing(connection) as statements:
            work(session)
            session.flush()
        session.commit()  # releases the session's SAVEPOINT; the test's outer transaction still rolls back
        return statements
    finally:
        session.close()


def test_drawing_the_days_sample_reads_the_day_by_index(seeded: tuple[Engine, Any], connection: Connection) -> None:
    _, result = seeded
    statements = _run(
        connection, lambda s: sampling_service.draw_sample(s, actor=None, sample_date=result.anchor.date())
    )
    assert assert_indexed(connection, statements, "draw_sample") >= 3


def test_next_item_and_submit_use_indexes_only(seeded: tuple[Engine, Any], connection: Connection) -> None:
    _, result = seeded
    _run(connection, lambda s: sampling_service.draw_sample(s, actor=None, sample_date=result.anchor.date(), size=500))
    auditor_name = "auditor07"
    item_holder: dict[str, Any] = {}

    def next_item(session: Session) -> None:
        item_holder["item"] = sampling_service.next_item(session, actor=_user(session, auditor_name))

    statements = _run(connection, next_item)
    assert item_holder["item"] is not None, "the drawn sample gave auditor07 nothing to rate"
    assert_indexed(connection, statements, "next_item")

    def submit(session: Session) -> None:
        ratings_service.submit_rating(
            session,
            actor=_user(session, auditor_name),
            assignment_id=item_holder["item"].assignment_id,
            accuracy=1,  # a low score: routing opens a review item, so its lookups run too
            completeness=2,
            relevance=3,
            coherence=4,
            sources_correct="no",
            idempotency_key="plans-1",
        )

    statements = _run(connection, submit)
    assert any(s.lstrip().upper().startswith("INSERT INTO RATINGS") for s, _ in statements)
    assert_indexed(connection, statements, "submit_rating")

    statements = _run(
        connection,
        lambda s: ratings_service.my_ratings(s, actor=_user(s, auditor_name), day=dt.datetime.now(dt.UTC).date()),
    )
    assert_indexed(connection, statements, "my_ratings")


def test_review_queue_uses_indexes(connection: Connection) -> None:
    statements = _run(connection, lambda s: review_service.review_queue(s, actor=_user(s, "sme.legal")))
    assert_indexed(connection, statements, "review_queue (SME)")
    statements = _run(connection, lambda s: review_service.review_queue(s, actor=None, department="HR", limit=50))
    assert_indexed(connection, statements, "review_queue (department)")


@pytest.mark.parametrize("report", measures_service.REPORT_NAMES)
def test_each_report_over_a_week_uses_indexes(seeded: tuple[Engine, Any], connection: Connection, report: str) -> None:
    _, result = seeded
    last_day = result.last_day - dt.timedelta(days=1)  # the last day with ratings
    filters = measures_service.ReportFilters(date_from=last_day - dt.timedelta(days=6), date_to=last_day)
    statements = _run(connection, lambda s: measures_service.report(s, actor=None, name=report, filters=filters))
    assert_indexed(connection, statements, f"report {report}")


def test_seq_scans_finds_nested_nodes() -> None:
    plan = [
        {
            "Plan": {
                "Node Type": "Nested Loop",
                "Plans": [
                    {"Node Type": "Seq Scan", "Relation Name": "departments"},
                    {"Node Type": "Index Scan", "Relation Name": "answers"},
                    {"Node Type": "Hash", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "ratings"}]},
                ],
            }
        }
    ]
    assert seq_scans(plan) == ["departments", "ratings"]
