"""The JSONL record formats ``auditloop ingest`` accepts, as typed msgspec structs.

Types, enumerations and numeric ranges are declared on the structs so the decoder enforces them in
C. Text lengths are not: a ``max_length`` constraint makes msgspec's decoding several times slower,
and ``len(str)`` in Python is free, so each struct lists its ``LIMITS`` (characters, or items of a
list) and its ``TRIMMED`` ids, and :func:`within_limits` checks them. ``EXPECTED`` says in words what
each field must be, for the error messages of lines that fail.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import msgspec

MAX_EXTERNAL_ID_CHARS = 128  # the width of the external_id columns
MAX_DEPARTMENT_CHARS = 100
MAX_MODEL_NAME_CHARS = 128
MAX_USERNAME_CHARS = 64
MAX_QUESTION_CHARS = 20_000
MAX_ANSWER_CHARS = 100_000
MAX_TITLE_CHARS = 500
MAX_BODY_CHARS = 1_000_000
MAX_COMMENT_CHARS = 20_000
MAX_SOURCES = 200
INT4_MAX = 2_147_483_647  # PostgreSQL INTEGER

AwareDateTime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
Score = Annotated[int, msgspec.Meta(ge=1, le=5)]

_ID_TEXT = f"an id of 1 to {MAX_EXTERNAL_ID_CHARS} characters without surrounding spaces"
_DEPARTMENT_TEXT = f"a department name of 1 to {MAX_DEPARTMENT_CHARS} characters"
_TIMESTAMP_TEXT = "an ISO 8601 timestamp with a time zone, e.g. 2026-11-27T09:30:00Z"
_SCORE_TEXT = "an integer from 1 to 5, or null (not rated)"


def _text(limit: int) -> str:
    return f"text of 1 to {limit:,} characters"


class InputRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Base of every record: unknown fields are errors (a misspelt optional field would be lost)."""

    EXPECTED: ClassVar[dict[str, str]] = {}  # what each field must be, in words
    NESTED: ClassVar[dict[str, type[InputRecord]]] = {}  # list fields whose items are records
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {}  # (min, max) characters of text / items of a list
    TRIMMED: ClassVar[tuple[str, ...]] = ()  # ids that must not start or end with whitespace


def violates_limits(struct_type: type[InputRecord], name: str, value: Any) -> bool:
    """True if a converted field value breaks its length limit or carries surrounding whitespace."""
    if value is None:
        return False
    bounds = struct_type.LIMITS.get(name)
    if bounds is not None and not bounds[0] <= len(value) <= bounds[1]:
        return True
    return name in struct_type.TRIMMED and value.strip() != value


def limits_checker(struct_type: type[InputRecord]) -> Callable[[Any], bool]:
    """A fast ``within_limits(record) -> bool`` for the decode path (one attrgetter call per record)."""
    names = tuple(struct_type.LIMITS)
    bounds = tuple(struct_type.LIMITS.values())
    lengths = operator.attrgetter(*names, *names[:1])  # the repeat makes it always return a tuple
    trimmed = operator.attrgetter(*struct_type.TRIMMED, *struct_type.TRIMMED[:1])

    def within_limits(record: Any) -> bool:
        for value, (low, high) in zip(lengths(record), bounds, strict=False):
            if value is not None and not low <= len(value) <= high:
                return False
        return all(value is None or value.strip() == value for value in trimmed(record))

    return within_limits


class SourceRecord(InputRecord):
    """One retrieved document an answer cites."""

    document_id: str
    department: str
    score: float

    EXPECTED: ClassVar[dict[str, str]] = {
        "document_id": "the external_id of an existing document",
        "department": _DEPARTMENT_TEXT,
        "score": "a number",
    }
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "document_id": (1, MAX_EXTERNAL_ID_CHARS),
        "department": (1, MAX_DEPARTMENT_CHARS),
    }
    TRIMMED: ClassVar[tuple[str, ...]] = ("document_id",)


