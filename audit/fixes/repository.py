"""Queries the fix pipeline needs: confirmed reviews still without fixes, the examples, documents and
gold questions a proposal is checked against, and the fixes themselves."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import msgspec
from sqlalchemy import Select, Text, cast, exists, func, select
from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.fixes.models import DataFix
from audit.knowledge.models import Document, Example, RetrievalEvalPair
from audit.org.models import Department
from audit.ratings.models import Rating
from audit.review.models import ReviewDecision, ReviewItem
from audit.sampling.models import GoldItem

# Bound parameters per IN (...) list: SQLite allows 32,766 variables, PostgreSQL 65,535.
CHUNK = 5_000
T = TypeVar("T")


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass(frozen=True)
class ConfirmedReview:
    """A confirmed review with the answer it judged: everything a proposal is built from."""

    review_item_id: int
    department_id: int
    root_cause: str
    corrected_answer: str | None
    correct_document_id: int | None
    sme_id: int
    answer_id: int
    question: str
    answer_text: str
    asker_department_id: int
    sources: list[dict[str, Any]]


class ActiveExample(NamedTuple):
    """An active example as proposals read it (a tuple: 100k of them are built per proposal run)."""

    id: int
    question: str
    answer: str
    department_id: int
    source_document_ids: list[str]
    content_hash: str


def confirmed_reviews_without_fixes(session: Session) -> list[ConfirmedReview]:
    """Confirmed reviews no fix has been proposed for yet (proposing is once per review)."""
    rows = session.execute(
        select(
            ReviewItem.id,
            ReviewItem.department_id,
            ReviewDecision.root_cause,
            ReviewDecision.corrected_answer,
            ReviewDecision.correct_document_id,
            ReviewDecision.sme_id,
            Answer.id,
            Answer.question,
            Answer.answer_text,
            Answer.asker_department_id,
            Answer.sources,
        )
        .join(ReviewDecision, ReviewDecision.review_item_id == ReviewItem.id)
        .join(Answer, Answer.id == ReviewItem.answer_id)
        .where(ReviewDecision.decision == "confirm")
        .where(~exists().where(DataFix.review_item_id == ReviewItem.id))
        .order_by(ReviewItem.id)
    ).all()
    return [
        ConfirmedReview(
            review_item_id=r[0],
            department_id=r[1],
            root_cause=str(r[2]),
            corrected_answer=r[3],
            correct_document_id=r[4],
            sme_id=r[5],
            answer_id=r[6],
            question=r[7],
            answer_text=r[8],
            asker_department_id=r[9],
            sources=list(r[10] or []),
        )
        for r in rows
    ]


_SOURCE_IDS = msgspec.json.Decoder(list[str] | None)


def active_examples(session: Session) -> list[ActiveExample]:
    # source ids as JSON text, decoded with msgspec: the JSON type's json.loads is the slow part at 100k rows
    session.flush()
    rows = session.connection().execute(
        select(
            Example.id,
            Example.question,
            Example.answer,
            Example.department_id,
            cast(Example.source_document_ids, Text),
            Example.content_hash,
        )
        .where(Example.status == "active")
        .order_by(Example.id)
    )
    return [ActiveExample(r[0], r[1], r[2], r[3], (_SOURCE_IDS.decode(r[4]) or []) if r[4] else [], r[5]) for r in rows]


def existing_example_hashes(session: Session, hashes: Collection[str]) -> set[str]:
    """The given content hashes that some example (of any status) already has."""
    found: set[str] = set()
    for part in chunks(sorted(set(hashes))):
        found.update(session.scalars(select(Example.content_hash).where(Example.content_hash.in_(part))))
    return found


def gold_questions(session: Session) -> list[tuple[int, str, str]]:
    """(gold item id, question, question hash) of every held-out gold item."""
    return [
        (r[0], r[1], r[2])
        for r in session.execute(select(GoldItem.id, GoldItem.question, GoldItem.question_hash).order_by(GoldItem.id))
    ]


def held_out_gold_answers(session: Session) -> list[tuple[int, str]]:
    """(gold item id, reference answer) of every gold item not drawn from an answer (held out)."""
    return [
        (r[0], r[1])
        for r in session.execute(
            select(GoldItem.id, GoldItem.reference_answer).where(GoldItem.answer_id.is_(None)).order_by(GoldItem.id)
        )
    ]


def documents_by_external_id(session: Session, external_ids: Iterable[str]) -> dict[str, Document]:
    wanted = sorted(set(external_ids))
    found: dict[str, Document] = {}
    for part in chunks(wanted):
        found.update(
            (d.external_id, d) for d in session.scalars(select(Document).where(Document.external_id.in_(part)))
        )
    return found


def documents_by_id(session: Session, ids: Iterable[int]) -> dict[int, Document]:
    wanted = sorted(set(ids))
    found: dict[int, Document] = {}
    for part in chunks(wanted):
        found.update((d.id, d) for d in session.scalars(select(Document).where(Document.id.in_(part))))
    return found


def latest_in_families(session: Session, families: Iterable[str]) -> dict[str, Document]:
    """The highest version of each document family."""
    wanted = sorted(set(families))
    latest: dict[str, Document] = {}
    for part in chunks(wanted):
        for doc in session.scalars(select(Document).where(Document.family.in_(part)).order_by(Document.version)):
            latest[doc.family] = doc  # ascending order: the last one seen is the highest version
    return latest


def current_documents_of(session: Session, department_ids: Collection[int]) -> list[Document]:
    """Documents not superseded, of the given departments, by family."""
    return list(
        session.scalars(
            select(Document)
            .where(Document.department_id.in_(sorted(department_ids)), Document.superseded_by_id.is_(None))
            .order_by(Document.department_id, Document.family, Document.version)
        )
    )


def department_names(session: Session) -> dict[int, str]:
    return {r[0]: r[1] for r in session.execute(select(Department.id, Department.name))}


def active_example_counts_by_department(session: Session) -> dict[str, int]:
    """Active examples per department name; departments without any appear with 0."""
    counts = dict.fromkeys(department_names(session).values(), 0)
    rows = session.execute(
        select(Department.name, func.count(Example.id))
        .join(Example, Example.department_id == Department.id)
        .where(Example.status == "active")
        .group_by(Department.name)
    )
    counts.update({name: int(n) for name, n in rows})
    return counts


def disfavoured_departments(session: Session, answer_id: int) -> set[int]:
    """Departments the current bias-flag ratings of an answer say it disfavoured."""
    return {
        d
        for d in session.scalars(
            select(Rating.disfavoured_department_id).where(
                Rating.answer_id == answer_id,
                Rating.is_current.is_(True),
                Rating.bias_flag.is_(True),
                Rating.disfavoured_department_id.is_not(None),
            )
        )
        if d is not None
    }


def retrieval_pair_exists(session: Session, question_hash: str, document_id: int) -> bool:
    return (
        session.scalar(
            select(RetrievalEvalPair.id).where(
                RetrievalEvalPair.question_hash == question_hash, RetrievalEvalPair.document_id == document_id
            )
        )
        is not None
    )


def fixes_query(
    *, status: str | None = None, kind: str | None = None, review_item_id: int | None = None
) -> Select[DataFix]:
    query = select(DataFix).order_by(DataFix.id)
    if status is not None:
        query = query.where(DataFix.status == status)
    if kind is not None:
        query = query.where(DataFix.kind == kind)
    if review_item_id is not None:
        query = query.where(DataFix.review_item_id == review_item_id)
    return query


def fixes(
    session: Session,
    *,
    status: str | None = None,
    kind: str | None = None,
    review_item_id: int | None = None,
    limit: int | None = None,
) -> list[DataFix]:
    query = fixes_query(status=status, kind=kind, review_item_id=review_item_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def fixes_by_id(session: Session, ids: Sequence[int]) -> list[DataFix]:
    found: list[DataFix] = []
    for part in chunks(sorted(set(ids))):
        found.extend(session.scalars(select(DataFix).where(DataFix.id.in_(part)).order_by(DataFix.id)))
    return found


def pending_payload_values(session: Session, kind: str, key: str) -> dict[Any, int]:
    """{payload[key]: fix id} over the proposed fixes of one kind (few: they wait for a decision)."""
    values: dict[Any, int] = {}
    for fix_id, payload in session.execute(
        select(DataFix.id, DataFix.payload).where(DataFix.status == "proposed", DataFix.kind == kind)
    ):
        if isinstance(payload, dict) and key in payload:
            values.setdefault(payload[key], fix_id)
    return values


def first_proposed(session: Session, kind: str) -> int | None:
    """The id of the oldest fix of ``kind`` still waiting for a decision."""
    return session.scalar(
        select(DataFix.id).where(DataFix.status == "proposed", DataFix.kind == kind).order_by(DataFix.id).limit(1)
    )


def latest_applied_rebalance(session: Session) -> DataFix | None:
    """The rebalance in force: later dataset versions keep its department weights."""
    return session.scalars(
        select(DataFix)
        .where(DataFix.kind == "rebalance", DataFix.status == "applied")
        .order_by(DataFix.decided_at.desc(), DataFix.id.desc())
        .limit(1)
    ).one_or_none()


def count_by_status(session: Session) -> dict[str, int]:
    return {s: int(n) for s, n in session.execute(select(DataFix.status, func.count()).group_by(DataFix.status))}
