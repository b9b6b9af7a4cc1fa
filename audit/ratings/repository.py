"""Queries for ratings: by idempotency key, the current rating of an answer × auditor, histories."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, bindparam, null, select
from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.db import core_execute, update_by_id
from audit.org.models import Department, User
from audit.policy.models import Policy
from audit.ratings.models import Rating
from audit.review.policy import POLICY_NAME as ROUTING_POLICY
from audit.sampling.models import Assignment


def by_idempotency_key(session: Session, key: str) -> Rating | None:
    return session.scalars(select(Rating).where(Rating.idempotency_key == key)).one_or_none()


@dataclass(frozen=True)
class SubmitTarget:
    """What submitting a rating for an assignment needs to know, read in one statement."""

    assignment_id: int
    answer_id: int
    auditor_id: int
    status: str
    asker_department_id: int
    previous_rating_id: int | None  # the auditor's current rating of the answer (e.g. imported)
    repeat_rating_id: int | None  # the rating already stored under the idempotency key
    routing_settings: dict[str, Any] | None  # the stored routing policy (None: the defaults)


@functools.cache
def _submit_target_statement(*, with_key: bool) -> Select[*tuple[Any, ...]]:
    """Built once per variant: constructing it costs more than running it."""
    repeat = (
        select(Rating.id).where(Rating.idempotency_key == bindparam("key")).scalar_subquery() if with_key else null()
    )
    previous = (
        select(Rating.id)
        .where(Rating.answer_id == Assignment.answer_id, Rating.auditor_id == Assignment.auditor_id, Rating.is_current)
        .correlate(Assignment)
        .scalar_subquery()
    )
    routing = select(Policy.settings).where(Policy.name == ROUTING_POLICY).scalar_subquery()
    return (
        select(
            Assignment.id,
            Assignment.answer_id,
            Assignment.auditor_id,
            Assignment.status,
            Answer.asker_department_id,
            previous,
            repeat,
            routing,
        )
        .join(Answer, Answer.id == Assignment.answer_id)
        .where(Assignment.id == bindparam("assignment_id"))
        .with_for_update(key_share=True, of=[Assignment.__table__, Answer.__table__])
    )


def submit_target(session: Session, assignment_id: int, idempotency_key: str | None) -> SubmitTarget | None:
    """The assignment and its answer, both row-locked on PostgreSQL (``FOR NO KEY UPDATE``), with the
    rating its idempotency key already names, the auditor's current rating of the answer, and the
    routing policy.

    The assignment's lock queues two submits of it. The answer's lock is the one routing needs
    (:func:`audit.review.repository.lock_answer`): submits of one answer by different auditors take
    turns, so each one's routing reads the other's committed rating. Taken here, before this
    transaction inserts its rating, it cannot deadlock against that insert's foreign-key KEY SHARE
    lock. SQLite's BEGIN IMMEDIATE already serialises writers.
    """
    statement = _submit_target_statement(with_key=idempotency_key is not None)
    row = core_execute(session, statement, {"assignment_id": assignment_id, "key": idempotency_key}).first()
    return None if row is None else SubmitTarget(*row)


def close_assignment(session: Session, assignment_id: int, *, status: str, completed_at: dt.datetime) -> None:
    """Mark an assignment done and clear its lock (one UPDATE by primary key)."""
    update_by_id(
        session, Assignment, assignment_id, {"status": status, "completed_at": completed_at, "locked_until": None}
    )


def retire_rating(session: Session, rating_id: int) -> None:
    """Clear a rating's ``is_current`` (a newer row supersedes it)."""
    update_by_id(session, Rating, rating_id, {"is_current": False})


def rating(session: Session, rating_id: int) -> Rating | None:
    return session.get(Rating, rating_id)


def assignment_for_update(session: Session, assignment_id: int) -> Assignment | None:
    """The assignment, row-locked on PostgreSQL so that two submits of it queue up (SQLite's
    BEGIN IMMEDIATE already serialises writers)."""
    return session.get(Assignment, assignment_id, with_for_update=True, populate_existing=True)


def rating_for_update(session: Session, rating_id: int) -> Rating | None:
    return session.get(Rating, rating_id, with_for_update=True, populate_existing=True)


def current_rating(session: Session, *, answer_id: int, auditor_id: int) -> Rating | None:
    return session.scalars(
        select(Rating).where(Rating.answer_id == answer_id, Rating.auditor_id == auditor_id, Rating.is_current)
    ).one_or_none()


def last_finished_assignment_id(session: Session, auditor_id: int) -> int | None:
    """The auditor's assignment submitted or skipped last (by finish time), or None."""
    return session.scalars(
        select(Assignment.id)
        .where(Assignment.auditor_id == auditor_id, Assignment.status.in_(("submitted", "skipped")))
        .order_by(Assignment.completed_at.desc(), Assignment.id.desc())
        .limit(1)
    ).first()


def superseding_rating_id(session: Session, rating_id: int) -> int | None:
    return session.scalars(select(Rating.id).where(Rating.supersedes_id == rating_id)).first()


def ratings_with_auditor(
    session: Session,
    *,
    answer_id: int | None = None,
    auditor_id: int | None = None,
    current_only: bool = True,
    created_from: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
) -> Sequence[Row[Rating, str]]:
    """(rating, auditor username) rows, oldest first."""
    query = select(Rating, User.username).join(User, User.id == Rating.auditor_id)
    if answer_id is not None:
        query = query.where(Rating.answer_id == answer_id)
    if auditor_id is not None:
        query = query.where(Rating.auditor_id == auditor_id)
    if current_only:
        query = query.where(Rating.is_current)
    if created_from is not None:
        query = query.where(Rating.created_at >= created_from)
    if created_before is not None:
        query = query.where(Rating.created_at < created_before)
    return session.execute(query.order_by(Rating.created_at, Rating.id)).all()


def answer_questions(session: Session, answer_ids: Collection[int]) -> dict[int, str]:
    if not answer_ids:
        return {}
    return dict(session.execute(select(Answer.id, Answer.question).where(Answer.id.in_(answer_ids))).tuples().all())


def department_names(session: Session, ids: Collection[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(Department.id, Department.name).where(Department.id.in_(list(ids))))
    return {id_: name for id_, name in rows}


def department_id(session: Session, ref: str | int) -> int | None:
    """A department by name or id."""
    if isinstance(ref, int):
        return session.scalars(select(Department.id).where(Department.id == ref)).first()
    return session.scalars(select(Department.id).where(Department.name == ref)).first()
