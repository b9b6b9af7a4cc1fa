"""Queries for ratings: by idempotency key, the current rating of an answer × auditor, histories."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from audit.org.models import Department, User
from audit.ratings.models import Rating
from audit.sampling.models import Assignment


def by_idempotency_key(session: Session, key: str) -> Rating | None:
    return session.scalars(select(Rating).where(Rating.idempotency_key == key)).one_or_none()


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
