"""``ingest gold``: a company's own gold questions, keyed by the normalised question; stored values,
line errors, all-or-nothing, idempotency and updates, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.ingest.run import IngestOptions
from audit.ingest.service import IngestRejected, IngestSummary, ingest_file
from audit.knowledge.hashing import question_hash
from audit.sampling.models import GoldItem
from tests import factories as f


def write_jsonl(path: Path, records: list[dict[str, Any] | str]) -> Path:
    """One line per record; a str is written as the raw line."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def ingest(session: Session, path: Path, **options: Any) -> IngestSummary:
    return ingest_file(session, actor=None, kind="gold", path=path, options=IngestOptions(**options))


def rejected(session: Session, path: Path, **options: Any) -> list[str]:
    with pytest.raises(IngestRejected) as caught:
        ingest(session, path, **options)
    return [e.format(path.name) for e in caught.value.summary.errors]


def gold_items(session: Session) -> list[GoldItem]:
    return list(session.scalars(select(GoldItem).order_by(GoldItem.id)))


def gold(question: str = "How many days of annual leave do I get?", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "question": question,
        "reference_answer": "Twenty-five days a year, per the leave policy.",
        "key_values": ["25 days"],
        "gold_document": "POL-1@v2",
        "department": "HR",
    }
    record.update(changes)
    return record


@pytest.fixture
def kb(session: Session) -> None:
    """HR and Finance; POL-1@v1 superseded by POL-1@v2 (HR), FIN-1@v1 (Finance)."""
    hr = f.department(session, "HR")
    finance = f.department(session, "Finance")
    old = f.document(session, dept=hr, family="POL-1")
    new = f.document(session, dept=hr, family="POL-1", version=2)
    old.superseded_by_id = new.id
    f.document(session, dept=finance, family="FIN-1")
    session.flush()


def test_gold_items_are_stored_with_their_question_hash_and_gold_document(session, kb, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "gold.jsonl",
        [
            gold(),
            gold(
                "Who approves travel?", key_values=["the CFO", "€500"], gold_document="FIN-1@v1", department="Finance"
            ),
        ],
    )
    summary = ingest(session, path)
    assert (summary.counts.read, summary.counts.inserted, summary.counts.rejected) == (2, 2, 0)
    leave, travel = gold_items(session)
    assert leave.question == "How many days of annual leave do I get?"
    assert leave.question_hash == question_hash(leave.question)
    assert leave.reference_answer == "Twenty-five days a year, per the leave policy."
    assert leave.key_values == ["25 days"] and leave.reference_document_ids == ["POL-1@v2"]
    assert leave.department_id == f.department(session, "HR").id and leave.answer_id is None
    assert leave.expected_accuracy is None
    assert travel.key_values == ["the CFO", "€500"] and travel.reference_document_ids == ["FIN-1@v1"]


def test_a_repeated_file_is_a_no_op_and_a_changed_line_needs_update(session, kb, tmp_path) -> None:
    path = write_jsonl(tmp_path / "gold.jsonl", [gold()])
    ingest(session, path)
    again = ingest(session, path)
    assert (again.counts.inserted, again.counts.updated, again.counts.unchanged) == (0, 0, 1)
    # the same question however cased and spaced is the same gold item
    changed = write_jsonl(
        tmp_path / "changed.jsonl", [gold("how many  days of ANNUAL leave do I get?", key_values=["twenty-five days"])]
    )
    (error,) = rejected(session, changed)
    assert error.startswith("changed.jsonl:1: question: gold item ")
    assert error.endswith(
        "has this question (ignoring case and spacing) with other content (use --update to replace it)"
    )
    assert [g.key_values for g in gold_items(session)] == [["25 days"]]
    updated = ingest(session, changed, update=True)
    assert (updated.counts.inserted, updated.counts.updated) == (0, 1)
    (item,) = gold_items(session)
    assert item.question == "how many  days of ANNUAL leave do I get?" and item.key_values == ["twenty-five days"]


def test_update_keeps_the_answer_and_expected_scores_of_a_gold_item_made_elsewhere(session, kb, tmp_path) -> None:
    hr = f.department(session, "HR")
    ans = f.answer(session, dept=hr, model=f.model_version(session), question="How many days of annual leave do I get?")
    session.add(
        GoldItem(
            answer_id=ans.id,
            question=ans.question,
            question_hash=question_hash(ans.question),
            reference_answer="Old reference.",
            department_id=hr.id,
            reference_document_ids=["POL-1@v1"],
            expected_accuracy=5,
        )
    )
    session.flush()
    ingest(session, write_jsonl(tmp_path / "gold.jsonl", [gold()]), update=True)
    (item,) = gold_items(session)
    assert item.answer_id == ans.id and item.expected_accuracy == 5
    assert item.reference_answer == "Twenty-five days a year, per the leave policy."
    assert item.reference_document_ids == ["POL-1@v2"]


def test_every_problem_is_reported_with_its_line_and_nothing_is_stored(session, kb, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            gold("Fine question?"),
            gold("No values?", key_values=[]),
            gold("Blank value?", key_values=["25 days", "  "]),
            gold("Old document?", gold_document="POL-1@v1"),
            gold("Unknown document?", gold_document="NOPE@v1", department="Sales"),
            {k: v for k, v in gold("Missing answer?").items() if k != "reference_answer"},
            gold("Extra field?", external_id="g-1"),
            "not json",
            gold("Fine question?", reference_answer="Another answer."),
        ],
    )
    errors = rejected(session, path)
    assert errors == [
        "bad.jsonl:2: key_values: expected a list of 1 to 50 values, each text of 1 to 500 characters, got []",
        "bad.jsonl:3: key_values[1]: expected text of 1 to 500 characters, not blank",
        "bad.jsonl:4: gold_document: document 'POL-1@v1' is superseded: name the current version a right answer cites",
        "bad.jsonl:5: gold_document: no document with external_id 'NOPE@v1' (ingest the documents first)",
        "bad.jsonl:5: department: unknown department 'Sales' (known: Finance, HR)",
        "bad.jsonl:6: reference_answer: required field is missing",
        "bad.jsonl:7: external_id: unknown field "
        "(expected: department, gold_document, key_values, question, reference_answer)",
        "bad.jsonl:8: json: malformed JSON: Expecting value at column 1",
        "bad.jsonl:9: question: the same question (ignoring case and spacing) is on line 1 with other content",
    ]
    assert gold_items(session) == []


def test_skip_invalid_stores_the_valid_lines(session, kb, tmp_path) -> None:
    path = write_jsonl(tmp_path / "gold.jsonl", [gold(), gold("Bad?", department="Sales")])
    summary = ingest(session, path, skip_invalid=True)
    assert (summary.counts.inserted, summary.counts.rejected) == (1, 1)
    assert [g.question for g in gold_items(session)] == [gold()["question"]]


def test_the_same_line_twice_in_one_file_is_stored_once(session, kb, tmp_path) -> None:
    summary = ingest(session, write_jsonl(tmp_path / "gold.jsonl", [gold(), gold()]), chunk_lines=1)
    assert (summary.counts.inserted, summary.counts.unchanged) == (1, 1)
    assert len(gold_items(session)) == 1
