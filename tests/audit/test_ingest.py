"""Ingest of documents, examples, answers and ratings: stored values, line errors, idempotency, updates.

Runs on SQLite and PostgreSQL (the ``session`` fixture); the two backends take different bulk paths
(executemany with ON CONFLICT vs COPY after a look-up), so every answers test exercises both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.auditlog.models import AuditLogEntry
from audit.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from audit.ingest import bulk, lines
from audit.ingest.run import IngestOptions, Kind
from audit.ingest.service import IngestRejected, IngestSummary, ingest_file, rejected_path
from audit.knowledge import datasets
from audit.knowledge.hashing import example_content_hash, normalise_text
from audit.knowledge.models import Document, Example
from audit.modelops.models import ModelVersion
from audit.org.models import User
from audit.ratings.models import Rating
from tests import factories as f

UTC = dt.UTC


# -- helpers ----------------------------------------------------------------------------------------


def write_jsonl(path: Path, records: list[dict[str, Any] | str]) -> Path:
    """One line per record; a str is written as the raw line."""
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    path.write_text(text, encoding="utf-8")
    return path


def ingest(session: Session, kind: Kind, path: Path, **options: Any) -> IngestSummary:
    return ingest_file(session, actor=None, kind=kind, path=path, options=IngestOptions(**options))


def rejected(session: Session, kind: Kind, path: Path, **options: Any) -> list[str]:
    """The formatted errors of a file that must be rejected whole."""
    with pytest.raises(IngestRejected) as caught:
        ingest(session, kind, path, **options)
    return [e.format(path.name) for e in caught.value.summary.errors]


def count(session: Session, column: Any) -> int:
    return int(session.scalar(select(func.count(column))) or 0)


@pytest.fixture
def kb(session: Session) -> dict[str, Any]:
    """Two departments with one document each: POL-1@v1 (HR) and FIN-1@v1 (Finance)."""
    hr = f.department(session, "HR")
    finance = f.department(session, "Finance")
    f.document(session, dept=hr, family="POL-1")
    f.document(session, dept=finance, family="FIN-1")
    return {"hr": hr, "finance": finance}


def answer(external_id: str = "a-1", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "external_id": external_id,
        "question": "How many days of leave do I get?",
        "answer": "Twenty-five days a year.",
        "asker_department": "HR",
        "model_version": "prod-7",
        "created_at": "2026-03-01T10:30:00.250000+02:00",
        "sources": [
            {"document_id": "POL-1@v1", "department": "HR", "score": 0.4},
            {"document_id": "FIN-1@v1", "department": "Finance", "score": 0.9},
        ],
        "confidence": -0.5,
        "latency_ms": 1200,
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def stored_answer(session: Session, external_id: str) -> Answer:
    session.expire_all()
    return session.scalars(select(Answer).where(Answer.external_id == external_id)).one()


# -- answers ------------------------------------------------------------------------------------------


def test_answers_are_stored_with_derived_columns_and_aware_timestamps(session, kb, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "answers.jsonl",
        [
            answer("a-1"),
            answer(
                "a-2",
                asker_department="Finance",
                created_at="2026-03-02T00:00:00Z",
                sources=[{"document_id": "FIN-1@v1", "department": "Finance", "score": 0.7}],
                confidence=...,
                latency_ms=...,
            ),
            answer("a-3", created_at="2026-03-01T23:59:59-05:00", sources=[]),
        ],
    )
    summary = ingest(session, "answers", path)
    assert (summary.counts.read, summary.counts.inserted, summary.counts.rejected) == (3, 3, 0)
    assert summary.counts.registered_models == 1
    model = session.scalars(select(ModelVersion).where(ModelVersion.name == "prod-7")).one()

    a1 = stored_answer(session, "a-1")
    assert a1.created_at == dt.datetime(2026, 3, 1, 8, 30, 0, 250000, tzinfo=UTC)
    assert a1.created_at.utcoffset() == dt.timedelta(0)
    assert a1.answer_text == "Twenty-five days a year." and a1.model_version_id == model.id
    assert a1.asker_department_id == kb["hr"].id
    assert a1.top_source_department_id == kb["finance"].id  # score 0.9 beats 0.4
    assert a1.cites_other_department is True
    assert a1.sources == answer()["sources"]  # as given, with department names
    assert (a1.confidence, a1.latency_ms) == (-0.5, 1200)
    assert a1.ingested_at.tzinfo is not None
    # the canonical serialisation, written out by hand: struct field order, compact, created_at in UTC
    canonical = (
        '{"external_id":"a-1","question":"How many days of leave do I get?","answer":"Twenty-five days a year.",'
        '"asker_department":"HR","model_version":"prod-7","created_at":"2026-03-01T08:30:00.250000Z",'
        '"sources":[{"document_id":"POL-1@v1","department":"HR","score":0.4},'
        '{"document_id":"FIN-1@v1","department":"Finance","score":0.9}],"confidence":-0.5,"latency_ms":1200}'
    )
    assert a1.content_hash == hashlib.sha256(canonical.encode()).hexdigest()

    a2 = stored_answer(session, "a-2")
    assert (a2.top_source_department_id, a2.cites_other_department) == (kb["finance"].id, False)
    assert (a2.confidence, a2.latency_ms) == (None, None)
    a3 = stored_answer(session, "a-3")
    assert a3.created_at == dt.datetime(2026, 3, 2, 4, 59, 59, tzinfo=UTC)
    assert (a3.top_source_department_id, a3.cites_other_department, a3.sources) == (None, False, [])

    # stored timestamps compare and sort like the ORM's own (SQLite keeps them as text)
    since = dt.datetime(2026, 3, 1, 9, tzinfo=UTC)
    later = session.scalars(select(Answer.external_id).where(Answer.created_at >= since).order_by(Answer.created_at))
    assert list(later) == ["a-2", "a-3"]
    actions = set(session.scalars(select(AuditLogEntry.action)))
    assert {"ingest.answers", "model_version.register"} <= actions


def test_odd_but_valid_text_round_trips(session, kb, tmp_path) -> None:
    """Backslashes, tabs, newlines, quotes and non-ASCII survive COPY's text format and SQLite alike."""
    text = 'Tab\there, "quoted", back\\slash, new\nline, \\N, é, 你好, 🙂, \u0001'
    path = write_jsonl(
        tmp_path / "odd.jsonl",
        [
            answer(
                "odd-1",
                question=text,
                answer=text,
                sources=[{"document_id": "POL-1@v1", "department": "HR", "score": 1}],
            )
        ],
    )
    ingest(session, "answers", path)
    stored = stored_answer(session, "odd-1")
    assert stored.question == text and stored.answer_text == text
    assert stored.sources == [{"document_id": "POL-1@v1", "department": "HR", "score": 1.0}]


