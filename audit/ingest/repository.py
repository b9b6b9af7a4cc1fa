"""Queries ingest needs: the name-to-id maps loaded once per file, and per-chunk look-ups by key."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.answers.models import Answer, AnswerReference
from audit.knowledge.models import Document, Example, dataset_version_examples
from audit.modelops.models import ModelVersion
from audit.org.models import User
from audit.ratings.models import Rating
from audit.sampling.models import GoldItem

# Bound parameters per IN (...) list: well under SQLite's 32766 and PostgreSQL's 65535.
_IN_BATCH = 5000


def _batches(values: Collection[Any]) -> list[list[Any]]:
    items = list(values)
    return [items[i : i + _IN_BATCH] for i in range(0, len(items), _IN_BATCH)]


def model_version_ids_by_name(session: Session) -> dict[str, int]:
    return {name: id_ for id_, name in session.execute(select(ModelVersion.id, ModelVersion.name))}


def document_ids_by_external_id(session: Session) -> dict[str, int]:
    return {ext: id_ for id_, ext in session.execute(select(Document.id, Document.external_id))}


def documents_by_external_id(session: Session) -> dict[str, tuple[int, str, str, int]]:
    """``{external_id: (id, content_hash, family, version)}`` for every document."""
    rows = session.execute(
        select(Document.external_id, Document.id, Document.content_hash, Document.family, Document.version)
    )
    return {ext: (id_, digest, family, version) for ext, id_, digest, family, version in rows}


def document_supersessions(session: Session) -> dict[str, int | None]:
    """Every document's external_id and the id of the version that replaced it (None: current)."""
    return {
        ext: successor for ext, successor in session.execute(select(Document.external_id, Document.superseded_by_id))
    }


def gold_items_by_question_hash(session: Session, hashes: Collection[str]) -> dict[str, GoldItem]:
    found: dict[str, GoldItem] = {}
    for batch in _batches(hashes):
        for gold in session.scalars(select(GoldItem).where(GoldItem.question_hash.in_(batch))):
            found[gold.question_hash] = gold
    return found


def answer_ids_by_external_id(session: Session, external_ids: Collection[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for batch in _batches(external_ids):
        rows = session.execute(select(Answer.external_id, Answer.id).where(Answer.external_id.in_(batch)))
        found.update({ext: id_ for ext, id_ in rows})
    return found


def user_ids_by_username(session: Session) -> dict[str, int]:
    return {username: id_ for id_, username in session.execute(select(User.id, User.username))}


def examples_by_external_id(session: Session, external_ids: Collection[str]) -> dict[str, Example]:
    found: dict[str, Example] = {}
    for batch in _batches(external_ids):
        for example in session.scalars(select(Example).where(Example.external_id.in_(batch))):
            found[example.external_id or ""] = example
    return found


def examples_by_content_hash(session: Session, hashes: Collection[str]) -> dict[str, tuple[int, str | None]]:
    """``{content_hash: (id, external_id)}`` of stored examples with any of ``hashes``."""
    found: dict[str, tuple[int, str | None]] = {}
    for batch in _batches(hashes):
        rows = session.execute(
            select(Example.content_hash, Example.id, Example.external_id).where(Example.content_hash.in_(batch))
        )
        found.update({digest: (id_, ext) for digest, id_, ext in rows})
    return found


def example_ids_in_dataset_versions(session: Session, example_ids: Collection[int]) -> set[int]:
    """Which of ``example_ids`` some dataset version holds (their content is frozen)."""
    found: set[int] = set()
    for batch in _batches(example_ids):
        found.update(
            session.scalars(
                select(dataset_version_examples.c.example_id)
                .where(dataset_version_examples.c.example_id.in_(batch))
                .distinct()
            )
        )
    return found


def max_rating_id(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(Rating.id), 0))) or 0)


def references_of(session: Session, answer_ids: Collection[int]) -> dict[tuple[int, str], tuple[int, str | None]]:
    """``{(answer_id, reference_hash): (id, source)}`` of the stored references of ``answer_ids``."""
    found: dict[tuple[int, str], tuple[int, str | None]] = {}
    for batch in _batches(answer_ids):
        rows = session.execute(
            select(
                AnswerReference.answer_id, AnswerReference.reference_hash, AnswerReference.id, AnswerReference.source
            ).where(AnswerReference.answer_id.in_(batch))
        )
        found.update({(answer_id, digest): (id_, source) for answer_id, digest, id_, source in rows})
    return found
