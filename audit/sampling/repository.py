"""Queries for sampling, assignment and the item an auditor sees.

The sampling frame is read as (id, department, confidence) tuples only: answer texts are never
loaded to draw a sample. The hot-path queries (next pending assignment, progress) are each one
lookup on ``ix_assignments_auditor_id_status_position`` bounded by one auditor's batch.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Row, Select, Update, bindparam, func, literal, select, update
from sqlalchemy.orm import Session, aliased

from audit.answers.models import Answer
from audit.db import core_execute, sync_loaded
from audit.knowledge.models import Document
from audit.org.models import Department, User
from audit.policy.models import Policy
from audit.sampling.models import Assignment, GoldItem, SampleBatch, SampleItem
from audit.sampling.policy import POLICY_NAME as SAMPLING_POLICY

# ---------------------------------------------------------------- drawing a sample


def batch_for_date(session: Session, sample_date: dt.date) -> SampleBatch | None:
    return session.scalars(select(SampleBatch).where(SampleBatch.sample_date == sample_date)).one_or_none()


@dataclass(frozen=True)
class SamplingFrame:
    """The population of a window, one array per column, in answer id order."""

    answer_ids: np.ndarray  # int64
    department_ids: np.ndarray  # int64, the asker's department
    confidences: np.ndarray  # float64, NaN where unknown

    def __len__(self) -> int:
        return int(self.answer_ids.size)


def sampling_frame(session: Session, *, start: dt.datetime, end: dt.datetime) -> SamplingFrame:
    """(answer id, asker department id, confidence) of answers created in [start, end) that were
    never sampled before and are not gold answers."""
    # NOT EXISTS probes ix_sample_items_answer_id per candidate; NOT IN would read all sample_items
    already_sampled = select(SampleItem.id).where(SampleItem.answer_id == Answer.id).exists()
    gold_answer = select(GoldItem.id).where(GoldItem.answer_id == Answer.id).exists()
    result = session.connection().execute(
        select(Answer.id, Answer.asker_department_id, Answer.confidence)
        .where(Answer.created_at >= start, Answer.created_at < end)
        .where(~already_sampled, ~gold_answer)
        .order_by(Answer.id)
    )
    # A day is tens of thousands of rows: the driver's plain tuples go straight into arrays (the
    # three columns are integers and a float, which no result processor touches), skipping the
    # ORM's and even Core's per-row objects, which cost more than the query.
    try:
        rows = result.cursor.fetchall()
    finally:
        result.close()
    if not rows:
        empty = np.empty(0, dtype=np.int64)
        return SamplingFrame(empty, empty.copy(), np.empty(0, dtype=np.float64))
    ids, departments, confidences = zip(*rows, strict=True)
    return SamplingFrame(
        answer_ids=np.array(ids, dtype=np.int64),
        department_ids=np.array(departments, dtype=np.int64),
        confidences=np.array(confidences, dtype=np.float64),  # None becomes NaN
    )


def department_names(session: Session, ids: Iterable[int] | None = None) -> dict[int, str]:
    query = select(Department.id, Department.name)
    if ids is not None:
        query = query.where(Department.id.in_(list(set(ids))))
    return {id_: name for id_, name in session.execute(query)}


def gold_candidates(session: Session) -> Sequence[Row[int, int, int, int]]:
    """(gold item id, answer id, asker department id, times sampled before) for gold items that
    point at an answer, least-used first."""
    gold_answer_ids = select(GoldItem.answer_id).where(GoldItem.answer_id.is_not(None))
    times_sampled = (
        select(SampleItem.answer_id, func.count().label("n"))
        .where(SampleItem.answer_id.in_(gold_answer_ids))
        .group_by(SampleItem.answer_id)
        .subquery("times_sampled")
    )
    return session.execute(
        select(GoldItem.id, Answer.id, Answer.asker_department_id, func.coalesce(times_sampled.c.n, 0))
        .join(Answer, Answer.id == GoldItem.answer_id)
        .outerjoin(times_sampled, times_sampled.c.answer_id == GoldItem.answer_id)
        .order_by(func.coalesce(times_sampled.c.n, 0), GoldItem.id)
    ).all()


def batch_items(session: Session, batch_id: int) -> list[SampleItem]:
    """The batch's items by id. Sorted here, not with ORDER BY: SQLite would then walk the whole
    table in rowid order instead of searching the (batch_id, answer_id) index."""
    return sorted(session.scalars(select(SampleItem).where(SampleItem.batch_id == batch_id)), key=lambda i: i.id)


# ---------------------------------------------------------------- assignment


def active_auditors(session: Session) -> Sequence[Row[int, str, int | None]]:
    """(id, username, home department id) of every active auditor."""
    return session.execute(
        select(User.id, User.username, User.home_department_id)
        .where(User.role == "auditor", User.active.is_(True))
        .order_by(User.id)
    ).all()


def pending_load(session: Session, auditor_ids: Collection[int]) -> dict[int, int]:
    """Pending assignments per auditor (the load that assignment balances)."""
    if not auditor_ids:
        return {}
    rows = session.execute(
        select(Assignment.auditor_id, func.count())
        .where(Assignment.auditor_id.in_(list(auditor_ids)), Assignment.status == "pending")
        .group_by(Assignment.auditor_id)
    )
    return {auditor_id: n for auditor_id, n in rows}


def auditors_by_answer(session: Session, answer_ids: Collection[int]) -> dict[int, set[int]]:
    """For each answer, the auditors it was ever assigned to (any status, any batch)."""
    seen: dict[int, set[int]] = {}
    ids = list(answer_ids)
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(Assignment.answer_id, Assignment.auditor_id).where(
                Assignment.answer_id.in_(ids[start : start + 500])
            )
        )
        for answer_id, auditor_id in rows:
            seen.setdefault(answer_id, set()).add(auditor_id)
    return seen


def live_assignment_counts(session: Session, batch_id: int) -> dict[int, int]:
    """Assignments per sample item of a batch that still count (pending, submitted or skipped)."""
    rows = session.execute(
        select(Assignment.sample_item_id, func.count())
        .join(SampleItem, SampleItem.id == Assignment.sample_item_id)
        .where(SampleItem.batch_id == batch_id, Assignment.status != "expired")
        .group_by(Assignment.sample_item_id)
    )
    return {item_id: n for item_id, n in rows}


def answer_departments(session: Session, answer_ids: Collection[int]) -> dict[int, int]:
    ids = list(answer_ids)
    found: dict[int, int] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(Answer.id, Answer.asker_department_id).where(Answer.id.in_(ids[start : start + 500]))
        )
        found.update({answer_id: dept_id for answer_id, dept_id in rows})
    return found


def pending_assignments(session: Session, auditor_id: int) -> Sequence[Assignment]:
    """The auditor's pending assignments, in queue order."""
    return session.scalars(
        select(Assignment)
        .where(Assignment.auditor_id == auditor_id, Assignment.status == "pending")
        .order_by(Assignment.position, Assignment.id)
    ).all()