def test_bulk_insert_answers_round_trips_through_the_orm(session, kb) -> None:
    model = f.model_version(session, "bench-model")
    created = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    now = dt.datetime(2026, 5, 2, 8, 15, 30, 123456, tzinfo=UTC)
    row = bulk.AnswerRow(
        "bench-1",
        "Q?",
        "A.",
        kb["hr"].id,
        model.id,
        '[{"document_id": "POL-1@v1", "department": "HR", "score": 0.8}]',
        kb["hr"].id,
        False,
        -1.25,
        300,
        created,
        "0" * 64,
        now,
    )
    assert bulk.insert_answers(session.connection(), [row]) == 1
    stored = stored_answer(session, "bench-1")
    assert stored.created_at == dt.datetime(2026, 5, 1, 7, tzinfo=UTC)
    assert stored.ingested_at == now
    assert stored.sources == [{"document_id": "POL-1@v1", "department": "HR", "score": 0.8}]
    assert bulk.existing_answers(session.connection(), ["bench-1", "nope"]) == {"bench-1": (stored.id, "0" * 64)}
    with pytest.raises(ValueError, match="naive datetime"):
        bulk.insert_answers(
            session.connection(), [row._replace(external_id="bench-2", created_at=dt.datetime(2026, 5, 1))]
        )


