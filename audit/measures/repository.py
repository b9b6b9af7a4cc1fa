"""SQL aggregates behind the reports: the database groups and sums; Python finishes the ratios.

Every query reads CURRENT ratings only (``ratings.is_current``), of every origin (app, imported,
simulated), made inside the scope's window on ``ratings.created_at``.

Two covering indexes keep a month of a million-answer company under a second (migration
c3d4e5f6a7b8): ``ix_ratings_report`` (is_current, created_at, then every rating column a report
reads), so a window's current ratings come from the index alone, and ``ix_answers_report`` (id and
the answer columns the reports group by), so each rated answer is looked up in a few megabytes of
index rather than in the wide answers rows (on SQLite through ``INDEXED BY``: its planner always
prefers the rowid). Rows reach pandas column by column, never as one object per row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Date,
    Executable,
    Float,
    Select,
    String,
    Table,
    and_,
    case,
    cast,
    column,
    distinct,
    func,
    select,
    text,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.sql.visitors import InternalTraversal

from audit.answers.models import Answer, AnswerReference
from audit.fixes.models import DataFix
from audit.knowledge.models import DatasetVersion
from audit.measures.funnel import FunnelHead
from audit.modelops.models import ModelVersion, TrainingJob
from audit.org.models import Department, User
from audit.ratings.models import DIMENSIONS, Rating
from audit.review.models import ReviewDecision, ReviewItem
from audit.sampling.models import Assignment, GoldItem, SampleItem


@dataclass(frozen=True)
class Scope:
    """What a report covers: a half-open window [start, end) and optional answer filters."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    model_version_id: int | None = None
    department_id: int | None = None

    @property
    def filters_answers(self) -> bool:
        return self.model_version_id is not None or self.department_id is not None


def _window(column: Any, scope: Scope) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if scope.start is not None:
        conditions.append(column >= scope.start)
    if scope.end is not None:
        conditions.append(column < scope.end)
    return conditions


class _IndexedTable(TableClause):
    """Some columns of a table, read on SQLite through a named index (``answers INDEXED BY ix``);
    rendered as the plain table elsewhere. SQLite's planner looks a row up by rowid whenever it
    can, even where a covering index would save reading a wide row per lookup."""

    inherit_cache = True
    _traverse_internals = [*TableClause._traverse_internals, ("index_name", InternalTraversal.dp_string)]

    def __init__(self, table: Table, index_name: str) -> None:
        index = next((index for index in table.indexes if index.name == index_name), None)
        if index is None:
            raise ValueError(f"{table.name} has no index {index_name!r}")
        super().__init__(table.name, *(column(c.name, c.type) for c in index.columns))
        self.index_name = index_name