class AnswerRecord(InputRecord):
    """What the production assistant answered (one line of ``ingest answers``).

    The field order is the canonical order the content hash encodes.
    """

    external_id: str
    question: str
    answer: str
    asker_department: str
    model_version: str
    created_at: AwareDateTime
    sources: list[SourceRecord]
    confidence: float | None = None
    latency_ms: Annotated[int, msgspec.Meta(ge=0, le=INT4_MAX)] | None = None

    EXPECTED: ClassVar[dict[str, str]] = {
        "external_id": _ID_TEXT,
        "question": _text(MAX_QUESTION_CHARS),
        "answer": _text(MAX_ANSWER_CHARS),
        "asker_department": _DEPARTMENT_TEXT,
        "model_version": f"a model version name of 1 to {MAX_MODEL_NAME_CHARS} characters",
        "created_at": _TIMESTAMP_TEXT,
        "sources": f"a list of at most {MAX_SOURCES} {{document_id, department, score}} objects",
        "confidence": "a number or null",
        "latency_ms": f"an integer from 0 to {INT4_MAX:,} or null",
    }
    NESTED: ClassVar[dict[str, type[InputRecord]]] = {"sources": SourceRecord}
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "external_id": (1, MAX_EXTERNAL_ID_CHARS),
        "question": (1, MAX_QUESTION_CHARS),
        "answer": (1, MAX_ANSWER_CHARS),
        "asker_department": (1, MAX_DEPARTMENT_CHARS),
        "model_version": (1, MAX_MODEL_NAME_CHARS),
        "sources": (0, MAX_SOURCES),
    }
    TRIMMED: ClassVar[tuple[str, ...]] = ("external_id", "model_version")


class RatingRecord(InputRecord):
    """One historical rating migrated from a spreadsheet (one line of ``ingest ratings``)."""

    answer_external_id: str
    auditor: str
    created_at: AwareDateTime
    accuracy: Score | None = None
    completeness: Score | None = None
    relevance: Score | None = None
    coherence: Score | None = None
    sources_correct: Literal["yes", "no", "unsure"] | None = None
    bias_flag: bool = False
    favoured_department: str | None = None
    disfavoured_department: str | None = None
    comment: str | None = None

    EXPECTED: ClassVar[dict[str, str]] = {
        "answer_external_id": "the external_id of an ingested answer",
        "auditor": f"a username of 1 to {MAX_USERNAME_CHARS} characters",
        "created_at": _TIMESTAMP_TEXT,
        "accuracy": _SCORE_TEXT,
        "completeness": _SCORE_TEXT,
        "relevance": _SCORE_TEXT,
        "coherence": _SCORE_TEXT,
        "sources_correct": '"yes", "no", "unsure" or null',
        "bias_flag": "true or false",
        "favoured_department": f"{_DEPARTMENT_TEXT}, or null",
        "disfavoured_department": f"{_DEPARTMENT_TEXT}, or null",
        "comment": f"text of at most {MAX_COMMENT_CHARS:,} characters, or null",
    }
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "answer_external_id": (1, MAX_EXTERNAL_ID_CHARS),
        "auditor": (1, MAX_USERNAME_CHARS),
        "favoured_department": (1, MAX_DEPARTMENT_CHARS),
        "disfavoured_department": (1, MAX_DEPARTMENT_CHARS),
        "comment": (0, MAX_COMMENT_CHARS),
    }
    TRIMMED: ClassVar[tuple[str, ...]] = ("answer_external_id", "auditor")


class DocumentRecord(InputRecord):
    """One version of a knowledge-base document (one line of ``ingest documents``)."""

    external_id: str
    family: str
    department: str
    title: str
    body: str
    version: Annotated[int, msgspec.Meta(ge=1, le=INT4_MAX)]
    effective_date: dt.date
    superseded_by: str | None = None

    EXPECTED: ClassVar[dict[str, str]] = {
        "external_id": _ID_TEXT,
        "family": f"a document family name of 1 to {MAX_EXTERNAL_ID_CHARS} characters without surrounding spaces",
        "department": _DEPARTMENT_TEXT,
        "title": _text(MAX_TITLE_CHARS),
        "body": _text(MAX_BODY_CHARS),
        "version": "an integer >= 1",
        "effective_date": "a date YYYY-MM-DD",
        "superseded_by": "the external_id of a document (in this file or already stored), or null",
    }
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "external_id": (1, MAX_EXTERNAL_ID_CHARS),
        "family": (1, MAX_EXTERNAL_ID_CHARS),
        "department": (1, MAX_DEPARTMENT_CHARS),
        "title": (1, MAX_TITLE_CHARS),
        "body": (1, MAX_BODY_CHARS),
        "superseded_by": (1, MAX_EXTERNAL_ID_CHARS),
    }
    TRIMMED: ClassVar[tuple[str, ...]] = ("external_id", "family", "superseded_by")


