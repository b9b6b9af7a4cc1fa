"""Property-based fuzzing of every ingest format (answers, ratings, documents, examples).

Each case is a small JSONL file: a few valid lines around one line that hypothesis broke in one way —
malformed JSON, a wrong type, an out-of-range number, an oversized field, unstorable text (NUL, a lone
surrogate), an unknown reference, an unknown or missing field — or filled with odd but storable Unicode
(RTL marks, joiners, combining marks, emoji, control characters). A broken file must be refused whole
with ``FILE:LINE: field: problem`` naming the broken line and field, and leave every table exactly as it
was; an odd-but-valid file must be stored with its text unchanged.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.ingest import records
from audit.ingest.run import IngestOptions, Kind
from audit.ingest.service import IngestRejected, ingest_file
from audit.knowledge.models import Document, Example
from audit.ratings.models import Rating
from tests import factories as f
from tests.reliability.conftest import assert_unchanged, report

FULL_EXAMPLES = int(os.environ.get("AUDITLOOP_FUZZ_EXAMPLES", "200"))  # per format and backend, in the slow run
QUICK_EXAMPLES = 25  # per format and backend, in the fast suite
BUDGETS = [pytest.param(QUICK_EXAMPLES, id="quick"), pytest.param(FULL_EXAMPLES, id="full", marks=pytest.mark.slow)]
FILE_NAME = "in.jsonl"
ERROR_LINE = re.compile(r"^in\.jsonl:(\d+): ([A-Za-z_]+(?:\[\d+\])?(?:\.[A-Za-z_]+)?): (.+)$")
CASES: Counter[str] = Counter()

# text nobody would call normal, all of it storable: bidi controls, joiners, combining marks, emoji,
# a byte-order mark, line/paragraph separators, C0 controls other than NUL, the last code point
ODD_BUT_VALID = [
    "\u202e",
    "\u200f",
    "\u200d",
    "e\u0301",
    "\U0001f642",
    "\ufeff",
    "\u2028",
    "\u2029",
    "\t",
    "\x01",
    "\x7f",
    '"\\',
    "\u6f22\u5b57",
    "\U0010ffff",
    "\u0645\u0631\u062d\u0628\u0627",
]
UNSTORABLE = ["\x00", "\ud800", "\udfff", "\udbff"]


# ----------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class Format:
    kind: Kind
    record_type: type[records.InputRecord]
    base: Callable[[int], dict[str, Any]]  # a valid record, distinct per index
    free_text: tuple[str, ...]  # fields any non-empty text is valid for
    stored_text: Callable[[Session, dict[str, Any], str], Any]  # the stored value of a text field
    unknown_references: tuple[tuple[str, str], ...]  # (field path, how to set it)
    out_of_range: tuple[tuple[str, tuple[Any, ...]], ...]


def answer_record(i: int) -> dict[str, Any]:
    return {
        "external_id": f"a-{i}",
        "question": f"Q{i}: how many days of leave?",
        "answer": f"A{i}: twenty-five.",
        "asker_department": "HR",
        "model_version": "prod-7",
        "created_at": "2026-03-01T10:30:00+02:00",
        "sources": [{"document_id": "POL-1@v1", "department": "HR", "score": 0.5}],
        "confidence": -0.5,
        "latency_ms": 1200,
    }


def rating_record(i: int) -> dict[str, Any]:
    return {
        "answer_external_id": f"ans-{i}",
        "auditor": "alice",
        "created_at": "2025-10-01T09:00:00+02:00",
        "accuracy": 4,
        "completeness": 3,
        "relevance": 5,
        "coherence": 2,
        "sources_correct": "yes",
        "bias_flag": False,
        "comment": f"comment {i}",
    }


def document_record(i: int) -> dict[str, Any]:
    return {
        "external_id": f"DOC-{i}@v1",
        "family": f"DOC-{i}",
        "department": "Finance",
        "title": f"Title {i}",
        "body": f"Body {i}.",
        "version": 1,
        "effective_date": "2026-01-01",
    }


def example_record(i: int) -> dict[str, Any]:
    return {
        "external_id": f"ex-{i}",
        "question": f"Example question {i}?",
        "answer": f"Example answer {i}.",
        "department": "HR",
        "source_document_ids": ["POL-1@v1"],
        "origin": "curated",
        "status": "active",
    }


def _stored(model: Any, key: str, column: Any, value_of: Callable[[Any], Any]) -> Callable[..., Any]:
    def read(session: Session, record: dict[str, Any], field: str) -> Any:
        row = session.scalars(select(model).where(column == record[key])).one()
        return value_of(row)[field]

    return read


FORMATS: dict[str, Format] = {
    "answers": Format(
        "answers",
        records.AnswerRecord,
        answer_record,
        ("question", "answer"),
        _stored(Answer, "external_id", Answer.external_id, lambda r: {"question": r.question, "answer": r.answer_text}),
        (
            ("asker_department", "asker_department"),
            ("sources[0].document_id", "doc"),
            ("sources[0].department", "dept"),
        ),
        (("latency_ms", (-1, -1000, records.INT4_MAX + 1, 10**12)),),
    ),
    "ratings": Format(
        "ratings",
        records.RatingRecord,
        rating_record,
        ("comment",),
        lambda s, rec, field: s.scalars(
            select(Rating.comment)
            .join(Answer, Answer.id == Rating.answer_id)
            .where(Answer.external_id == rec["answer_external_id"], Rating.is_current)
        ).one(),
        (("answer_external_id", "answer"), ("auditor", "auditor"), ("favoured_department", "dept")),
        tuple((d, (0, 6, -1, 100, 2**40)) for d in ("accuracy", "completeness", "relevance", "coherence")),
    ),
    "documents": Format(
        "documents",
        records.DocumentRecord,
        document_record,
        ("title", "body"),
        _stored(Document, "external_id", Document.external_id, lambda r: {"title": r.title, "body": r.body}),
        (("department", "department"), ("superseded_by", "doc")),
        (("version", (0, -1, records.INT4_MAX + 1, 10**15)),),
    ),
    "examples": Format(
        "examples",
        records.ExampleRecord,
        example_record,
        ("question", "answer"),
        _stored(Example, "question", Example.question, lambda r: {"question": r.question, "answer": r.answer}),
        (("department", "department"), ("source_document_ids[0]", "doc")),
        (),
    ),
}


# ----------------------------------------------------------------------------- the broken line


@dataclass(frozen=True)
class Case:
    family: str
    lines: list[bytes]
    bad_line: int  # 1-based
    field: str | None  # the field the error must name ("json" for the line itself); None: a valid file
    record: dict[str, Any]
    text_field: str | None = None


def _encode(record: dict[str, Any], ascii_only: bool) -> bytes:
    return json.dumps(record, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _field_types(fmt: Format) -> dict[str, Any]:
    import msgspec

    return {fl.name: fl for fl in msgspec.structs.fields(fmt.record_type)}


def _wrong_values(annotation_text: str, nullable: bool) -> st.SearchStrategy[Any]:
    """JSON values of a type the field does not take."""
    scalars: list[st.SearchStrategy[Any]] = [
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ]
    if annotation_text.startswith("list"):
        scalars = [
            st.text(max_size=5),
            st.integers(),
            st.booleans(),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        ]
    elif "str" in annotation_text or "date" in annotation_text or "Literal" in annotation_text:
        scalars += [st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans()]
    elif "bool" in annotation_text:
        scalars += [st.integers(), st.text(max_size=5), st.floats(allow_nan=False, allow_infinity=False)]
    elif "int" in annotation_text:
        scalars += [
            st.text(max_size=5),
            st.booleans(),
            st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: x != int(x)),
        ]
    elif "float" in annotation_text:
        scalars += [st.text(max_size=5), st.booleans()]
    if not nullable:
        scalars.append(st.none())
    return st.one_of(scalars)


@st.composite
def cases(draw: st.DrawFn, fmt: Format) -> Case:
    fields = _field_types(fmt)
    before = draw(st.integers(0, 2))
    after = draw(st.integers(0, 1))
    bad_index = 1  # the record the mutation works on; the valid ones around it are 2, 3, 4
    record = fmt.base(bad_index)
    family = draw(
        st.sampled_from(
            [
                "malformed_json",
                "wrong_type",
                "out_of_range" if fmt.out_of_range else "wrong_type",
                "too_long",
                "empty_text",
                "surrounding_space",
                "unstorable_text",
                "unknown_reference",
                "unknown_field",
                "missing_field",
                "valid_odd_unicode",
            ]
        )
    )
    ascii_only = draw(st.booleans())
    field: str | None
    text_field: str | None = None
    raw: bytes | None = None
    if family == "malformed_json":
        field = "json"
        choice = draw(st.sampled_from(["truncated", "not_object", "bad_utf8", "garbage", "constant"]))
        encoded = _encode(record, ascii_only)
        if choice == "truncated":
            raw = encoded[: draw(st.integers(1, len(encoded) - 1))]
        elif choice == "not_object":
            raw = json.dumps(
                draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=5), st.none()))
            ).encode()
        elif choice == "bad_utf8":
            cut = draw(st.integers(1, len(encoded) - 1))
            raw = (
                encoded[:cut] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + encoded[cut:]
            )
        elif choice == "garbage":
            raw = draw(
                st.binary(min_size=1, max_size=30).filter(
                    lambda b: not b.strip().startswith(b"{") and b"\n" not in b and b.strip() != b""
                )
            )
        else:
            raw = encoded[:-1] + b', "x": NaN}'
    elif family == "wrong_type":
        name = draw(st.sampled_from(sorted(fields)))
        annotation = str(fields[name].type)
        nullable = "None" in annotation or (fields[name].default is None)
        record[name] = draw(_wrong_values(annotation, nullable))
        field = name
    elif family == "out_of_range":
        name, values = draw(st.sampled_from(fmt.out_of_range))
        record[name] = draw(st.sampled_from(values))
        field = name
    elif family == "too_long":
        name = draw(st.sampled_from(sorted(fmt.record_type.LIMITS)))
        low, high = fmt.record_type.LIMITS[name]
        if name in ("sources", "source_document_ids"):
            record[name] = (
                ["POL-1@v1"] * (high + 1) if name == "source_document_ids" else [record["sources"][0]] * (high + 1)
            )
        else:
            record[name] = "x" * (high + draw(st.integers(1, 50)))
        field = name
    elif family == "empty_text":
        name = draw(
            st.sampled_from(
                sorted(
                    n
                    for n, (low, _) in fmt.record_type.LIMITS.items()
                    if low >= 1 and n in record and isinstance(record[n], str)
                )
            )
        )
        record[name] = ""
        field = name
    elif family == "surrounding_space":
        name = draw(st.sampled_from(sorted(n for n in fmt.record_type.TRIMMED if isinstance(record.get(n), str))))
        record[name] = (
            draw(st.sampled_from([" ", "\t", "  ", "\u3000"])) + record[name]
            if draw(st.booleans())
            else record[name] + " "
        )
        field = name
    elif family == "unstorable_text":
        name = draw(st.sampled_from(fmt.free_text))
        bad = draw(st.sampled_from(UNSTORABLE))
        at = draw(st.integers(0, len(record[name])))
        record[name] = record[name][:at] + bad + record[name][at:]
        field = name
        if bad != "\x00":
            ascii_only = True  # a lone surrogate can only be written as a JSON \u escape
    elif family == "unknown_reference":
        path, target = draw(st.sampled_from(fmt.unknown_references))
        unknown = "zz-" + draw(st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=8))
        if path.startswith("sources[0]."):
            record["sources"][0][path.split(".")[1]] = unknown
        elif path.startswith("source_document_ids"):
            record["source_document_ids"] = [unknown]
        elif path == "favoured_department":
            record.update(bias_flag=True, favoured_department=unknown)
        else:
            record[path] = unknown
        field = path
    elif family == "unknown_field":
        name = draw(
            st.text(st.characters(codec="ascii", categories=("Ll",)), min_size=1, max_size=12).filter(
                lambda n: n not in fields
            )
        )
        record[name] = draw(st.one_of(st.integers(), st.text(max_size=4), st.none()))
        field = name
    elif family == "missing_field":
        name = draw(st.sampled_from(sorted(n for n, fl in fields.items() if fl.required)))
        del record[name]
        field = name
    else:  # valid_odd_unicode
        text_field = draw(st.sampled_from(fmt.free_text))
        odd = "".join(draw(st.lists(st.sampled_from(ODD_BUT_VALID), min_size=1, max_size=6)))
        record[text_field] = record[text_field] + " " + odd
        field = None
    if raw is None:
        raw = _encode(record, ascii_only)
    lines = (
        [_encode(fmt.base(2 + i), True) for i in range(before)]
        + [raw]
        + [_encode(fmt.base(2 + before + i), True) for i in range(after)]
    )
    return Case(family, lines, before + 1, field, record, text_field)


# ----------------------------------------------------------------------------- the world the files refer to


@pytest.fixture
def world(session: Session) -> Session:
    """Departments HR and Finance, document POL-1@v1, answers ans-1..ans-5 and auditor alice."""
    hr = f.department(session, "HR")
    f.department(session, "Finance")
    f.document(session, dept=hr, family="POL-1")
    model = f.model_version(session, "prod-7")
    for i in range(1, 6):
        f.answer(session, dept=hr, model=model, external_id=f"ans-{i}")
    f.user(session, username="alice")
    session.flush()
    return session


@pytest.fixture(scope="module", autouse=True)
def report_cases() -> Iterator[None]:
    yield
    if CASES:
        by_kind: Counter[str] = Counter()
        by_family: Counter[str] = Counter()
        for key, n in CASES.items():
            kind, family, _backend = key.split("/")
            by_kind[kind] += n
            by_family[family] += n
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(by_kind.items()))
        families = ", ".join(f"{family} {n}" for family, n in sorted(by_family.items()))
        report("fuzz", f"ingest: {sum(CASES.values())} generated files ({kinds}); by case: {families}")


def check_case(session: Session, tmp_path: Path, fmt: Format, case: Case) -> None:
    path = tmp_path / FILE_NAME
    path.write_bytes(b"".join(line + b"\n" for line in case.lines))
    CASES[f"{fmt.kind}/{case.family}/{session.get_bind().dialect.name}"] += 1
    if case.field is None:
        savepoint = session.begin_nested()
        try:
            summary = ingest_file(session, actor=None, kind=fmt.kind, path=path, options=IngestOptions())
            assert summary.counts.rejected == 0 and summary.counts.inserted == len(case.lines)
            assert case.text_field is not None
            assert fmt.stored_text(session, case.record, case.text_field) == case.record[case.text_field]
        finally:
            savepoint.rollback()
        return
    with assert_unchanged(session), pytest.raises(IngestRejected) as caught:
        ingest_file(session, actor=None, kind=fmt.kind, path=path, options=IngestOptions())
    summary = caught.value.summary
    formatted = [e.format(FILE_NAME) for e in summary.errors]
    assert summary.counts.rejected == 1, formatted
    parsed = [ERROR_LINE.match(line) for line in formatted]
    assert all(parsed), formatted
    assert {int(m.group(1)) for m in parsed if m} == {case.bad_line}, formatted
    assert case.field in {m.group(2) for m in parsed if m}, (case.family, formatted)
    assert not any("please report this line" in line for line in formatted), formatted
    assert str(caught.value).startswith(f"{path}: 1 of {len(case.lines)} lines are invalid; nothing was stored")


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("kind", list(FORMATS))
def test_a_broken_line_refuses_the_file_and_names_line_and_field(
    world: Session, tmp_path: Path, kind: str, budget: int
) -> None:
    fmt = FORMATS[kind]

    @settings(
        max_examples=budget,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(case=cases(fmt))
    def run(case: Case) -> None:
        check_case(world, tmp_path, fmt, case)

    run()