@compiles(_IndexedTable)
def _compile_indexed_table(element: _IndexedTable, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.visit_table(element, **kw)


@compiles(_IndexedTable, "sqlite")
def _compile_indexed_table_sqlite(element: _IndexedTable, compiler: SQLCompiler, **kw: Any) -> str:
    rendered = compiler.visit_table(element, **kw)
    if kw.get("asfrom"):
        rendered += f" INDEXED BY {compiler.preparer.quote(element.index_name)}"
    return rendered


REPORT_WORK_MEM = "64MB"

# answers as the window reports join them: the columns of ix_answers_report, read through it
REPORT_ANSWERS = _IndexedTable(Answer.__table__, "ix_answers_report")  # type: ignore[arg-type]


def _answer_filters(scope: Scope, answers: Any = Answer.__table__) -> list[ColumnElement[bool]]:
    """Filters on the answers a report covers. Written ``column + 0 = id`` so that no index can serve
    them: SQLite (without ANALYZE statistics) would otherwise drive the join from the answers of
    the model version, a third of a million rows, and probe ratings for each, when walking the
    window's ratings and looking their answers up by primary key is bounded by what is rated."""
    conditions: list[ColumnElement[bool]] = []
    if scope.model_version_id is not None:
        conditions.append(answers.c.model_version_id + 0 == scope.model_version_id)
    if scope.department_id is not None:
        conditions.append(answers.c.asker_department_id + 0 == scope.department_id)
    return conditions


def _current_ratings(scope: Scope, answers: Any = REPORT_ANSWERS) -> list[ColumnElement[bool]]:
    """Current ratings in the window, on answers passing the filters (the query joins ``answers``).

    ``is_current = TRUE`` leads ``ix_ratings_report`` (is_current, created_at, ...): the window is
    one range of that index, and the index holds every column the reports read.
    """
    return [Rating.is_current == true(), *_window(Rating.created_at, scope), *_answer_filters(scope, answers)]


def _utc_day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp: a date on PostgreSQL (cheaper to compute and to sort
    than text), 'YYYY-MM-DD' on SQLite, which keeps UTC timestamps as ISO text (see
    ``UTCDateTime``) so that the day is the first ten characters. ``_day_text`` evens them out."""
    if _is_postgres(session):
        return cast(func.timezone("UTC", column), Date)
    return func.substr(column, 1, 10, type_=String)


def _day_text(days: pd.Series) -> pd.Series:
    return days.map(lambda day: day.isoformat() if isinstance(day, dt.date) else day)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _frame(session: Session, query: Executable, *, floats: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run a Core query into a frame, column by column: the driver's rows are transposed once and
    each column becomes one array (``floats`` as float64, NULL as NaN), so nothing is built per
    row and pandas never probes Row objects (at 200k rows that costs more than the query)."""
    result = session.connection().execute(query)
    names = list(result.keys())
    # the driver's own tuples: the queries select numbers, text and dates, which need no result
    # processing, and a Row object per row would cost as much as the query
    rows = result.cursor.fetchall()
    result.close()
    if not rows:
        return pd.DataFrame(columns=names).astype(dict.fromkeys(floats, float))
    if all(name in floats for name in names):
        numbers = np.array(rows, dtype=float).reshape(len(rows), len(names))
        return pd.DataFrame({name: numbers[:, j] for j, name in enumerate(names)}, columns=names)
    block = np.empty((len(rows), len(names)), dtype=object)
    block[:] = rows
    data = {name: _column(block[:, j].tolist(), as_float=name in floats) for j, name in enumerate(names)}
    return pd.DataFrame(data, columns=names)


def _column(values: list[Any], *, as_float: bool) -> Any:
    """One column's values as an array: float64 (NULL as NaN) when asked, plain numbers as numpy
    infers them, anything else (text, dates, numbers with NULLs) as pandas infers it."""
    if as_float:
        return np.array(values, dtype=float)
    if isinstance(values[0], int | float):
        array = np.array(values)
        if array.dtype.kind in "iufb":
            return array
    return pd.Series(values)


def _tune(session: Session) -> None:
    """On PostgreSQL, for this transaction only (``SET LOCAL``): no JIT compilation, which costs a
    tenth of a second per statement on queries that run in a few hundred milliseconds, and enough
    work_mem to sort and hash a month of ratings in memory rather than in temporary files."""
    if _is_postgres(session):
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))


def _epoch_hours(session: Session, column: Any) -> ColumnElement[Any]:
    """Hours since 1970-01-01 UTC, computed by the database: a float per timestamp is far cheaper to
    hand over than a datetime object (100k sampled answers carry half a million timestamps).

    On PostgreSQL ``date_part`` rather than ``EXTRACT``: since PostgreSQL 14 EXTRACT returns numeric,
    and a numeric per timestamp cast to float cost a sixth of the funnel head's query. date_part gives
    the float directly: the microseconds since the epoch divided by a million, the same correctly
    rounded number as the exact numeric cast to float.
    """
    if session.get_bind().dialect.name == "postgresql":
        return func.date_part("epoch", column, type_=Float) / 3600.0
    return (func.julianday(column, type_=Float) - 2440587.5) * 24.0


def _float_sum(expression: Any) -> ColumnElement[float]:
    # PostgreSQL sums integers to bigint/numeric (Decimal in Python); a float is what the math wants
    return cast(func.sum(expression), Float)


# --- names -----------------------------------------------------------------------------------------


def department_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Department.id, Department.name)).tuples().all())


def model_version_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(ModelVersion.id, ModelVersion.name)).tuples().all())


def user_ids_by_username(session: Session, usernames: Sequence[str]) -> dict[str, int]:
    return dict(session.execute(select(User.username, User.id).where(User.username.in_(usernames))).tuples().all())


def model_version_id(session: Session, name: str) -> int | None:
    return session.scalar(select(ModelVersion.id).where(ModelVersion.name == name))


def department_id(session: Session, name: str) -> int | None:
    return session.scalar(select(Department.id).where(Department.name == name))


# --- quality ---------------------------------------------------------------------------------------


QUALITY_STATS = ("n", "answers", "total", "cluster_sq", "size_sq", "cross", "weighted_total", "weight_total")