class ExampleRecord(InputRecord):
    """One curated training example (one line of ``ingest examples``)."""

    external_id: str
    question: str
    answer: str
    department: str
    source_document_ids: list[str] = []
    origin: Literal["curated", "synthetic"] = "curated"
    status: Literal["active", "quarantined", "retired"] = "active"

    EXPECTED: ClassVar[dict[str, str]] = {
        "external_id": _ID_TEXT,
        "question": _text(MAX_QUESTION_CHARS),
        "answer": _text(MAX_ANSWER_CHARS),
        "department": _DEPARTMENT_TEXT,
        "source_document_ids": f"a list of at most {MAX_SOURCES} document external_ids",
        "origin": '"curated" or "synthetic"',
        "status": '"active", "quarantined" or "retired"',
    }
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "external_id": (1, MAX_EXTERNAL_ID_CHARS),
        "question": (1, MAX_QUESTION_CHARS),
        "answer": (1, MAX_ANSWER_CHARS),
        "department": (1, MAX_DEPARTMENT_CHARS),
        "source_document_ids": (0, MAX_SOURCES),
    }
    TRIMMED: ClassVar[tuple[str, ...]] = ("external_id",)


MAX_KEY_VALUES = 50
MAX_KEY_VALUE_CHARS = 500


class GoldRecord(InputRecord):
    """One gold question with its reference answer (one line of ``ingest gold``).

    Keyed by the normalised question (``question_hash``): the field order is the canonical order
    the content comparison encodes.
    """

    question: str
    reference_answer: str
    key_values: list[str]
    gold_document: str
    department: str

    EXPECTED: ClassVar[dict[str, str]] = {
        "question": _text(MAX_QUESTION_CHARS),
        "reference_answer": _text(MAX_ANSWER_CHARS),
        "key_values": f"a list of 1 to {MAX_KEY_VALUES} values, each text of 1 to {MAX_KEY_VALUE_CHARS} characters",
        "gold_document": "the external_id of an existing, current document",
        "department": _DEPARTMENT_TEXT,
    }
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "question": (1, MAX_QUESTION_CHARS),
        "reference_answer": (1, MAX_ANSWER_CHARS),
        "key_values": (1, MAX_KEY_VALUES),
        "gold_document": (1, MAX_EXTERNAL_ID_CHARS),
        "department": (1, MAX_DEPARTMENT_CHARS),
    }
    TRIMMED: ClassVar[tuple[str, ...]] = ("gold_document",)


def key_value_problems(values: list[str]) -> list[tuple[str, str]]:
    """A problem per key value that is blank or too long (the list's own length is in LIMITS)."""
    return [
        (f"key_values[{index}]", f"expected text of 1 to {MAX_KEY_VALUE_CHARS} characters, not blank")
        for index, value in enumerate(values)
        if not value.strip() or len(value) > MAX_KEY_VALUE_CHARS
    ]


MAX_SOURCE_CHARS = 128


class ReferenceRecord(InputRecord):
    """One human reference answer for an ingested answer (one line of ``ingest references``)."""

    answer_external_id: str
    reference: str
    source: str | None = None

    EXPECTED: ClassVar[dict[str, str]] = {
        "answer_external_id": "the external_id of an ingested answer",
        "reference": _text(MAX_ANSWER_CHARS),
        "source": f"text of 1 to {MAX_SOURCE_CHARS} characters (who wrote it), or null",
    }
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {
        "answer_external_id": (1, MAX_EXTERNAL_ID_CHARS),
        "reference": (1, MAX_ANSWER_CHARS),
        "source": (1, MAX_SOURCE_CHARS),
    }
    TRIMMED: ClassVar[tuple[str, ...]] = ("answer_external_id",)