def expired_locks(session: Session, now: dt.datetime) -> Sequence[Assignment]:
    """Pending assignments that were opened and not finished before their lock ran out."""
    return session.scalars(
        select(Assignment)
        .where(Assignment.status == "pending", Assignment.locked_until.is_not(None), Assignment.locked_until < now)
        .order_by(Assignment.locked_until, Assignment.id)
        .with_for_update(skip_locked=True)
    ).all()


def assignments_per_auditor(session: Session, batch_id: int) -> dict[str, int]:
    """Live assignments of a batch per auditor username."""
    rows = session.execute(
        select(User.username, func.count())
        .select_from(Assignment)
        .join(SampleItem, SampleItem.id == Assignment.sample_item_id)
        .join(User, User.id == Assignment.auditor_id)
        .where(SampleItem.batch_id == batch_id, Assignment.status != "expired")
        .group_by(User.username)
    )
    return {username: n for username, n in rows}


# ---------------------------------------------------------------- the hot path


@dataclass(frozen=True)
class PendingItem:
    """The auditor's next pending assignment with everything the rating page shows of it."""

    assignment_id: int
    answer_id: int
    batch_id: int
    sample_date: dt.date
    item_id_range: tuple[int, int] | None  # the batch's lowest and highest sample item id, if recorded
    question: str
    answer_text: str
    department: str  # the asker's department
    sources: list[dict[str, Any]]
    answered_at: dt.datetime
    policy_settings: dict[str, Any] | None  # the stored sampling policy (None: the defaults)
    done: int | None  # the auditor's submitted or skipped items in the batch (None: no item range)
    total: int | None  # ... and those plus the pending ones