def quality_cells(session: Session, scope: Scope) -> pd.DataFrame:
    """Sums over answers per rating day × model version × asker department × dimension, for the
    answer-level intervals of ``audit.measures.quality``.

    Per answer i of a cell: mᵢ ratings with a value, summing to sᵢ; per cell: n = Σmᵢ, answers = k,
    total = Σsᵢ, cluster_sq = Σsᵢ², size_sq = Σmᵢ², cross = Σmᵢsᵢ, and for the Hajek mean
    weighted_total = Σ w·y and weight_total = Σ w over its current ratings with a value. A rating's
    weight w is the inclusion weight (1 / inclusion probability) of the sample item that drew its
    answer: the item its assignment came from, else the answer's first sample item (imported
    ratings of sampled answers), else 1 (the answer was never sampled). One pass over the ratings
    with primary-key lookups, grouped by answer and then by cell: by the database on PostgreSQL, by
    numpy on SQLite (see ``_quality_sums_in_numpy``). Columns: day, model_version_id,
    department_id, dimension and the eight sums.
    """
    _tune(session)
    sums = _quality_sums_in_sql if _is_postgres(session) else _quality_sums_in_numpy
    wide = sums(session, scope)
    wide["day"] = _day_text(wide["day"])
    key_names = ["day", "model_version_id", "department_id"]
    stat_names = list(QUALITY_STATS)
    parts = [
        wide[key_names + [f"{dimension}|{stat}" for stat in stat_names]]
        .set_axis(key_names + stat_names, axis=1)
        .assign(dimension=dimension)
        for dimension in DIMENSIONS
    ]
    long = pd.concat(parts, ignore_index=True)[[*key_names, "dimension", *stat_names]]
    long[stat_names] = long[stat_names].astype(float).fillna(0.0)
    return long[long["n"] > 0].reset_index(drop=True)


def _quality_ratings(scope: Scope, *columns: Any) -> Select[Any]:
    """``columns`` over the scope's current ratings joined to their answers (``REPORT_ANSWERS``)
    and to the sample item that weighs them (``_quality_weight``)."""
    other_items = SampleItem.__table__.alias("answer_sample_items")
    first_sample_item = (
        select(func.min(other_items.c.id))
        .where(other_items.c.answer_id == Rating.answer_id)
        .correlate(Rating)
        .scalar_subquery()
    )
    return (
        select(*columns)
        .select_from(Rating)
        .join(REPORT_ANSWERS, REPORT_ANSWERS.c.id == Rating.answer_id)
        .outerjoin(Assignment, Assignment.id == Rating.assignment_id)
        # COALESCE evaluates the subquery only for ratings without an assignment
        .outerjoin(SampleItem, SampleItem.id == func.coalesce(Assignment.sample_item_id, first_sample_item))
        .where(*_current_ratings(scope))
    )


def _quality_weight() -> ColumnElement[float]:
    return func.coalesce(SampleItem.inclusion_weight, 1.0)


def _quality_sums_in_sql(session: Session, scope: Scope) -> pd.DataFrame:
    """The cells' sums grouped by the database: ratings by answer, then the answers by cell. One
    row per cell (day, model_version_id, asker_department_id) in that order, and one column per
    dimension and sum, ``"<dimension>|<sum>"`` (NULL where the cell has no value of it)."""
    day = _utc_day(session, Rating.created_at).label("day")
    weight = _quality_weight()
    per_answer_columns: list[Any] = []
    for dimension in DIMENSIONS:
        value = getattr(Rating, dimension)
        per_answer_columns += [
            func.count(value).label(f"{dimension}_m"),
            _float_sum(value).label(f"{dimension}_s"),
            _float_sum(weight * value).label(f"{dimension}_ws"),
            _float_sum(case((value.is_not(None), weight))).label(f"{dimension}_w"),
        ]
    answers = REPORT_ANSWERS
    keys = [day, answers.c.model_version_id, answers.c.asker_department_id]
    per_answer = (
        _quality_ratings(scope, *keys, *per_answer_columns).group_by(*keys, Rating.answer_id).subquery("per_answer")
    )
    columns: list[Any] = []
    for dimension in DIMENSIONS:
        m, s = per_answer.c[f"{dimension}_m"], per_answer.c[f"{dimension}_s"]
        columns += [
            _float_sum(m).label(f"{dimension}|n"),
            func.count(case((m > 0, 1))).label(f"{dimension}|answers"),
            _float_sum(s).label(f"{dimension}|total"),
            _float_sum(s * s).label(f"{dimension}|cluster_sq"),
            _float_sum(m * m).label(f"{dimension}|size_sq"),
            _float_sum(m * s).label(f"{dimension}|cross"),
            _float_sum(per_answer.c[f"{dimension}_ws"]).label(f"{dimension}|weighted_total"),
            _float_sum(per_answer.c[f"{dimension}_w"]).label(f"{dimension}|weight_total"),
        ]
    cell_keys = [per_answer.c.day, per_answer.c.model_version_id, per_answer.c.asker_department_id]
    query = select(*cell_keys, *columns).group_by(*cell_keys).order_by(*cell_keys)
    return _frame(session, query).rename(columns={"asker_department_id": "department_id"})


