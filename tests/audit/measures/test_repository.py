"""The repository's plumbing: the covering indexes the window reports read (SQLite's plans), answers
read through ``INDEXED BY`` on SQLite only, and frames built column by column from driver tuples."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Connection, event, literal, null, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.measures import repository, service
from audit.measures.repository import REPORT_ANSWERS, Scope
from audit.ratings.models import Rating
from tests import factories as f

DAY = dt.date(2026, 11, 2)


def at(hour: int) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(hour), tzinfo=dt.UTC)


@pytest.fixture
def rated(session: Session) -> Session:
    """Two departments, two answers rated by two auditors each, and a superseded rating."""
    legal, hr = f.department(session, "Legal"), f.department(session, "HR")
    v1 = f.model_version(session, "v1")
    alice, bob = f.user(session, username="alice"), f.user(session, username="bob")
    for dept, scores in ((legal, (5, 4)), (hr, (2, 3))):
        ans = f.answer(session, dept=dept, model=v1)
        for auditor, score in zip((alice, bob), scores, strict=True):
            # bob leaves completeness out on Legal's answer: a NULL the frame must keep as NaN
            completeness = None if (dept, auditor) == (legal, bob) else 4
            f.rating(session, ans=ans, auditor=auditor, accuracy=score, completeness=completeness, created_at=at(10))
    old = f.rating(session, ans=f.answer(session, dept=hr, model=v1), auditor=alice, accuracy=1, created_at=at(9))
    old.is_current = False
    session.flush()
    return session


def _statements(session: Session, work: Any) -> list[tuple[str, Any]]:
    connection: Connection = session.connection()
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(connection, "before_cursor_execute", record)
    return seen


def _sqlite_plan(session: Session, statement: str, parameters: Any) -> str:
    rows = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    ("report", "answers_indexed"),
    [("quality", True), ("agreement", False), ("fairness", True)],
)
@pytest.mark.parametrize("filtered", [False, True])
def test_window_reports_read_the_covering_indexes_on_sqlite(
    rated: Session, report: str, answers_indexed: bool, filtered: bool
) -> None:
    session = rated
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite's plans; PostgreSQL's are checked at scale by tests/audit/test_query_plans.py")
    filters = service.ReportFilters(date_from=DAY, date_to=DAY, department="HR" if filtered else None)
    statements = _statements(session, lambda: service.report(session, actor=None, name=report, filters=filters))
    plans = [_sqlite_plan(session, s, p) for s, p in statements if "FROM ratings" in s]
    assert plans, "no statement read the ratings"
    main = plans[0]
    assert "COVERING INDEX ix_ratings_report" in main, main
    if answers_indexed or filtered:
        assert "COVERING INDEX ix_answers_report" in main, main
    assert "SCAN ratings" not in main and "SCAN answers" not in main, main


def test_answers_are_read_through_their_index_on_sqlite_only() -> None:
    query = select(REPORT_ANSWERS.c.asker_department_id).join(Rating, Rating.answer_id == REPORT_ANSWERS.c.id)
    on_sqlite = str(query.compile(dialect=sqlite.dialect()))
    on_postgres = str(query.compile(dialect=postgresql.dialect()))
    assert "FROM answers INDEXED BY ix_answers_report JOIN ratings" in on_sqlite
    assert "INDEXED BY" not in on_postgres and "FROM answers JOIN ratings" in on_postgres
    # only the index's columns are there: a report cannot read a column the index lacks
    assert set(REPORT_ANSWERS.c.keys()) == {"id", "model_version_id", "asker_department_id", "cites_other_department"}


def test_an_index_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="answers has no index 'ix_nope'"):
        repository._IndexedTable(Answer.__table__, "ix_nope")  # type: ignore[arg-type]


def test_frames_are_built_column_by_column(session: Session) -> None:
    rows = union_all(
        select(literal(1).label("n"), literal("a").label("name"), literal(2).label("x"), literal(1.5).label("y")),
        select(literal(2), literal("b"), null(), literal(None)),
    )
    frame = repository._frame(session, select(rows.subquery()), floats=("x", "y"))
    assert list(frame.columns) == ["n", "name", "x", "y"]
    assert frame["n"].tolist() == [1, 2] and frame["n"].dtype.kind == "i"
    assert frame["name"].tolist() == ["a", "b"]
    np.testing.assert_array_equal(frame["x"].to_numpy(), [2.0, np.nan])
    np.testing.assert_array_equal(frame["y"].to_numpy(), [1.5, np.nan])
    assert frame["x"].dtype == float and frame["y"].dtype == float


def test_an_empty_result_keeps_its_columns(session: Session) -> None:
    query = select(Rating.answer_id, Rating.accuracy).where(Rating.id < 0)
    frame = repository._frame(session, query, floats=("accuracy",))
    assert list(frame.columns) == ["answer_id", "accuracy"] and frame.empty
    assert frame["accuracy"].dtype == float


def test_multi_rated_ratings_of_the_window(rated: Session) -> None:
    scope = Scope(start=at(0), end=at(0) + dt.timedelta(days=1))
    frame = repository.multi_rated_ratings(rated, scope).sort_values(["answer_id", "auditor"])
    # the superseded rating and the answer rated once are not there
    assert len(frame) == 4
    assert frame["auditor"].tolist() == ["alice", "bob", "alice", "bob"]
    assert frame["accuracy"].tolist() == [5.0, 4.0, 2.0, 3.0] and frame["accuracy"].dtype == float
    np.testing.assert_array_equal(frame["completeness"].to_numpy(), [4.0, np.nan, 4.0, 4.0])


def test_quality_days_are_text_on_both_databases(rated: Session) -> None:
    cells = repository.quality_cells(rated, Scope())
    assert set(cells["day"]) == {DAY.isoformat()}
    accuracy = cells[cells["dimension"] == "accuracy"].set_index("department_id")
    assert sorted(accuracy["n"].tolist()) == [2.0, 2.0]
    assert sorted(accuracy["total"].tolist()) == [5.0, 9.0]


def test_quality_sums_in_numpy_equal_the_databases_group_by(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's quality cells are grouped by numpy from one row per rating: the same sums as its
    two GROUP BYs, to the last bit, over NULL values, answers rated on two days and up
    to four times in a cell, and weights that are not binary fractions, from assignments, from an
    answer's first sample item or 1 for an answer never sampled (so the order of the weighted sums'
    terms matters)."""
    rng = random.Random(5)
    departments = [f.department(session, name) for name in ("Legal", "HR")]
    versions = [f.model_version(session, name) for name in ("v1", "v2")]
    auditors = [f.user(session) for _ in range(4)]
    days = [DAY + dt.timedelta(days=d) for d in range(3)]
    for n in range(40):
        ans = f.answer(session, dept=departments[n % 2], model=versions[n // 20])
        items = []
        if n % 5:  # every fifth answer is never sampled (weight 1)
            for sample_date in days[: 1 + n % 2]:  # sampled once or twice, with different weights
                f.sample_item(session, ans=ans, weight=round(rng.uniform(1, 9), 3), sample_date=sample_date)
                items.append(sample_date)
        for auditor in auditors[: rng.randint(1, 4)]:
            extra = {}
            if items and rng.random() < 0.7:  # else imported: the answer's first sample item weighs it
                extra["assignment_id"] = f.assignment(
                    session, ans=ans, auditor=auditor, sample_date=rng.choice(items), status="submitted"
                ).id
            values = {d: None if rng.random() < 0.15 else rng.randint(1, 5) for d in ("accuracy", "completeness")}
            f.rating(
                session,
                ans=ans,
                auditor=auditor,
                relevance=None if n % 7 == 0 else rng.randint(1, 5),
                created_at=dt.datetime.combine(rng.choice(days[:2]), dt.time(rng.randint(0, 23)), tzinfo=dt.UTC),
                **values,
                **extra,
            )
    superseded = f.rating(session, ans=f.answer(session, dept=departments[0], model=versions[0]), auditor=auditors[0])
    superseded.is_current = False
    session.flush()
    hr_first_day = Scope(start=at(0), end=at(0) + dt.timedelta(days=1), department_id=departments[1].id)
    empty = Scope(start=at(0) - dt.timedelta(days=30), end=at(0) - dt.timedelta(days=29))
    # days × versions × departments × dimensions
    for scope, rows in ((Scope(), 2 * 2 * 2 * 4), (hr_first_day, 1 * 2 * 1 * 4), (empty, 0)):
        by_numpy = repository.quality_cells(session, scope)
        monkeypatch.setattr(repository, "_quality_sums_in_numpy", repository._quality_sums_in_sql)
        by_database = repository.quality_cells(session, scope)
        monkeypatch.undo()
        # PostgreSQL (which groups in the database) adds the weighted terms in its hash table's order
        pd.testing.assert_frame_equal(by_numpy, by_database, check_exact=not _is_postgres(session), rtol=1e-12)
        assert len(by_numpy) == rows


def test_frame_matches_pandas_on_the_same_rows(rated: Session) -> None:
    query = select(Rating.answer_id, Rating.auditor_id, Rating.accuracy).order_by(Rating.id)
    expected = pd.DataFrame(
        [tuple(r) for r in rated.execute(query).all()], columns=["answer_id", "auditor_id", "accuracy"]
    )
    frame = repository._frame(rated, query, floats=("accuracy",))
    pd.testing.assert_frame_equal(frame, expected.astype({"accuracy": float}), check_dtype=False)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def test_funnel_head_counts_and_the_median_wait(session: Session) -> None:
    legal = f.department(session, "Legal")
    v1 = f.model_version(session, "v1")
    alice, bob = f.user(session, username="alice"), f.user(session, username="bob")
    answers = [f.answer(session, dept=legal, model=v1) for _ in range(6)]
    for ans in answers[:5]:
        f.sample_item(session, ans=ans, weight=1.0, created_at=at(0), sample_date=DAY)
    # waits 1, 2, 4 and 10 hours; the fourth answer's first rating was superseded: it still counts
    for ans, hour in zip(answers[:3], (1, 2, 4), strict=True):
        f.rating(session, ans=ans, auditor=alice, accuracy=3, created_at=at(hour))
    first = f.rating(session, ans=answers[3], auditor=alice, accuracy=3, created_at=at(10))
    first.is_current = False
    f.rating(session, ans=answers[3], auditor=bob, accuracy=4, created_at=at(20))
    f.rating(session, ans=answers[5], auditor=bob, accuracy=4, created_at=at(3))  # never sampled
    session.flush()
    head = repository.funnel_head(session, Scope())
    # five sampled (the fifth never rated), four rated, median of 1, 2, 4, 10 = (2 + 4) / 2
    assert (head.sampled, head.rated) == (5, 4)
    assert head.rated_median_hours == pytest.approx(3.0)
    filtered = repository.funnel_head(session, Scope(model_version_id=v1.id, department_id=legal.id))
    assert filtered == head
    later = repository.funnel_head(session, Scope(start=at(1)))
    assert (later.sampled, later.rated) == (0, 0) and np.isnan(later.rated_median_hours)
    # no review item: no answer can go past "rated", so no events
    assert repository.funnel_events(session, Scope()).empty


def test_funnel_head_over_resampled_answers_early_imports_and_answers_outside_the_window(session: Session) -> None:
    """The head from one join: an answer sampled twice counts once from its first sampling in the
    window; a rating made before the answer was sampled (imported, or before the window) is not the
    sample's rating — no negative waits; ratings of answers outside the window's id range change
    nothing."""
    legal = f.department(session, "Legal")
    v1 = f.model_version(session, "v1")
    alice, bob = f.user(session, username="alice"), f.user(session, username="bob")
    before, sampled, after = (
        f.answer(session, dept=legal, model=v1),
        [f.answer(session, dept=legal, model=v1) for _ in range(3)],
        f.answer(session, dept=legal, model=v1),
    )
    early = dt.datetime.combine(DAY - dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
    # sampled twice in the window (hours 2 and 5) and once before it: waits from hour 2
    f.sample_item(session, ans=sampled[0], created_at=early, sample_date=DAY - dt.timedelta(days=1))
    f.sample_item(session, ans=sampled[0], created_at=at(2), sample_date=DAY)
    f.sample_item(session, ans=sampled[0], created_at=at(5), sample_date=DAY + dt.timedelta(days=1))
    f.sample_item(session, ans=sampled[1], created_at=at(0), sample_date=DAY)
    f.sample_item(session, ans=sampled[2], created_at=at(0), sample_date=DAY)
    f.rating(session, ans=sampled[0], auditor=alice, created_at=early)  # before its sampling: not counted
    f.rating(session, ans=sampled[0], auditor=bob, created_at=at(9))
    f.rating(session, ans=sampled[1], auditor=alice, origin="import", created_at=at(0) - dt.timedelta(hours=3))
    f.rating(session, ans=sampled[2], auditor=alice, created_at=at(7))
    for outside in (before, after):  # rated, not sampled in the window, ids either side of the sampled ones
        f.rating(session, ans=outside, auditor=alice, created_at=at(1))
    f.sample_item(session, ans=after, created_at=early, sample_date=DAY - dt.timedelta(days=2))  # before the window
    session.flush()
    head = repository.funnel_head(session, Scope(start=at(0), end=at(23)))
    # sampled[0] waits 9 − 2 = 7 hours (bob), sampled[2] 7 hours; sampled[1]'s only rating was imported
    # three hours before it was sampled: not rated by the sample (it counted as −3 hours before)
    assert (head.sampled, head.rated) == (3, 2)
    assert head.rated_median_hours == pytest.approx(7.0)
    unrated = f.answer(session, dept=legal, model=v1)
    f.sample_item(session, ans=unrated, created_at=at(3), sample_date=DAY)
    session.flush()
    head = repository.funnel_head(session, Scope(start=at(0), end=at(23)))
    assert (head.sampled, head.rated) == (4, 2) and head.rated_median_hours == pytest.approx(7.0)