def _batch_progress(statuses: tuple[str, ...]) -> Any:
    """Correlated count of the outer assignment's auditor's assignments in the outer batch with these
    statuses: a range scan on (auditor_id, status, position) bounded by the batch's item id range
    (positions are sample item ids), each row's batch checked by primary key."""
    mine = aliased(Assignment)
    item = aliased(SampleItem)
    return (
        select(func.count())
        .select_from(mine)
        .join(item, item.id == mine.sample_item_id)
        .where(
            mine.auditor_id == Assignment.auditor_id,
            mine.status.in_([literal(status) for status in statuses]),  # not an expanding IN: fixed SQL
            mine.position.between(
                SampleBatch.parameters[("item_id_range", 0)].as_integer(),
                SampleBatch.parameters[("item_id_range", 1)].as_integer(),
            ),
            item.batch_id == SampleBatch.id,
        )
        .correlate(Assignment, SampleBatch)
        .scalar_subquery()
    )


def _item_statement(*extra: Any) -> Select[*tuple[Any, ...]]:
    """An assignment with everything the rating page shows of it (``extra`` columns after those), the
    sampling policy's row and the auditor's progress in the batch; the caller adds the WHERE."""
    policy = select(Policy.settings).where(Policy.name == SAMPLING_POLICY).scalar_subquery()
    return (
        select(
            Assignment.id,
            Assignment.answer_id,
            SampleBatch.id,
            SampleBatch.sample_date,
            SampleBatch.parameters[("item_id_range", 0)].as_integer(),
            SampleBatch.parameters[("item_id_range", 1)].as_integer(),
            Answer.question,
            Answer.answer_text,
            Department.name,
            Answer.sources,
            Answer.created_at,
            policy,
            _batch_progress(("submitted", "skipped")),
            # not ("pending",) alone: PostgreSQL would then count every auditor's pending rows on the
            # (status, locked_until) index instead of this auditor's on (auditor_id, status, position)
            _batch_progress(("pending", "submitted", "skipped")),
            *extra,
        )
        .join(SampleItem, SampleItem.id == Assignment.sample_item_id)
        .join(SampleBatch, SampleBatch.id == SampleItem.batch_id)
        .join(Answer, Answer.id == Assignment.answer_id)
        .join(Department, Department.id == Answer.asker_department_id)
    )


@functools.cache
def _next_for_rating_statement() -> Select[*tuple[Any, ...]]:
    """Built once: constructing it (aliases, JSON paths, subqueries) costs more than running it."""
    return (
        _item_statement()
        .where(Assignment.auditor_id == bindparam("auditor_id"), Assignment.status == "pending")
        .order_by(Assignment.position)
        .limit(1)
    )


def _pending_item(row: Row[*tuple[Any, ...]]) -> PendingItem:
    assignment_id, answer_id, batch_id, sample_date, low, high, question, text, department, sources, at = row[:11]
    has_range = low is not None and high is not None
    return PendingItem(
        assignment_id=assignment_id,
        answer_id=answer_id,
        batch_id=batch_id,
        sample_date=sample_date,
        item_id_range=(int(low), int(high)) if has_range else None,
        question=question,
        answer_text=text,
        department=department,
        sources=list(sources or []),
        answered_at=at,
        policy_settings=row[11],
        done=int(row[12]) if has_range else None,
        total=int(row[13]) if has_range else None,
    )


def next_for_rating(session: Session, auditor_id: int) -> PendingItem | None:
    """The auditor's first pending assignment by position, in one statement: the range scan on
    (auditor_id, status, position) with LIMIT 1, primary-key joins to its item, batch, answer and the
    asker's department, the sampling policy's row, and the auditor's progress in the batch."""
    row = core_execute(session, _next_for_rating_statement(), {"auditor_id": auditor_id}).first()
    return None if row is None else _pending_item(row)


@dataclass(frozen=True)
class AssignedItem:
    """Any one assignment (pending or done) with what the rating page shows of it, and its state."""

    item: PendingItem  # what the page shows (``done``/``total``: the auditor's progress in the batch)
    auditor_id: int
    status: str
    skip_reason: str | None
    completed_at: dt.datetime | None