# one rating as _quality_sums_in_numpy reads it (a NULL value becomes NaN)
_QUALITY_RATING = np.dtype(
    [
        ("answer_id", np.int64),
        ("day", object),
        ("model_version_id", np.int64),
        ("department_id", np.int64),
        ("weight", np.float64),
        *((dimension, np.float64) for dimension in DIMENSIONS),
    ]
)


def _quality_sums_in_numpy(session: Session, scope: Scope) -> pd.DataFrame:
    """The same sums as ``_quality_sums_in_sql``, grouped by numpy from one row per rating.

    SQLite has no hash aggregation: each GROUP BY is a sort, and the SQL's two (a month's ratings
    by answer with 16 aggregates, then the answers by cell with 32) took 0.9 s at 1M answers, where
    reading the joined ratings into one structured array takes half that and grouping them a few
    hundredths. (PostgreSQL hash-aggregates: its SQL takes 0.6 s, about what handing the ratings
    over alone would.) The arithmetic is the SQL's, in its order: the counts and the sums of values
    and of their products are integers, exact either way; the weighted sums add the same float
    terms in the order SQLite's sorted GROUP BY adds them (each answer's ratings in the order read,
    then a cell's answers by id) with ``np.bincount``, which adds its weights one after the other.
    The tests check that the two agree to the last bit. (SQLite 3.43 and later compensate their
    float sums, Kahan–Babuška–Neumaier: there the SQL's weighted sums could differ in the last bit.)
    """
    answers = REPORT_ANSWERS
    query = _quality_ratings(
        scope,
        Rating.answer_id,
        _utc_day(session, Rating.created_at),
        answers.c.model_version_id,
        answers.c.asker_department_id,
        _quality_weight(),
        *(getattr(Rating, dimension) for dimension in DIMENSIONS),
    )
    result = session.connection().execute(query)
    # the driver's tuples straight into one structured array: no Row objects, no column lists
    ratings = np.fromiter(result.cursor.fetchall(), dtype=_QUALITY_RATING)
    result.close()
    key_names = ["day", "model_version_id", "department_id"]
    names = key_names + [f"{dimension}|{stat}" for dimension in DIMENSIONS for stat in QUALITY_STATS]
    if not len(ratings):
        return pd.DataFrame(columns=names)
    day_code, days = pd.factorize(ratings["day"], sort=True)
    # the order of the SQL's GROUP BY: cell (day, model version, department), then answer;
    # lexsort is stable, so each answer's ratings keep the order they were read in
    order = np.lexsort((ratings["answer_id"], ratings["department_id"], ratings["model_version_id"], day_code))
    keys = np.stack([day_code, ratings["model_version_id"], ratings["department_id"], ratings["answer_id"]])[:, order]
    starts_answer = np.ones(len(order), dtype=bool)
    starts_answer[1:] = (keys[:, 1:] != keys[:, :-1]).any(axis=0)
    starts_cell = np.ones(len(order), dtype=bool)
    starts_cell[1:] = (keys[:3, 1:] != keys[:3, :-1]).any(axis=0)
    answer_of_rating = np.cumsum(starts_answer) - 1
    cell_of_answer = (np.cumsum(starts_cell) - 1)[starts_answer]
    cells = keys[:3, starts_cell]
    weight = ratings["weight"][order]

    def per_answer(values: np.ndarray) -> np.ndarray:
        return np.bincount(answer_of_rating, weights=values, minlength=len(cell_of_answer))

    def per_cell(values: np.ndarray) -> np.ndarray:
        return np.bincount(cell_of_answer, weights=values, minlength=cells.shape[1])

    data: dict[str, Any] = {
        "day": pd.Series([days[code] for code in cells[0]]),
        "model_version_id": cells[1],
        "department_id": cells[2],
    }
    for dimension in DIMENSIONS:
        value = ratings[dimension][order]
        rated = ~np.isnan(value)
        # a NULL adds 0.0, which leaves a float sum as it was: as the SQL's sums skipping it
        m = per_answer(rated.astype(float))
        s = per_answer(np.where(rated, value, 0.0))
        sums = {
            "n": m,
            "answers": (m > 0).astype(float),
            "total": s,
            "cluster_sq": s * s,
            "size_sq": m * m,
            "cross": m * s,
            "weighted_total": per_answer(np.where(rated, weight * value, 0.0)),
            "weight_total": per_answer(np.where(rated, weight, 0.0)),
        }
        data.update({f"{dimension}|{stat}": per_cell(sums[stat]) for stat in QUALITY_STATS})
    return pd.DataFrame(data, columns=names)


