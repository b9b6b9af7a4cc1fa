"""Dataset versions: immutable, content-addressed snapshots of the active examples.

The content hash is the sha256 of a canonical serialisation (examples sorted by content hash,
each as compact JSON with sorted keys, one per line), so the same content always gives the same
hash and never a second version.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from audit.auditlog import service as auditlog
from audit.errors import NotFoundError
from audit.knowledge.models import DatasetVersion, Example, dataset_version_examples
from audit.org.models import Department, User


@dataclass(frozen=True)
class ExampleRecord:
    """An example as a dataset version holds it (what training and export read)."""

    example_id: int
    question: str
    answer: str
    department: str
    source_document_ids: list[str]
    origin: str
    content_hash: str
    weight: int = 1

    def canonical(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "department": self.department,
            "sources": sorted(self.source_document_ids),
            "weight": self.weight,
        }


def content_hash(records: Sequence[ExampleRecord]) -> str:
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda r: (r.content_hash, r.weight)):
        digest.update(
            json.dumps(record.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        )
        digest.update(b"\n")
    return digest.hexdigest()


def active_examples(session: Session, weights: dict[int, int] | None = None) -> list[ExampleRecord]:
    """Every active example, with optional up-sampling weights by example id."""
    rows = session.execute(
        select(
            Example.id,
            Example.question,
            Example.answer,
            Department.name,
            Example.source_document_ids,
            Example.origin,
            Example.content_hash,
        )
        .join(Department, Department.id == Example.department_id)
        .where(Example.status == "active")
        .order_by(Example.id)
    ).all()
    weights = weights or {}
    return [ExampleRecord(r[0], r[1], r[2], r[3], list(r[4] or []), r[5], r[6], weights.get(r[0], 1)) for r in rows]


def examples_for_version(session: Session, version_id: int) -> list[ExampleRecord]:
    """The examples a version holds, in a stable order."""
    if session.get(DatasetVersion, version_id) is None:
        raise NotFoundError(f"dataset version id {version_id} does not exist")
    rows = session.execute(
        select(
            Example.id,
            Example.question,
            Example.answer,
            Department.name,
            Example.source_document_ids,
            Example.origin,
            Example.content_hash,
            dataset_version_examples.c.weight,
        )
        .join(dataset_version_examples, dataset_version_examples.c.example_id == Example.id)
        .join(Department, Department.id == Example.department_id)
        .where(dataset_version_examples.c.dataset_version_id == version_id)
        .order_by(Example.id)
    ).all()
    return [ExampleRecord(r[0], r[1], r[2], r[3], list(r[4] or []), r[5], r[6], r[7]) for r in rows]


def version_by_number(session: Session, number: int) -> DatasetVersion:
    version = session.scalars(select(DatasetVersion).where(DatasetVersion.number == number)).one_or_none()
    if version is None:
        raise NotFoundError(f"dataset version {number} does not exist (see `auditloop dataset list`)")
    return version


def current_version(session: Session) -> DatasetVersion | None:
    return session.scalars(select(DatasetVersion).where(DatasetVersion.is_current.is_(True))).one_or_none()


def create_version(
    session: Session,
    *,
    actor: User | None,
    change_log: list[dict[str, Any]],
    weights: dict[int, int] | None = None,
    make_current: bool = True,
) -> tuple[DatasetVersion, bool]:
    """Snapshot the active examples. Returns (version, created); identical content returns the
    existing version (created=False) instead of writing a duplicate."""
    records = active_examples(session, weights)
    digest = content_hash(records)
    existing = session.scalars(select(DatasetVersion).where(DatasetVersion.content_hash == digest)).one_or_none()
    if existing is not None:
        if make_current and not existing.is_current:
            use_version(session, actor=actor, number=existing.number)
        return existing, False
    parent = current_version(session)
    number = (session.scalar(select(func.max(DatasetVersion.number))) or 0) + 1
    version = DatasetVersion(
        number=number,
        content_hash=digest,
        parent_id=parent.id if parent else None,
        change_log=change_log,
        example_count=len(records),
        counts_by_department=dict(sorted(Counter(r.department for r in records).items())),
        counts_by_origin=dict(sorted(Counter(r.origin for r in records).items())),
        is_current=False,
        created_by_id=actor.id if actor else None,
    )
    session.add(version)
    session.flush()
    if records:
        session.execute(
            insert(dataset_version_examples),
            [{"dataset_version_id": version.id, "example_id": r.example_id, "weight": r.weight} for r in records],
        )
    if make_current:
        _set_current(session, version)
    auditlog.record(
        session,
        actor=actor,
        action="dataset.version_created",
        entity_type="dataset_version",
        entity_id=number,
        details={"hash": digest, "examples": len(records), "changes": len(change_log)},
    )
    return version, True


def _set_current(session: Session, version: DatasetVersion) -> None:
    session.execute(update(DatasetVersion).where(DatasetVersion.is_current.is_(True)).values(is_current=False))
    session.flush()
    version.is_current = True
    session.flush()


def use_version(session: Session, *, actor: User | None, number: int) -> DatasetVersion:
    """Make an existing version the current one (rolling back = using an earlier version)."""
    version = version_by_number(session, number)
    _set_current(session, version)
    auditlog.record(session, actor=actor, action="dataset.use", entity_type="dataset_version", entity_id=number)
    return version


def sft_record(
    record: ExampleRecord, system_prompt: str = "You are the company's internal knowledge assistant."
) -> dict[str, Any]:
    """A chat-format supervised fine-tuning record."""
    return {
        "messages": [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": record.question},
            {"role": "assistant", "content": record.answer},
        ],
        "department": record.department,
        "sources": record.source_document_ids,
        "weight": record.weight,
    }
