"""``ingest references``: human reference answers for ingested answers, several per answer (one per
annotator, say). A reference is keyed by its answer and the sha256 of its text as given, so a
repeated file stores nothing new; the same reference with another ``source`` needs ``--update``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgspec
from sqlalchemy import insert, update

from audit.answers.models import AnswerReference
from audit.ingest import repository as repo
from audit.ingest.lines import Problem, RawLine, check_fields, contains_nul, decode_object
from audit.ingest.records import ReferenceRecord, limits_checker
from audit.ingest.run import IngestRun

_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)


def reference_hash(reference: str) -> str:
    """sha256 hex of the reference text exactly as given (UTF-8)."""
    return hashlib.sha256(reference.encode("utf-8")).hexdigest()


@dataclass
class _Valid:
    line: int
    raw: bytes
    answer_id: int
    record: ReferenceRecord
    digest: str


class ReferenceIngester:
    """Check and store references chunk by chunk."""

    def __init__(self, run: IngestRun) -> None:
        self.run = run
        self.decoder = msgspec.json.Decoder(ReferenceRecord)
        self.within_limits = limits_checker(ReferenceRecord)
        self.lines: dict[tuple[int, str], tuple[int, str | None]] = {}  # key: (first line, source)

    def _decode(self, raw: bytes | None) -> ReferenceRecord | None:
        if raw is None:
            return None
        try:
            record = self.decoder.decode(raw)
        except _DECODE_ERRORS:
            return None
        if not self.within_limits(record) or (b"\\u0000" in raw and contains_nul(record)):
            return None
        return record

    @staticmethod
    def _answer_problem(external_id: str | None, answers: dict[str, int]) -> list[Problem]:
        if external_id is None or external_id in answers:
            return []
        return [("answer_external_id", f"no answer with external_id {external_id!r} (ingest the answers first)")]

    def ingest_chunk(self, lines: list[RawLine]) -> None:
        run = self.run
        decoded = [(number, raw, self._decode(raw)) for number, raw in lines]
        slow = {}
        for number, raw, record in decoded:
            if record is None:
                obj, problems = decode_object(raw)
                slow[number] = check_fields(ReferenceRecord, obj) if obj is not None else ({}, problems)
        wanted = {r.answer_external_id for _, _, r in decoded if r is not None}
        wanted |= {v["answer_external_id"] for v, _ in slow.values() if "answer_external_id" in v}
        answers = repo.answer_ids_by_external_id(run.session, wanted)
        valid: list[_Valid] = []
        for number, raw, record in decoded:
            if record is None or raw is None:
                values, problems = slow[number]
                problems = problems + self._answer_problem(values.get("answer_external_id"), answers)
                run.reject(number, problems or [("json", "refused by the fast check but no problem found")], raw)
                continue
            problems = self._answer_problem(record.answer_external_id, answers)
            if problems:
                run.reject(number, problems, raw)
                continue
            valid.append(
                _Valid(number, raw, answers[record.answer_external_id], record, reference_hash(record.reference))
            )
        self._store(valid)

    def _store(self, valid: list[_Valid]) -> None:
        run = self.run
        session = run.session
        stored = repo.references_of(session, {v.answer_id for v in valid})
        inserts = []
        for item in valid:
            key = (item.answer_id, item.digest)
            source = item.record.source
            earlier = self.lines.get(key)
            if earlier is not None:
                if earlier[1] == source:
                    run.counts.unchanged += 1
                else:
                    message = f"the same reference for this answer is on line {earlier[0]} with another source"
                    run.reject(item.line, [("source", message)], item.raw)
                continue
            self.lines[key] = (item.line, source)
            existing = stored.get(key)
            if existing is None:
                inserts.append(
                    {"answer_id": item.answer_id, "reference": item.record.reference, "reference_hash": item.digest,
                     "source": source}
                )  # fmt: skip
            elif existing[1] == source:
                run.counts.unchanged += 1
            elif not run.options.update:
                message = "this reference is already stored with another source (use --update to replace it)"
                run.reject(item.line, [("source", message)], item.raw)
            else:
                session.execute(update(AnswerReference).where(AnswerReference.id == existing[0]).values(source=source))
                run.counts.updated += 1
        if inserts:
            session.execute(insert(AnswerReference), inserts)
            run.counts.inserted += len(inserts)

    def finish(self) -> None:
        """References are stored chunk by chunk; nothing is left to do at the end."""