# --- agreement -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaterScope:
    """Whose ratings a report counts: None means no limit."""

    auditor_ids: tuple[int, ...] | None = None
    role: str | None = None
    origins: tuple[str, ...] | None = None


def _raters(raters: RaterScope) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if raters.auditor_ids is not None:
        conditions.append(Rating.auditor_id.in_(raters.auditor_ids))
    if raters.role is not None:
        conditions.append(Rating.auditor_id.in_(select(User.id).where(User.role == raters.role)))
    if raters.origins is not None:
        conditions.append(Rating.origin.in_(raters.origins))
    return conditions


def multi_rated_ratings(session: Session, scope: Scope, raters: RaterScope = RaterScope()) -> pd.DataFrame:
    """Current ratings (answer_id, auditor username, the four dimensions) of the answers that at
    least two of the ``raters`` rated in the scope: the only rows agreement can use."""
    _tune(session)
    group = _raters(raters)
    multi_rated = select(Rating.answer_id).where(*_current_ratings(scope), *group).group_by(Rating.answer_id)
    if scope.filters_answers:
        multi_rated = multi_rated.join(REPORT_ANSWERS, REPORT_ANSWERS.c.id == Rating.answer_id)
    multi_rated = multi_rated.having(func.count() >= 2)
    query = select(Rating.answer_id, Rating.auditor_id, *(getattr(Rating, d) for d in DIMENSIONS)).where(
        Rating.is_current == true(), *_window(Rating.created_at, scope), *group, Rating.answer_id.in_(multi_rated)
    )
    frame = _frame(session, query, floats=DIMENSIONS)
    usernames = dict(session.execute(select(User.id, User.username)).tuples().all())
    frame.insert(1, "auditor", frame.pop("auditor_id").map(usernames))
    return frame


# --- calibration -----------------------------------------------------------------------------------


def calibration_sums(session: Session, scope: Scope) -> pd.DataFrame:
    """Per auditor × dimension, over current ratings of gold answers (gold items with an answer):
    n, error_sum = Σ(rating − expected), abs_error_sum = Σ|rating − expected|, within_one =
    #{|rating − expected| ≤ 1}; a rating counts where both the score and the expected score exist."""
    columns: list[Any] = []
    for dimension in DIMENSIONS:
        error = getattr(Rating, dimension) - getattr(GoldItem, f"expected_{dimension}")
        columns += [
            func.count(error).label(f"{dimension}|n"),
            _float_sum(error).label(f"{dimension}|error_sum"),
            _float_sum(func.abs(error)).label(f"{dimension}|abs_error_sum"),
            _float_sum(case((func.abs(error) <= 1, 1), else_=0)).label(f"{dimension}|within_one"),
        ]
    query = (
        select(User.username.label("auditor"), *columns)
        .join(GoldItem, GoldItem.answer_id == Rating.answer_id)
        .join(User, User.id == Rating.auditor_id)
        .where(*_current_ratings(scope))
        .group_by(User.username)
    )
    if scope.filters_answers:
        query = query.join(REPORT_ANSWERS, REPORT_ANSWERS.c.id == Rating.answer_id)
    wide = _frame(session, query)
    parts = []
    for dimension in DIMENSIONS:
        stats = [c for c in wide.columns if c.startswith(f"{dimension}|")]
        part = wide[["auditor", *stats]].rename(columns={c: c.split("|", 1)[1] for c in stats})
        parts.append(part.assign(dimension=dimension))
    long = pd.concat(parts, ignore_index=True)
    return long[["auditor", "dimension", "n", "error_sum", "abs_error_sum", "within_one"]]


# --- fairness --------------------------------------------------------------------------------------