@functools.cache
def _assigned_item_statement() -> Select[*tuple[Any, ...]]:
    return _item_statement(
        Assignment.auditor_id, Assignment.status, Assignment.skip_reason, Assignment.completed_at
    ).where(Assignment.id == bindparam("assignment_id"))


def assigned_item(session: Session, assignment_id: int) -> AssignedItem | None:
    """One assignment by id, as ``next_for_rating`` reads the next one, with its auditor and state."""
    row = core_execute(session, _assigned_item_statement(), {"assignment_id": assignment_id}).first()
    if row is None:
        return None
    auditor_id, status, skip_reason, completed_at = row[14:18]
    return AssignedItem(
        item=_pending_item(row),
        auditor_id=auditor_id,
        status=status,
        skip_reason=skip_reason,
        completed_at=completed_at,
    )


def previous_done(
    session: Session, *, auditor_id: int, since: dt.datetime, before: tuple[dt.datetime, int] | None
) -> int | None:
    """The auditor's assignment finished (submitted or skipped) last at or after ``since``, and before
    ``before`` (a finish time and assignment id) when given: the id, or None.

    The (auditor_id, status, position) index finds the auditor's done rows; their finish times are
    read from the table: one auditor's history, on a click, not on the per-item path."""
    query = select(Assignment.id).where(
        Assignment.auditor_id == auditor_id,
        Assignment.status.in_(("submitted", "skipped")),
        Assignment.completed_at >= since,
    )
    if before is not None:
        finished, assignment_id = before
        query = query.where(
            (Assignment.completed_at < finished)
            | ((Assignment.completed_at == finished) & (Assignment.id < assignment_id))
        )
    return session.scalars(query.order_by(Assignment.completed_at.desc(), Assignment.id.desc()).limit(1)).first()


@dataclass(frozen=True)
class SkippedRow:
    assignment_id: int
    answer_id: int
    sample_date: dt.date
    question: str
    reason: str
    skipped_at: dt.datetime | None


def skipped_assignments(session: Session, auditor_id: int, *, limit: int) -> list[SkippedRow]:
    """The auditor's skipped assignments, the latest skipped first (at most ``limit``)."""
    rows = session.execute(
        select(
            Assignment.id,
            Assignment.answer_id,
            SampleBatch.sample_date,
            Answer.question,
            Assignment.skip_reason,
            Assignment.completed_at,
        )
        .join(SampleItem, SampleItem.id == Assignment.sample_item_id)
        .join(SampleBatch, SampleBatch.id == SampleItem.batch_id)
        .join(Answer, Answer.id == Assignment.answer_id)
        .where(Assignment.auditor_id == auditor_id, Assignment.status == "skipped")
        .order_by(Assignment.completed_at.desc(), Assignment.id.desc())
        .limit(limit)
    )
    return [SkippedRow(*row[:4], reason=row[4] or "", skipped_at=row[5]) for row in rows]


def latest_batch_of(session: Session, auditor_id: int) -> SampleBatch | None:
    """The latest batch (by sample date) in which the auditor has an assignment that still counts
    (pending, submitted or skipped)."""
    return session.scalars(
        select(SampleBatch)
        .join(SampleItem, SampleItem.batch_id == SampleBatch.id)
        .join(Assignment, Assignment.sample_item_id == SampleItem.id)
        .where(Assignment.auditor_id == auditor_id, Assignment.status != "expired")
        .order_by(SampleBatch.sample_date.desc())
        .limit(1)
    ).first()


@functools.cache
def _lock_statement(*, postgres: bool) -> Update:
    statement = (
        update(Assignment)
        .where(Assignment.id == bindparam("assignment_id"))
        .values(locked_until=bindparam("locked_until"))
    )
    if postgres:
        # set_config(..., is_local => true) is SET LOCAL: this transaction only, evaluated once for
        # the one row the primary key finds (volatile: never folded into the plan)
        statement = statement.where(func.set_config("synchronous_commit", "off", True).is_not(None))
    return statement


