"""Queries for routing and the SME review queue."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy.orm import Session, aliased

from audit.answers.models import Answer
from audit.db import core_execute
from audit.org.models import Department, User, user_departments
from audit.ratings.models import DIMENSIONS, Rating
from audit.review.models import ReviewDecision, ReviewItem
from audit.sampling.models import GoldItem

CHUNK = 500


@dataclass(frozen=True)
class CurrentScores:
    """What routing needs of one current rating."""

    auditor_id: int
    accuracy: int | None
    completeness: int | None
    relevance: int | None
    coherence: int | None
    bias_flag: bool

    def scores(self) -> dict[str, int | None]:
        return {
            "accuracy": self.accuracy,
            "completeness": self.completeness,
            "relevance": self.relevance,
            "coherence": self.coherence,
        }


def current_scores(session: Session, answer_ids: Collection[int]) -> dict[int, list[CurrentScores]]:
    """answer id -> the scores of its current ratings."""
    ids = list(answer_ids)
    found: dict[int, list[CurrentScores]] = {}
    for start in range(0, len(ids), CHUNK):
        rows = session.execute(
            select(
                Rating.answer_id,
                Rating.auditor_id,
                Rating.accuracy,
                Rating.completeness,
                Rating.relevance,
                Rating.coherence,
                Rating.bias_flag,
            ).where(Rating.answer_id.in_(ids[start : start + CHUNK]), Rating.is_current)
        )
        for answer_id, auditor_id, accuracy, completeness, relevance, coherence, bias_flag in rows:
            found.setdefault(answer_id, []).append(
                CurrentScores(auditor_id, accuracy, completeness, relevance, coherence, bool(bias_flag))
            )
    return found


@functools.cache
def _scores_and_gold_statement() -> Select[*tuple[Any, ...]]:
    return (
        select(
            Rating.auditor_id,
            Rating.accuracy,
            Rating.completeness,
            Rating.relevance,
            Rating.coherence,
            Rating.bias_flag,
            GoldItem.id,
            GoldItem.expected_accuracy,
            GoldItem.expected_completeness,
            GoldItem.expected_relevance,
            GoldItem.expected_coherence,
        )
        .select_from(Answer)
        .outerjoin(Rating, (Rating.answer_id == Answer.id) & Rating.is_current)
        .outerjoin(GoldItem, GoldItem.answer_id == Answer.id)
        .where(Answer.id == bindparam("answer_id"))
    )


def scores_and_gold(session: Session, answer_id: int) -> tuple[list[CurrentScores], dict[str, int | None] | None]:
    """One answer's current ratings' scores and its gold item's expected scores (None: not gold), in
    one statement: the answer by primary key, its current ratings and gold item by their answer_id
    indexes."""
    rows = core_execute(session, _scores_and_gold_statement(), {"answer_id": answer_id}).all()
    scores = [CurrentScores(row[0], row[1], row[2], row[3], row[4], bool(row[5])) for row in rows if row[0] is not None]
    gold = None
    if rows and rows[0][6] is not None:
        gold = dict(zip(DIMENSIONS, rows[0][7:11], strict=True))
    return scores, gold


def gold_items(session: Session, answer_ids: Collection[int]) -> dict[int, GoldItem]:
    ids = list(answer_ids)
    found: dict[int, GoldItem] = {}
    for start in range(0, len(ids), CHUNK):
        for gold in session.scalars(select(GoldItem).where(GoldItem.answer_id.in_(ids[start : start + CHUNK]))):
            assert gold.answer_id is not None
            found[gold.answer_id] = gold
    return found


def answers_with_current_ratings(session: Session, *, since: dt.datetime | None) -> list[int]:
    query = select(Rating.answer_id).where(Rating.is_current).distinct()
    if since is not None:
        query = query.where(Rating.created_at >= since)
    return sorted(session.scalars(query).all())


def item_for_answer(session: Session, answer_id: int) -> ReviewItem | None:
    """The answer's review item, row-locked on PostgreSQL so routing never races an SME's update."""
    return session.scalars(
        select(ReviewItem)
        .where(ReviewItem.answer_id == answer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def lock_answer(session: Session, answer_id: int) -> int | None:
    """Row-lock the answer for routing (PostgreSQL ``FOR NO KEY UPDATE``; SQLite's BEGIN IMMEDIATE
    already serialises writers) and return its asker's department, None if it does not exist.

    Two submits of one answer in concurrent READ COMMITTED transactions would otherwise each read
    only their own rating and miss a disagreement between them. NO KEY UPDATE, not UPDATE: each
    transaction already holds the KEY SHARE lock its rating's foreign key took on this row, and
    UPDATE would deadlock against the other's."""
    return session.scalars(
        select(Answer.asker_department_id).where(Answer.id == answer_id).with_for_update(key_share=True)
    ).first()


def asker_department_id(session: Session, answer_id: int) -> int | None:
    return session.scalars(select(Answer.asker_department_id).where(Answer.id == answer_id)).first()


def covered_department_ids(session: Session, user_id: int) -> set[int]:
    return set(session.scalars(select(user_departments.c.department_id).where(user_departments.c.user_id == user_id)))


def department_id_by_name(session: Session, name: str) -> int | None:
    return session.scalars(select(Department.id).where(Department.name == name)).first()


def queue_rows(
    session: Session,
    *,
    department_ids: Collection[int] | None,
    statuses: Sequence[str],
    created_from: dt.datetime | None,
) -> Sequence[Row[ReviewItem, str, str, str | None]]:
    """(item, question, department name, claimer username), oldest first."""
    claimer = aliased(User)
    query = (
        select(ReviewItem, Answer.question, Department.name, claimer.username)
        .join(Answer, Answer.id == ReviewItem.answer_id)
        .join(Department, Department.id == ReviewItem.department_id)
        .outerjoin(claimer, claimer.id == ReviewItem.claimed_by_id)
        .where(ReviewItem.status.in_(list(statuses)))
    )
    if department_ids is not None:
        query = query.where(ReviewItem.department_id.in_(list(department_ids)))
    if created_from is not None:
        query = query.where(ReviewItem.created_at >= created_from)
    return session.execute(query.order_by(ReviewItem.created_at, ReviewItem.id)).all()


def item(session: Session, item_id: int) -> ReviewItem | None:
    """The item as it is in the database now (not a stale copy from the identity map)."""
    return session.get(ReviewItem, item_id, populate_existing=True)


def decision_with_sme(session: Session, item_id: int) -> Row[ReviewDecision, str] | None:
    return session.execute(
        select(ReviewDecision, User.username)
        .join(User, User.id == ReviewDecision.sme_id)
        .where(ReviewDecision.review_item_id == item_id)
    ).first()


def decisions_by(session: Session, sme_id: int, *, limit: int) -> Sequence[Row[ReviewDecision, str, str]]:
    """The SME's decisions, newest first, with the item's department and the answer's question."""
    return session.execute(
        select(ReviewDecision, Department.name, Answer.question)
        .join(ReviewItem, ReviewItem.id == ReviewDecision.review_item_id)
        .join(Department, Department.id == ReviewItem.department_id)
        .join(Answer, Answer.id == ReviewItem.answer_id)
        .where(ReviewDecision.sme_id == sme_id)
        .order_by(ReviewDecision.created_at.desc(), ReviewDecision.id.desc())
        .limit(limit)
    ).all()


def username(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    return session.scalars(select(User.username).where(User.id == user_id)).first()