def fairness_sums(session: Session, scope: Scope) -> pd.DataFrame:
    """Per asker department: ratings; per metric ``<metric>_total`` and ``<metric>_count`` (the mean
    of each dimension; bias flags over ratings; sources 'yes' over non-null sources verdicts);
    distinct rated answers and those citing another department; accuracy sums and counts on
    answers citing another department and on the others."""
    _tune(session)
    answers = REPORT_ANSWERS
    cites_other = answers.c.cites_other_department == true()
    columns: list[Any] = [func.count().label("ratings")]
    for dimension in DIMENSIONS:
        column = getattr(Rating, dimension)
        columns += [
            _float_sum(column).label(f"{dimension}_mean_total"),
            func.count(column).label(f"{dimension}_mean_count"),
        ]
    columns += [
        _float_sum(case((Rating.bias_flag == true(), 1), else_=0)).label("bias_flag_rate_total"),
        func.count().label("bias_flag_rate_count"),
        _float_sum(case((Rating.sources_correct == "yes", 1), else_=0)).label("sources_correct_rate_total"),
        func.count(Rating.sources_correct).label("sources_correct_rate_count"),
        func.count(distinct(Rating.answer_id)).label("answers"),
        func.count(distinct(case((cites_other, Rating.answer_id)))).label("answers_citing_other"),
        _float_sum(case((cites_other, Rating.accuracy))).label("accuracy_citing_other_total"),
        func.count(case((cites_other, Rating.accuracy))).label("accuracy_citing_other_count"),
        _float_sum(case((~cites_other, Rating.accuracy))).label("accuracy_citing_own_total"),
        func.count(case((~cites_other, Rating.accuracy))).label("accuracy_citing_own_count"),
    ]
    # grouped by id, named afterwards: a join to departments could lead SQLite to drive the query
    # from a department's answers instead of from the ratings
    query = (
        select(answers.c.asker_department_id, *columns)
        .select_from(Rating)
        .join(answers, answers.c.id == Rating.answer_id)
        .where(*_current_ratings(scope))
        .group_by(answers.c.asker_department_id)
    )
    frame = _frame(session, query)
    frame.insert(0, "department", frame.pop("asker_department_id").map(department_names(session)))
    return frame.set_index("department").sort_index().fillna(0.0)


def bias_flag_matrix(session: Session, scope: Scope, *, side: str = "favoured") -> pd.DataFrame:
    """Counts of current bias-flagged ratings by asker department × the department an auditor named
    as favoured (``side="favoured"``) or disfavoured: columns asker, named, flags."""
    named_id = Rating.favoured_department_id if side == "favoured" else Rating.disfavoured_department_id
    answers = REPORT_ANSWERS
    query = (
        select(answers.c.asker_department_id.label("asker"), named_id.label("named"), func.count().label("flags"))
        .select_from(Rating)
        .join(answers, answers.c.id == Rating.answer_id)
        .where(*_current_ratings(scope), Rating.bias_flag == true(), named_id.is_not(None))
        .group_by(answers.c.asker_department_id, named_id)
    )
    frame = _frame(session, query)
    names = department_names(session)
    frame["asker"], frame["named"] = frame["asker"].map(names), frame["named"].map(names)
    return frame.sort_values(["asker", "named"]).reset_index(drop=True)


# --- funnel ----------------------------------------------------------------------------------------


def _waits(session: Session, scope: Scope) -> Select[Any]:
    """One row per answer sampled in the window (on ``sample_items.created_at``) passing the answer
    filters: ``wait``, the hours from its first sampling in the window to its first rating made at or
    after a sampling of it (superseded ratings included), NULL where it was never so rated. A rating
    made before the answer was sampled (an imported or historical rating) is not the sample's rating:
    counting it gave negative waits.

    One join and one grouping rather than a first-rating lookup per sampled answer (160k index
    probes a month at a million answers): the minima are the same over every (sample item,
    rating) pair of an answer. The ratings joined are bounded by the lowest and highest answer id
    sampled in the window, which every rating of a sampled answer lies between: PostgreSQL reads
    that slice of ix_ratings_answer_id_created_at alone (a month's answers have ids close together)
    and hashes it once; SQLite probes the index per item. The bounds are aggregates over the
    window's sample items (``answer_id + 0``: a MIN/MAX rewritten as a walk of ix_sample_items_answer_id
    would visit every older sample item before reaching the window). Each time becomes hours since
    the epoch as ``_epoch_hours`` gives it, then they are subtracted: the arithmetic the full events
    frame would do.
    """
    in_window = _window(SampleItem.created_at, scope)
    lowest, highest = (
        select(aggregate(SampleItem.answer_id + 0)).where(*in_window).scalar_subquery()
        for aggregate in (func.min, func.max)
    )
    first_rated = _epoch_hours(session, func.min(Rating.created_at))
    first_sampled = _epoch_hours(session, func.min(SampleItem.created_at))
    waits = (
        select((first_rated - first_sampled).label("wait"))
        .select_from(SampleItem)
        .outerjoin(
            Rating,
            and_(
                Rating.answer_id == SampleItem.answer_id,
                Rating.answer_id.between(lowest, highest),
                Rating.created_at >= SampleItem.created_at,
            ),
        )
        .where(*in_window)
    )
    if scope.filters_answers:
        waits = waits.join(Answer, Answer.id == SampleItem.answer_id).where(*_answer_filters(scope))
    return waits.group_by(SampleItem.answer_id)