def test_sqlite_timestamp_matches_what_the_orm_writes() -> None:
    assert bulk.sqlite_timestamp(dt.datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01 00:00:00.000000"
    offset = dt.timezone(dt.timedelta(hours=-3, minutes=-30))
    assert bulk.sqlite_timestamp(dt.datetime(2026, 12, 31, 22, 0, 0, 5, tzinfo=offset)) == "2027-01-01 01:30:00.000005"


def test_a_file_with_invalid_lines_is_rejected_whole_with_every_problem(session, kb, tmp_path) -> None:
    records: list[dict[str, Any] | str] = [
        answer("ok-1", model_version="never-registered"),
        answer("bad-2", created_at="2026-03-01T10:30:00"),
        answer("bad-3", asker_department="Fiance", latency_ms=-1),
        answer("bad-4", sources=[{"document_id": "NOPE", "department": "Mars", "score": 1}]),
        answer("bad-5", sources=[{"document_id": "POL-1@v1", "department": "HR", "score": "high"}]),
        '{"external_id": "bad-6",',
        answer("bad-7", answer="x" * 100_001),
        answer("bad-8", question="nul\u0000here"),
        '"just a string"',
        answer("bad-10", confidnce=1.0, question=...),
        "   ",
        answer("bad-12", question="\ud800"),
        answer(" bad-13"),
        answer("bad-14", confidence="high", sources={"document_id": "POL-1@v1"}),
        answer("bad-15", latency_ms=True),
        '{"external_id": "bad-16", "confidence": 1e999}',
    ]
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with path.open("ab") as fh:
        fh.write(b'{"external_id": "x-\xff"}\n')
    expected_fields = (
        "answer, asker_department, confidence, created_at, external_id, latency_ms, model_version, question, sources"
    )
    assert rejected(session, "answers", path) == [
        'bad.jsonl:2: created_at: "2026-03-01T10:30:00" has no time zone: add Z or an offset such as +01:00',
        "bad.jsonl:3: latency_ms: expected an integer from 0 to 2,147,483,647 or null, got -1",
        "bad.jsonl:3: asker_department: unknown department 'Fiance' (known: Finance, HR)",
        "bad.jsonl:4: sources[0].document_id: no document with external_id 'NOPE' (ingest the documents first)",
        "bad.jsonl:4: sources[0].department: unknown department 'Mars' (known: Finance, HR)",
        'bad.jsonl:5: sources[0].score: expected a number, got "high"',
        "bad.jsonl:6: json: malformed JSON: Expecting property name enclosed in double quotes at column 25",
        "bad.jsonl:7: answer: expected text of 1 to 100,000 characters, got a string of 100,001 characters",
        "bad.jsonl:8: question: contains a NUL character (\\u0000), which cannot be stored",
        "bad.jsonl:9: json: expected a JSON object, got a string",
        f"bad.jsonl:10: confidnce: unknown field (expected: {expected_fields})",
        "bad.jsonl:10: question: required field is missing",
        "bad.jsonl:12: question: contains a lone UTF-16 surrogate (\\ud800), which cannot be stored",
        'bad.jsonl:13: external_id: expected an id of 1 to 128 characters without surrounding spaces, got " bad-13"',
        "bad.jsonl:14: sources: expected a list of at most 200 {document_id, department, score} objects, "
        'got {"document_id": "POL-1@v1"}',
        'bad.jsonl:14: confidence: expected a number or null, got "high"',
        "bad.jsonl:15: latency_ms: expected an integer from 0 to 2,147,483,647 or null, got true",
        "bad.jsonl:16: json: malformed JSON: number 1e999 is out of range",
        "bad.jsonl:17: json: not valid UTF-8 (byte 20 of the line)",
    ]
    assert count(session, Answer.id) == 0
    assert session.scalars(select(ModelVersion).where(ModelVersion.name == "never-registered")).first() is None


def test_skip_invalid_stores_the_valid_lines_and_writes_the_rejected_ones(session, kb, tmp_path) -> None:
    bad = answer("a-2", asker_department="Nowhere")
    path = write_jsonl(tmp_path / "mixed.jsonl", [answer("a-1"), bad, "", answer("a-4")])
    summary = ingest(session, "answers", path, skip_invalid=True)
    assert (summary.counts.read, summary.counts.inserted, summary.counts.rejected) == (3, 2, 1)
    assert summary.rejected_file == str(tmp_path / "mixed.jsonl.rejected.jsonl")
    entries = [json.loads(line) for line in rejected_path(path).read_text(encoding="utf-8").splitlines()]
    assert entries == [
        {
            "line": 2,
            "errors": ["asker_department: unknown department 'Nowhere' (known: Finance, HR)"],
            "raw": json.dumps(bad),
        }
    ]
    assert sorted(session.scalars(select(Answer.external_id))) == ["a-1", "a-4"]


def test_reingesting_adds_nothing_and_changed_content_needs_update(session, kb, tmp_path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [answer("a-1"), answer("a-2")])
    assert ingest(session, "answers", path).counts.inserted == 2
    again = ingest(session, "answers", path)
    assert (again.counts.inserted, again.counts.unchanged, again.counts.updated) == (0, 2, 0)
    # the same instant written with another offset is the same answer
    same_instant = write_jsonl(tmp_path / "b.jsonl", [answer("a-1", created_at="2026-03-01T08:30:00.25Z")])
    assert ingest(session, "answers", same_instant).counts.unchanged == 1

    changed = write_jsonl(tmp_path / "c.jsonl", [answer("a-1", answer="Thirty days."), answer("a-3")])
    assert rejected(session, "answers", changed) == [
        "c.jsonl:1: external_id: answer 'a-1' is already stored with other content (use --update to replace it)"
    ]
    assert count(session, Answer.id) == 2
    before = stored_answer(session, "a-1").content_hash
    summary = ingest(session, "answers", changed, update=True)
    assert (summary.counts.inserted, summary.counts.updated, summary.counts.unchanged) == (1, 1, 0)
    updated = stored_answer(session, "a-1")
    assert updated.answer_text == "Thirty days." and updated.content_hash != before


@pytest.mark.parametrize("chunk_lines", [10, 1])
def test_repeated_ids_in_one_file(session, kb, tmp_path, chunk_lines: int) -> None:
    """Within a chunk and across chunks (chunk_lines=1): a repeat is unchanged, a changed repeat an error."""
    same = write_jsonl(tmp_path / "same.jsonl", [answer("a-1"), answer("a-2"), answer("a-1")])
    summary = ingest(session, "answers", same, chunk_lines=chunk_lines)
    assert (summary.counts.inserted, summary.counts.unchanged) == (2, 1)
    other = write_jsonl(tmp_path / "other.jsonl", [answer("b-1"), answer("b-2"), answer("b-1", answer="Other.")])
    where = " (line 1)" if chunk_lines > 1 else ""
    assert rejected(session, "answers", other, chunk_lines=chunk_lines) == [
        f"other.jsonl:3: external_id: 'b-1' appears earlier in this file{where} with other content"
    ]
    assert count(session, Answer.id) == 2


def test_update_mixes_new_unchanged_and_changed_rows_in_one_chunk(session, kb, tmp_path) -> None:
    write_jsonl(tmp_path / "first.jsonl", [answer("a-1"), answer("a-2")])
    ingest(session, "answers", tmp_path / "first.jsonl")
    second = write_jsonl(
        tmp_path / "second.jsonl",
        [answer("a-0"), answer("a-1", latency_ms=99), answer("a-2"), answer("a-1", latency_ms=99), answer("a-3")],
    )
    summary = ingest(session, "answers", second, update=True)
    counts = summary.counts
    assert (counts.inserted, counts.updated, counts.unchanged, counts.rejected) == (2, 1, 2, 0)
    assert stored_answer(session, "a-1").latency_ms == 99
    assert count(session, Answer.id) == 4


def test_a_refusal_by_the_database_rolls_the_file_back(session, kb, tmp_path, monkeypatch) -> None:
    """As when another ingest stores the same ids between our look-up and our insert."""
    first = write_jsonl(tmp_path / "first.jsonl", [answer("a-1")])
    ingest(session, "answers", first)
    monkeypatch.setattr(bulk, "existing_answers", lambda connection, ids: {})
    monkeypatch.setattr(bulk, "insert_new_stored_answers_sqlite", bulk.insert_stored_answers)
    second = write_jsonl(tmp_path / "second.jsonl", [answer("a-0"), answer("a-1")])
    with pytest.raises(ConflictError, match=r"second.jsonl: the database refused the data \(.+\); nothing was stored"):
        ingest(session, "answers", second)
    assert list(session.scalars(select(Answer.external_id))) == ["a-1"]


def test_too_long_lines_and_blank_lines(session, kb, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 2000)
    path = write_jsonl(tmp_path / "long.jsonl", ["", answer("a-1"), answer("a-2", answer="y" * 5000), "\t"])
    assert rejected(session, "answers", path) == ["long.jsonl:3: json: line is longer than 2,000 bytes"]


def test_only_admins_and_the_operator_may_ingest(session, kb, tmp_path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [answer("a-1")])
    auditor = f.user(session, role="auditor")
    with pytest.raises(PermissionDenied):
        ingest_file(session, actor=auditor, kind="answers", path=path)
    admin = f.user(session, role="admin")
    assert ingest_file(session, actor=admin, kind="answers", path=path).counts.inserted == 1
    entry = session.scalars(select(AuditLogEntry).where(AuditLogEntry.action == "ingest.answers")).one()
    assert entry.actor_id == admin.id and entry.details["inserted"] == 1


def test_bad_arguments(session, kb, tmp_path) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        ingest(session, "answers", tmp_path / "missing.jsonl")
    path = write_jsonl(tmp_path / "d.jsonl", [])
    with pytest.raises(ValidationError, match="only to ratings"):
        ingest(session, "documents", path, create_auditors=True)


# -- documents ------------------------------------------------------------------------------------


def document(external_id: str, family: str, version: int, **changes: Any) -> dict[str, Any]:
    record = {
        "external_id": external_id,
        "family": family,
        "department": "HR",
        "title": f"{family} v{version}",
        "body": f"Policy text, version {version}.",
        "version": version,
        "effective_date": f"2026-0{version}-01",
    }
    record.update(changes)
    return record


def test_documents_link_to_a_successor_later_in_the_file(session, kb, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [
            document("LEAVE@v1", "LEAVE", 1, superseded_by="LEAVE@v2"),
            document("LEAVE@v2", "LEAVE", 2),
            document("POL-1@v2", "POL-1", 2),
        ],
    )
    summary = ingest(session, "documents", path)
    assert (summary.counts.inserted, summary.counts.rejected) == (3, 0)
    session.expire_all()
    docs = {d.external_id: d for d in session.scalars(select(Document))}
    assert docs["LEAVE@v1"].superseded_by_id == docs["LEAVE@v2"].id and docs["LEAVE@v1"].is_outdated
    assert docs["LEAVE@v2"].superseded_by_id is None
    assert docs["LEAVE@v1"].effective_date == dt.date(2026, 1, 1) and docs["LEAVE@v1"].department_id == kb["hr"].id
    assert ingest(session, "documents", path).counts.unchanged == 3

    # a stored document may now point at the new version
    relink = write_jsonl(tmp_path / "relink.jsonl", [document("LEAVE@v2", "LEAVE", 2, superseded_by="LEAVE@v3")])
    assert rejected(session, "documents", relink, update=True) == [
        "relink.jsonl:1: superseded_by: no document with external_id 'LEAVE@v3' in this file or stored"
    ]
    write_jsonl(relink, [document("LEAVE@v2", "LEAVE", 2, superseded_by="LEAVE@v3"), document("LEAVE@v3", "LEAVE", 3)])
    assert rejected(session, "documents", relink) == [
        "relink.jsonl:1: external_id: document 'LEAVE@v2' is already stored with other content "
        "(use --update to replace it)"
    ]
    summary = ingest(session, "documents", relink, update=True)
    assert (summary.counts.inserted, summary.counts.updated) == (1, 1)
    session.expire_all()
    v2, v3 = (
        session.scalars(select(Document).where(Document.external_id == e)).one() for e in ("LEAVE@v2", "LEAVE@v3")
    )
    assert v2.superseded_by_id == v3.id


def test_document_problems_cascade_to_lines_that_depend_on_them(session, kb, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [
            document("A@v1", "A", 1, superseded_by="A@v2"),
            document("A@v2", "A", 2, department="Marketing"),
            document("B@v2", "B", 2, superseded_by="B@v1"),
            document("B@v1", "B", 1),
            document("C@v1", "C", 1, superseded_by="C@v1"),
            document("POL-1-copy", "POL-1", 1),
            document("D@v1", "D", 1),
            document("D@v1-again", "D", 1),
        ],
    )
    summary = ingest(session, "documents", path, skip_invalid=True)
    assert [e.format(path.name) for e in summary.errors] == [
        "docs.jsonl:1: superseded_by: document 'A@v2' (line 2) was rejected",
        "docs.jsonl:2: department: unknown department 'Marketing' (known: Finance, HR)",
        "docs.jsonl:3: superseded_by: 'B@v1' is version 1 of the same family: only a later version can supersede",
        "docs.jsonl:5: superseded_by: a document cannot supersede itself",
        "docs.jsonl:6: version: 'POL-1' version 1 is already document 'POL-1@v1'",
        "docs.jsonl:8: version: 'D' version 1 is already document 'D@v1' (line 7)",
    ]
    stored = set(session.scalars(select(Document.external_id)))
    assert stored == {"POL-1@v1", "FIN-1@v1", "B@v1", "D@v1"}


# -- examples ---------------------------------------------------------------------------------------


def test_example_hash_normalises_whitespace_and_case() -> None:
    assert normalise_text("  How many\tDAYS \n of leave? ") == "how many days of leave?"
    expected = hashlib.sha256(b"how many days?\x1ftwenty-five.").hexdigest()
    assert example_content_hash("How  many days?", " Twenty-Five.\n") == expected
    # the separator keeps the boundary: moving a word across it changes the hash
    assert example_content_hash("a b", "c") != example_content_hash("a", "b c")


def example(external_id: str, question: str, answer_text: str = "Twenty-five.", **changes: Any) -> dict[str, Any]:
    record = {"external_id": external_id, "question": question, "answer": answer_text, "department": "HR"}
    record.update(changes)
    return record


def test_examples_are_unique_by_normalised_content(session, kb, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "ex.jsonl",
        [
            example("ex-1", "How many days of leave?", source_document_ids=["POL-1@v1"]),
            example("ex-2", "how many  DAYS of leave?"),
            example(
                "ex-3", "Expense limit?", "100 EUR", department="Finance", origin="synthetic", status="quarantined"
            ),
            example("ex-4", "Which laptop?", source_document_ids=["NOPE"], origin="correction"),
        ],
    )
    assert rejected(session, "examples", path) == [
        "ex.jsonl:2: question: the same question and answer (ignoring case and spacing) is on line 1",
        'ex.jsonl:4: origin: expected "curated" or "synthetic", got "correction"',
        "ex.jsonl:4: source_document_ids[0]: no document with external_id 'NOPE' (ingest the documents first)",
    ]
    write_jsonl(
        path,
        [
            example("ex-1", "How many days of leave?", source_document_ids=["POL-1@v1"]),
            example(
                "ex-3", "Expense limit?", "100 EUR", department="Finance", origin="synthetic", status="quarantined"
            ),
        ],
    )
    assert ingest(session, "examples", path).counts.inserted == 2
    session.expire_all()
    ex1 = session.scalars(select(Example).where(Example.external_id == "ex-1")).one()
    assert ex1.content_hash == example_content_hash("How many days of leave?", "Twenty-five.")
    assert (ex1.origin, ex1.status, ex1.source_document_ids) == ("curated", "active", ["POL-1@v1"])
    ex3 = session.scalars(select(Example).where(Example.external_id == "ex-3")).one()
    assert (ex3.department_id, ex3.origin, ex3.status) == (kb["finance"].id, "synthetic", "quarantined")
    assert ingest(session, "examples", path).counts.unchanged == 2
    clash = write_jsonl(tmp_path / "clash.jsonl", [example("ex-9", "HOW MANY DAYS OF LEAVE?")])
    assert rejected(session, "examples", clash) == [
        "clash.jsonl:1: question: the same question and answer (ignoring case and spacing) is already example 'ex-1'"
    ]


def test_examples_in_a_dataset_version_may_only_change_status(session, kb, tmp_path) -> None:
    path = write_jsonl(tmp_path / "ex.jsonl", [example("ex-1", "How many days of leave?")])
    ingest(session, "examples", path)
    datasets.create_version(session, actor=None, change_log=[])
    write_jsonl(path, [example("ex-1", "How many days of leave?", "Thirty.")])
    assert rejected(session, "examples", path, update=True) == [
        "ex.jsonl:1: external_id: example 'ex-1' is in a dataset version, so its answer cannot change "
        "(retire it and add the new content under a new external_id)"
    ]
    write_jsonl(path, [example("ex-1", "How many days of leave?", status="retired")])
    assert ingest(session, "examples", path, update=True).counts.updated == 1
    session.expire_all()
    assert session.scalars(select(Example.status).where(Example.external_id == "ex-1")).one() == "retired"


# -- ratings ----------------------------------------------------------------------------------------


@pytest.fixture
def rated(session: Session, kb: dict[str, Any]) -> dict[str, Any]:
    """Two answers and one auditor, alice."""
    model = f.model_version(session)
    answers = [f.answer(session, dept=kb["hr"], model=model, external_id=f"ans-{i}") for i in (1, 2)]
    return {**kb, "answers": answers, "alice": f.user(session, username="alice")}


def rating(answer_id: str = "ans-1", auditor: str = "alice", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "answer_external_id": answer_id,
        "auditor": auditor,
        "accuracy": 4,
        "completeness": 3,
        "relevance": 5,
        "coherence": None,
        "sources_correct": "unsure",
        "bias_flag": False,
        "comment": "ok",
        "created_at": "2025-10-01T09:00:00+02:00",
    }
    record.update(changes)
    return record


def ratings_of(session: Session, answer: Answer) -> list[Rating]:
    session.expire_all()
    return list(session.scalars(select(Rating).where(Rating.answer_id == answer.id).order_by(Rating.id)))


def test_imported_ratings_are_stored_once(session, rated, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "r.jsonl",
        [rating(), rating("ans-2", bias_flag=True, disfavoured_department="Finance", accuracy=None, comment=None)],
    )
    assert ingest(session, "ratings", path).counts.inserted == 2
    [first] = ratings_of(session, rated["answers"][0])
    assert (first.accuracy, first.completeness, first.relevance, first.coherence) == (4, 3, 5, None)
    assert (first.sources_correct, first.bias_flag, first.comment) == ("unsure", False, "ok")
    assert (first.origin, first.assignment_id, first.is_current) == ("import", None, True)
    assert first.created_at == dt.datetime(2025, 10, 1, 7, tzinfo=UTC)
    canonical = "ans-1\x1falice\x1f2025-10-01T07:00:00+00:00"
    assert first.idempotency_key == "import:" + hashlib.sha256(canonical.encode()).hexdigest()[:57]
    [second] = ratings_of(session, rated["answers"][1])
    assert (second.bias_flag, second.disfavoured_department_id, second.accuracy) == (True, rated["finance"].id, None)
    assert ingest(session, "ratings", path).counts.unchanged == 2
    assert count(session, Rating.id) == 2


def test_changed_ratings_supersede_only_with_update(session, rated, tmp_path) -> None:
    path = write_jsonl(tmp_path / "r.jsonl", [rating()])
    ingest(session, "ratings", path)
    write_jsonl(path, [rating(accuracy=2)])
    assert rejected(session, "ratings", path) == [
        "r.jsonl:1: created_at: this rating was imported before with other content (use --update to replace it)"
    ]
    assert ingest(session, "ratings", path, update=True).counts.updated == 1
    old, new = ratings_of(session, rated["answers"][0])
    assert (old.is_current, old.idempotency_key, old.accuracy) == (False, None, 4)
    assert (new.is_current, new.supersedes_id, new.accuracy) == (True, old.id, 2)
    assert new.idempotency_key is not None and new.idempotency_key.startswith("import:")
    assert ingest(session, "ratings", path).counts.unchanged == 1


def test_an_existing_current_rating_is_superseded_only_with_update(session, rated, tmp_path) -> None:
    app_rating = f.rating(session, ans=rated["answers"][0], auditor=rated["alice"], accuracy=5)
    path = write_jsonl(tmp_path / "r.jsonl", [rating()])
    assert rejected(session, "ratings", path) == [
        "r.jsonl:1: auditor: 'alice' already has a current rating of answer 'ans-1' (use --update to supersede it)"
    ]
    assert ingest(session, "ratings", path, update=True).counts.updated == 1
    old, new = ratings_of(session, rated["answers"][0])
    assert (old.id, old.is_current, old.origin) == (app_rating.id, False, "app")
    assert (new.supersedes_id, new.origin, new.is_current) == (app_rating.id, "import", True)


def test_rating_problems_are_reported(session, rated, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "r.jsonl",
        [
            rating(accuracy=6, completeness=0),
            rating("ans-9", auditor="mallory"),
            rating(bias_flag=True),
            rating(favoured_department="HR", disfavoured_department="HR", bias_flag=True),
            rating(favoured_department="HR"),
            rating(sources_correct="maybe", bias_flag="no"),
            rating(accuracy=None, completeness=None, relevance=None, sources_correct=None),
            rating("ans-2", created_at="2025-10-01"),
        ],
    )
    assert rejected(session, "ratings", path) == [
        "r.jsonl:1: accuracy: expected an integer from 1 to 5, or null (not rated), got 6",
        "r.jsonl:1: completeness: expected an integer from 1 to 5, or null (not rated), got 0",
        "r.jsonl:2: answer_external_id: no answer with external_id 'ans-9' (ingest the answers first)",
        "r.jsonl:2: auditor: unknown user 'mallory' (use --create-auditors to create inactive auditor accounts)",
        "r.jsonl:3: bias_flag: true needs favoured_department or disfavoured_department",
        "r.jsonl:4: disfavoured_department: 'HR' is also the favoured department",
        "r.jsonl:5: bias_flag: false, but a favoured or disfavoured department is given",
        'r.jsonl:6: sources_correct: expected "yes", "no", "unsure" or null, got "maybe"',
        'r.jsonl:6: bias_flag: expected true or false, got "no"',
        "r.jsonl:7: accuracy: nothing is rated: every score, sources_correct and bias_flag are empty",
        'r.jsonl:8: created_at: expected an ISO 8601 timestamp with a time zone, e.g. 2026-11-27T09:30:00Z, got "2025-10-01"',
    ]
    assert count(session, Rating.id) == 0


def test_create_auditors_makes_inactive_accounts(session, rated, tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "r.jsonl", [rating(auditor="bob"), rating("ans-2", auditor="bob"), rating(auditor="Bad Name")]
    )
    assert rejected(session, "ratings", path, create_auditors=True) == [
        "r.jsonl:3: auditor: 'Bad Name' cannot be a username: 2-64 lower-case letters, digits, '.', '_' or '-'"
    ]
    assert session.scalars(select(User).where(User.username == "bob")).first() is None
    write_jsonl(path, [rating(auditor="bob"), rating("ans-2", auditor="bob")])
    summary = ingest(session, "ratings", path, create_auditors=True)
    assert (summary.counts.inserted, summary.counts.created_auditors) == (2, 1)
    bob = session.scalars(select(User).where(User.username == "bob")).one()
    assert (bob.role, bob.active, bob.password_hash) == ("auditor", False, None)


def test_a_rating_repeated_in_one_file(session, rated, tmp_path) -> None:
    same = write_jsonl(tmp_path / "same.jsonl", [rating(), rating()])
    summary = ingest(session, "ratings", same)
    assert (summary.counts.inserted, summary.counts.unchanged) == (1, 1)
    other = write_jsonl(tmp_path / "other.jsonl", [rating("ans-2"), rating("ans-2", accuracy=1)])
    assert rejected(session, "ratings", other, update=True) == [
        "other.jsonl:2: created_at: the same answer, auditor and created_at appear earlier in this file with other content"
    ]


@pytest.mark.parametrize("chunk_lines", [100, 1])
def test_a_chunk_supersedes_what_an_earlier_line_of_it_stored(session, rated, tmp_path, chunk_lines: int) -> None:
    # stored before: an imported rating of ans-1 (its key moves) and an app rating of ans-2 (superseded)
    ingest(session, "ratings", write_jsonl(tmp_path / "before.jsonl", [rating()]))
    app_rating = f.rating(session, ans=rated["answers"][1], auditor=rated["alice"], accuracy=5)
    lines = [
        rating(accuracy=1),  # replaces the imported rating of ans-1 (same key, other content)
        rating("ans-2", accuracy=2),  # supersedes the app rating
        rating("ans-2", accuracy=3, created_at="2025-10-02T09:00:00Z"),  # supersedes the line above
    ]
    summary = ingest(session, "ratings", write_jsonl(tmp_path / "r.jsonl", lines), update=True, chunk_lines=chunk_lines)
    assert (summary.counts.inserted, summary.counts.updated, summary.counts.rejected) == (0, 3, 0)
    old, new = ratings_of(session, rated["answers"][0])
    assert (old.is_current, old.idempotency_key, new.is_current, new.supersedes_id) == (False, None, True, old.id)
    assert new.idempotency_key is not None and new.accuracy == 1
    app, second, third = ratings_of(session, rated["answers"][1])
    assert app.id == app_rating.id and not app.is_current
    assert (second.is_current, second.supersedes_id, second.accuracy) == (False, app.id, 2)
    assert (third.is_current, third.supersedes_id, third.accuracy) == (True, second.id, 3)
    assert (third.origin, third.rubric_version, third.created_at) == (
        "import",
        "v1",
        dt.datetime(2025, 10, 2, 9, tzinfo=UTC),
    )
    assert ingest(session, "ratings", tmp_path / "r.jsonl", update=True).counts.unchanged == 3


def test_update_replaces_an_example_outside_any_dataset_version(session, kb, tmp_path) -> None:
    path = write_jsonl(tmp_path / "ex.jsonl", [example("ex-1", "How many days of leave?")])
    ingest(session, "examples", path)
    write_jsonl(path, [example("ex-1", "How many days of leave?", "Thirty.", department="Finance")])
    assert ingest(session, "examples", path, update=True).counts.updated == 1
    session.expire_all()
    stored = session.scalars(select(Example).where(Example.external_id == "ex-1")).one()
    assert (stored.answer, stored.department_id) == ("Thirty.", kb["finance"].id)
    assert stored.content_hash == example_content_hash("How many days of leave?", "Thirty.")
