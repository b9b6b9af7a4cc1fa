"""``ingest references``: several human references per answer, keyed by answer and text; line errors,
all-or-nothing, idempotency and --update, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.answers.models import AnswerReference
from audit.ingest.run import IngestOptions
from audit.ingest.service import IngestRejected, IngestSummary, ingest_file
from tests import factories as f


def write_jsonl(path: Path, records: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def ingest(session: Session, path: Path, **options: Any) -> IngestSummary:
    return ingest_file(session, actor=None, kind="references", path=path, options=IngestOptions(**options))


def stored(session: Session) -> list[tuple[str, str, str | None]]:
    session.expire_all()
    rows = session.scalars(select(AnswerReference).order_by(AnswerReference.id))
    return [(r.reference, r.reference_hash, r.source) for r in rows]


@pytest.fixture
def answers(session: Session) -> None:
    dept, model = f.department(session, "HR"), f.model_version(session)
    for external_id in ("a-1", "a-2"):
        f.answer(session, dept=dept, model=model, external_id=external_id)


def test_several_references_per_answer_are_stored_once(session, answers, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "refs.jsonl",
        [
            {"answer_external_id": "a-1", "reference": "Twenty-five days.", "source": "annotator-1"},
            {"answer_external_id": "a-1", "reference": "25 days a year.", "source": "annotator-2"},
            {"answer_external_id": "a-2", "reference": "Ask HR."},
        ],
    )
    assert ingest(session, path).counts.inserted == 3
    assert stored(session) == [
        ("Twenty-five days.", hashlib.sha256(b"Twenty-five days.").hexdigest(), "annotator-1"),
        ("25 days a year.", hashlib.sha256(b"25 days a year.").hexdigest(), "annotator-2"),
        ("Ask HR.", hashlib.sha256(b"Ask HR.").hexdigest(), None),
    ]
    again = ingest(session, path)
    assert (again.counts.inserted, again.counts.unchanged) == (0, 3)


def test_another_source_for_a_stored_reference_needs_update(session, answers, tmp_path) -> None:
    ingest(session, write_jsonl(tmp_path / "a.jsonl", [{"answer_external_id": "a-1", "reference": "Ask HR."}]))
    changed = write_jsonl(
        tmp_path / "b.jsonl", [{"answer_external_id": "a-1", "reference": "Ask HR.", "source": "expert-3"}]
    )
    with pytest.raises(IngestRejected) as caught:
        ingest(session, changed)
    assert [e.format("b.jsonl") for e in caught.value.summary.errors] == [
        "b.jsonl:1: source: this reference is already stored with another source (use --update to replace it)"
    ]
    assert ingest(session, changed, update=True).counts.updated == 1
    assert [source for _, _, source in stored(session)] == ["expert-3"]


def test_problems_are_reported_by_line_and_nothing_is_stored(session, answers, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"answer_external_id": "a-1", "reference": "Fine."},
            {"answer_external_id": "a-9", "reference": "No such answer."},
            {"answer_external_id": "a-1", "reference": ""},
            {"answer_external_id": "a-1", "reference": "Fine.", "source": "other"},
            {"answer_external_id": "a-2", "text": "Wrong field."},
        ],
    )
    with pytest.raises(IngestRejected) as caught:
        ingest(session, path)
    assert [e.format("bad.jsonl") for e in caught.value.summary.errors] == [
        "bad.jsonl:2: answer_external_id: no answer with external_id 'a-9' (ingest the answers first)",
        'bad.jsonl:3: reference: expected text of 1 to 100,000 characters, got ""',
        "bad.jsonl:4: source: the same reference for this answer is on line 1 with another source",
        "bad.jsonl:5: text: unknown field (expected: answer_external_id, reference, source)",
        "bad.jsonl:5: reference: required field is missing",
    ]
    assert stored(session) == []