def _first_rating(answer_id: Any, *, not_before: Any) -> Any:
    """The answer's first rating time at or after ``not_before`` (its sampling), superseded ratings
    included (ix_ratings_answer_id_created_at alone answers it)."""
    return (
        select(func.min(Rating.created_at))
        .where(Rating.answer_id == answer_id, Rating.created_at >= not_before)
        .scalar_subquery()
    )


def funnel_head(session: Session, scope: Scope) -> FunnelHead:
    """The funnel's first two steps over every answer sampled in the window: sampled, rated (with
    a rating, superseded ones included) and the median hours from sampling to the first rating.

    On PostgreSQL the database counts the waits (see ``_waits``) and hands over only the two middle
    ones: ``percentile_disc(0.5)`` is the ⌈n/2⌉-th wait in ascending order (the lower middle, or
    the middle of an odd count) and, in descending order, the upper middle (or the same middle);
    pandas' median of those two is the median of all n, computed the same way. Handing over one
    float per sampled answer (160k a month at a million answers) cost more than the query. SQLite
    has no percentile_disc and sorts slower than it hands rows over: there pandas gets every wait.
    """
    _tune(session)
    waits = _waits(session, scope).subquery()
    if not _is_postgres(session):
        every = _frame(session, select(waits.c.wait), floats=("wait",))["wait"]
        rated_waits = every.dropna()
        sampled, rated = len(every), len(rated_waits)
    else:
        lower = func.percentile_disc(0.5).within_group(waits.c.wait)
        upper = func.percentile_disc(0.5).within_group(waits.c.wait.desc())
        counts = select(func.count(), func.count(waits.c.wait), lower, upper)
        sampled, rated, *middle = session.execute(counts).one()
        rated_waits = pd.Series(middle if rated else [], dtype=float)
    return FunnelHead(
        sampled=int(sampled),
        rated=int(rated),
        rated_median_hours=float(rated_waits.median()) if rated else float("nan"),
    )


def funnel_events(session: Session, scope: Scope) -> pd.DataFrame:
    """One row per answer sampled in the window (on ``sample_items.created_at``) that has a review
    item — the only answers that can go past "rated" (see ``FunnelHead`` for the first two steps
    over every sampled answer) — its steps as hours since the epoch (NaN where not reached):
    sampled_at (first sampling in the window), rated_at (its first rating at or after that, superseded
    ones included), flagged_at (review item created), reviewed_at (the SME's decision) with
    ``decision``, fixed_at (its first applied fix), and fix_dataset_number (the dataset version
    that fix produced). One query, driven by the review items (an answer has at most one).
    """

    def hours(column: Any) -> ColumnElement[Any]:
        return _epoch_hours(session, column)

    _tune(session)
    first_sampled = (
        select(func.min(SampleItem.created_at))
        .where(SampleItem.answer_id == ReviewItem.answer_id, *_window(SampleItem.created_at, scope))
        .scalar_subquery()
    )
    applied = and_(DataFix.review_item_id == ReviewItem.id, DataFix.status == "applied")
    first_fix = select(func.min(DataFix.decided_at)).where(applied).scalar_subquery()
    fix_number = (
        select(func.min(DatasetVersion.number))
        .join(DataFix, DataFix.dataset_version_id == DatasetVersion.id)
        .where(applied)
        .scalar_subquery()
    )
    sampled_in_scope = select(SampleItem.id).where(
        SampleItem.answer_id == ReviewItem.answer_id, *_window(SampleItem.created_at, scope)
    )
    reviews = (
        select(
            ReviewItem.answer_id,
            hours(first_sampled).label("sampled_at"),
            hours(_first_rating(ReviewItem.answer_id, not_before=first_sampled)).label("rated_at"),
            hours(ReviewItem.created_at).label("flagged_at"),
            hours(ReviewDecision.created_at).label("reviewed_at"),
            ReviewDecision.decision,
            hours(first_fix).label("fixed_at"),
            cast(fix_number, Float).label("fix_dataset_number"),
        )
        .outerjoin(ReviewDecision, ReviewDecision.review_item_id == ReviewItem.id)
        .where(sampled_in_scope.exists())
    )
    if scope.filters_answers:
        reviews = reviews.join(Answer, Answer.id == ReviewItem.answer_id).where(*_answer_filters(scope))
    numeric = ("sampled_at", "rated_at", "flagged_at", "reviewed_at", "fixed_at", "fix_dataset_number")
    frame = _frame(session, reviews, floats=numeric)
    frame[list(numeric)] = frame[list(numeric)].astype(float)
    return frame