def lock_assignment(session: Session, assignment_id: int, locked_until: dt.datetime) -> None:
    """Set the assignment's lock time: one UPDATE by primary key.

    On PostgreSQL it also turns ``synchronous_commit`` off for the rest of this transaction: its
    commit then returns without waiting for the WAL flush (the fsync that is most of a small
    write's latency). The lock is a lease, so what a server crash can lose (the renewals of the
    last few hundred milliseconds, ``wal_writer_delay`` x 3 at most) only leaves an item with its
    previous lock time; nothing is ever half-written. Do not write data that must survive a crash
    in the same transaction (the rating page's next-item transaction writes nothing else).
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    core_execute(
        session, _lock_statement(postgres=postgres), {"assignment_id": assignment_id, "locked_until": locked_until}
    )
    sync_loaded(session, Assignment, assignment_id, {"locked_until": locked_until})


def batch_item_range(session: Session, batch_id: int) -> tuple[int, int] | None:
    """Lowest and highest sample item id of a batch (positions of its assignments lie in between)."""
    row = session.execute(
        select(func.min(SampleItem.id), func.max(SampleItem.id)).where(SampleItem.batch_id == batch_id)
    ).one()
    return None if row[0] is None else (int(row[0]), int(row[1]))


def progress_counts(session: Session, *, auditor_id: int, batch_id: int, item_range: tuple[int, int]) -> dict[str, int]:
    """The auditor's assignments in one batch, per status.

    Positions are sample item ids, so bounding ``position`` by the batch's item range keeps this a
    range scan over one auditor's day on the (auditor_id, status, position) index, however long the
    auditor's history is.
    """
    low, high = item_range
    rows = session.execute(
        select(Assignment.status, func.count())
        .join(SampleItem, SampleItem.id == Assignment.sample_item_id)
        .where(
            Assignment.auditor_id == auditor_id,
            Assignment.status.in_(("pending", "submitted", "skipped")),
            Assignment.position.between(low, high),
            SampleItem.batch_id == batch_id,
        )
        .group_by(Assignment.status)
    )
    return {status: n for status, n in rows}


@dataclass(frozen=True)
class SourceView:
    """One retrieved source of an answer, with what the knowledge base says about it now."""

    document_id: int | None
    external_id: str | None
    title: str | None
    department: str | None
    version: int | None
    outdated: bool
    score: float | None


@functools.cache
def _source_documents_statement() -> Select[*tuple[Any, ...]]:
    """Documents by id or external id, only what a source view shows (a body can be long); built
    once, the id lists bound as expanding parameters."""
    return (
        select(
            Document.id,
            Document.external_id,
            Document.title,
            Document.version,
            Document.superseded_by_id,
            Department.name,
        )
        .join(Department, Department.id == Document.department_id)
        .where(
            Document.id.in_(bindparam("ids", expanding=True))
            | Document.external_id.in_(bindparam("external_ids", expanding=True))
        )
    )


def source_views(session: Session, sources: Sequence[dict[str, Any]]) -> tuple[SourceView, ...]:
    """Resolve an answer's ``sources`` JSON (document ids or external ids) against the documents table.

    A source whose document is unknown is still shown, with the department and score it was given.
    """
    int_ids = [s["document_id"] for s in sources if isinstance(s.get("document_id"), int)]
    str_ids = [s["document_id"] for s in sources if isinstance(s.get("document_id"), str)]
    documents: dict[int | str, Row[int, str, str, int, int | None, str]] = {}
    if int_ids or str_ids:
        rows = core_execute(session, _source_documents_statement(), {"ids": int_ids, "external_ids": str_ids})
        for row in rows:
            documents[row[0]] = row
            documents[row[1]] = row
    views = []
    for source in sources:
        key = source.get("document_id")
        found = documents.get(key) if isinstance(key, int | str) else None
        score = source.get("score")
        if found is None:
            views.append(
                SourceView(
                    document_id=key if isinstance(key, int) else None,
                    external_id=key if isinstance(key, str) else None,
                    title=None,
                    department=source.get("department"),
                    version=None,
                    outdated=False,
                    score=float(score) if isinstance(score, int | float) else None,
                )
            )
            continue
        document_id, external_id, title, version, superseded_by_id, dept_name = found
        views.append(
            SourceView(
                document_id=document_id,
                external_id=external_id,
                title=title,
                department=dept_name,
                version=version,
                outdated=superseded_by_id is not None,
                score=float(score) if isinstance(score, int | float) else None,
            )
        )
    return tuple(views)


def answer_with_department(session: Session, answer_id: int) -> tuple[Answer, str] | None:
    row = session.execute(
        select(Answer, Department.name)
        .join(Department, Department.id == Answer.asker_department_id)
        .where(Answer.id == answer_id)
    ).first()
    return None if row is None else (row[0], row[1])
