"""Decoding and checking one ``ingest answers`` line into its row, without a database: used by
:class:`audit.ingest.answers.AnswerIngester` and by the decoding worker of :mod:`audit.ingest.pipeline`,
which starts faster for importing only this (no SQLAlchemy, no ORM models).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable

import msgspec

from audit.ingest import bulk
from audit.ingest.lines import Problem, check_fields, contains_nul, decode_object, known_names
from audit.ingest.records import (
    MAX_ANSWER_CHARS,
    MAX_EXTERNAL_ID_CHARS,
    MAX_QUESTION_CHARS,
    MAX_SOURCES,
    AnswerRecord,
    violates_limits,
)

_UTC = dt.UTC
_sha256 = hashlib.sha256
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)


class AnswerBuilder:
    """Decode and check one answer line into its row in storage form, given the name maps. Runs in the
    ingesting process, or (large files) in the worker process of :mod:`audit.ingest.pipeline`, so it
    needs no database: an unknown model version is handed to ``register`` (which returns its id)."""

    def __init__(
        self,
        *,
        departments: dict[str, int],
        documents: set[str],
        models: dict[str, int],
        dialect: str,
        stored_ingested_at: object,
        register: Callable[[str], int],
    ) -> None:
        self.departments = departments
        self.documents = documents
        self.models = models
        self.decoder = msgspec.json.Decoder(AnswerRecord)
        self.encoder = msgspec.json.Encoder()
        self.encode = self.encoder.encode
        self.stored_timestamp = bulk.timestamp_formatter(dialect)
        self.stored_ingested_at = stored_ingested_at
        self._register_model = register

    def build(self, raw: bytes) -> bulk.StoredAnswer | None:
        """The row, in storage form, for a valid line; None if anything is wrong (then :meth:`explain`
        says what). A plain tuple in AnswerRow's order: a NamedTuple costs a Python-level call per row."""
        try:
            record = self.decoder.decode(raw)
        except _DECODE_ERRORS:
            return None
        # AnswerRecord.LIMITS, inlined: this runs a million times per file. The department and document
        # names need no length check here because only known names pass the look-ups below.
        external_id = record.external_id
        if (
            not 0 < len(external_id) <= MAX_EXTERNAL_ID_CHARS
            or external_id.strip() != external_id
            or not 0 < len(record.question) <= MAX_QUESTION_CHARS
            or not 0 < len(record.answer) <= MAX_ANSWER_CHARS
            or len(record.sources) > MAX_SOURCES
            or (b"\\u0000" in raw and contains_nul(record))
        ):
            return None
        departments = self.departments
        asker_id = departments.get(record.asker_department)
        if asker_id is None:
            return None
        top_department_id = None
        top_score = -math.inf
        cites_other = False
        documents = self.documents
        for source in record.sources:
            department_id = departments.get(source.department)
            if department_id is None or source.document_id not in documents:
                return None
            if source.score > top_score:
                top_score, top_department_id = source.score, department_id
            if department_id != asker_id:
                cites_other = True
        model_id = self.models.get(record.model_version)
        if model_id is None:
            if violates_limits(AnswerRecord, "model_version", record.model_version):
                return None
            model_id = self._register_model(record.model_version)
        # answer_content_hash, inlined (a function call per line is measurable at a million lines)
        created_at = record.created_at
        if created_at.tzinfo is not _UTC:
            record.created_at = created_at = created_at.astimezone(_UTC)
        encode = self.encode
        return (
            external_id,
            record.question,
            record.answer,
            asker_id,
            model_id,
            encode(record.sources).decode(),
            top_department_id,
            cites_other,
            record.confidence,
            record.latency_ms,
            self.stored_timestamp(created_at),
            _sha256(encode(record)).hexdigest(),
            self.stored_ingested_at,
        )

    def explain(self, raw: bytes | None) -> list[Problem]:
        """Every problem on a line that :meth:`build` refused."""
        obj, problems = decode_object(raw)
        if obj is None:
            return problems
        values, problems = check_fields(AnswerRecord, obj)
        if "asker_department" in values and values["asker_department"] not in self.departments:
            problems.append(("asker_department", self._unknown_department(values["asker_department"])))
        for index, source in enumerate(values.get("sources", [])):
            if source.document_id not in self.documents:
                problems.append(
                    (
                        f"sources[{index}].document_id",
                        f"no document with external_id {source.document_id!r} (ingest the documents first)",
                    )
                )
            if source.department not in self.departments:
                problems.append((f"sources[{index}].department", self._unknown_department(source.department)))
        return problems or [("json", "refused by the fast check but no problem found; please report this line")]

    def _unknown_department(self, name: str) -> str:
        return f"unknown department {name!r} ({known_names(self.departments, 'departments')})"