def succeeded_jobs(session: Session) -> pd.DataFrame:
    """Succeeded training jobs: their dataset version number, when they finished, and when the
    model they produced was promoted (NaN if never), in hours since the epoch."""
    query = (
        select(
            cast(DatasetVersion.number, Float).label("dataset_number"),
            _epoch_hours(session, TrainingJob.finished_at).label("finished_at"),
            _epoch_hours(session, ModelVersion.promoted_at).label("promoted_at"),
        )
        .join(DatasetVersion, DatasetVersion.id == TrainingJob.dataset_version_id)
        .outerjoin(ModelVersion, ModelVersion.id == TrainingJob.model_version_id)
        .where(TrainingJob.status == "succeeded", TrainingJob.finished_at.is_not(None))
    )
    return _frame(session, query).astype(float)


# --- metrics vs humans -----------------------------------------------------------------------------


REFERENCE_KINDS = ("ingested", "sme_correction", "gold")


def answers_with_references(session: Session, scope: Scope, *, dimension: str = "accuracy") -> pd.DataFrame:
    """One row per answer and reference, for the answers that have any: references ingested for it
    (``answer_references``), an SME's correction (review_decisions.corrected_answer) and a gold
    reference answer, with the mean of the answer's current ``dimension`` ratings in the scope.
    Columns: answer_id, model_version_id, answer_text, reference, reference_kind, human, ratings."""
    ingested = select(AnswerReference.answer_id, AnswerReference.reference)
    corrections = (
        select(ReviewItem.answer_id, ReviewDecision.corrected_answer.label("reference"))
        .join(ReviewDecision, ReviewDecision.review_item_id == ReviewItem.id)
        .where(ReviewDecision.corrected_answer.is_not(None), ReviewDecision.corrected_answer != "")
    )
    gold = select(GoldItem.answer_id, GoldItem.reference_answer.label("reference")).where(
        GoldItem.answer_id.is_not(None)
    )
    frames = [
        _frame(session, _with_human_mean(references.subquery(), scope, dimension)).assign(reference_kind=kind)
        for kind, references in zip(REFERENCE_KINDS, (ingested, corrections, gold), strict=True)
    ]
    frame = pd.concat(frames, ignore_index=True).sort_values(["answer_id"], kind="stable").reset_index(drop=True)
    frame["human"] = frame["human"].astype(float)
    return frame[["answer_id", "model_version_id", "answer_text", "reference", "reference_kind", "human", "ratings"]]


def _with_human_mean(references: Any, scope: Scope, dimension: str) -> Select[Any]:
    """Each referenced answer's text, its reference, and its current ``dimension`` ratings' mean and count.

    The ratings are outer-joined on purpose: SQLite keeps the left side of a LEFT JOIN as the outer
    loop, so the query walks the few referenced answers and probes their ratings by index instead
    of walking every rating.
    """
    value = getattr(Rating, dimension)
    rating_in_scope = and_(
        Rating.answer_id == references.c.answer_id,
        Rating.is_current.is_(True),
        value.is_not(None),
        *_window(Rating.created_at, scope),
    )
    ratings = func.count(value)
    return (
        select(
            references.c.answer_id,
            Answer.model_version_id,
            Answer.answer_text,
            references.c.reference,
            cast(func.avg(value), Float).label("human"),
            ratings.label("ratings"),
        )
        .select_from(references)
        .join(Answer, Answer.id == references.c.answer_id)
        .outerjoin(Rating, rating_in_scope)
        .where(*_answer_filters(scope))
        .group_by(references.c.answer_id, Answer.model_version_id, Answer.answer_text, references.c.reference)
        .having(ratings > 0)
    )
