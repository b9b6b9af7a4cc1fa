"""Queries on model versions' stored judgements (``evaluation_items``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from audit.modelops.models import EvaluationItem
from audit.org import repository as org_repo
from audit.org.models import Department

# The columns a judged item carries, besides who answered and which evaluation it belongs to.
JUDGEMENT_COLUMNS = (
    "fact_correct",
    "wrong_value",
    "citation_correct",
    "cites_outdated",
    "retrieval_at_1",
    "retrieval_at_k",
    "rouge_l",
    "f1",
)


def store_evaluation_items(
    session: Session,
    *,
    system: str,
    signature: str,
    rows: Iterable[Mapping[str, Any]],
    model_version_id: int | None = None,
) -> int:
    """Insert one row per judged gold item of ``system`` under ``signature``; items already stored
    for that (system, signature) are kept as they are (an evaluation is deterministic). Each row
    holds ``gold_item_id``, ``department`` (name), ``prediction``, ``cited_document_ids``,
    ``retrieved_document_ids`` and the :data:`JUDGEMENT_COLUMNS`. Returns how many were inserted."""
    department_ids = org_repo.department_ids_by_name(session)
    stored = set(
        session.scalars(
            select(EvaluationItem.gold_item_id).where(
                EvaluationItem.system == system, EvaluationItem.signature == signature
            )
        )
    )
    values = [
        {
            "system": system,
            "model_version_id": model_version_id,
            "signature": signature,
            "gold_item_id": int(row["gold_item_id"]),
            "department_id": department_ids[str(row["department"])],
            "prediction": str(row["prediction"]),
            "cited_document_ids": list(row.get("cited_document_ids", [])),
            "retrieved_document_ids": list(row.get("retrieved_document_ids", [])),
            **{column: row.get(column) for column in JUDGEMENT_COLUMNS},
        }
        for row in rows
        if int(row["gold_item_id"]) not in stored
    ]
    if values:
        session.execute(insert(EvaluationItem), values)
    return len(values)


def evaluation_items(session: Session, *, system: str, signature: str) -> Sequence[tuple[EvaluationItem, str]]:
    """The stored judgements of ``system`` under ``signature`` with each item's department name."""
    return (
        session.execute(
            select(EvaluationItem, Department.name)
            .join(Department, Department.id == EvaluationItem.department_id)
            .where(EvaluationItem.system == system, EvaluationItem.signature == signature)
            .order_by(EvaluationItem.gold_item_id)
        )
        .tuples()
        .all()
    )
