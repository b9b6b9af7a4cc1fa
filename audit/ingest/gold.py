"""``ingest gold``: a company's own gold questions (reference answer, the values a right answer states,
the document it must cite), keyed by the normalised question as ``gold_items`` is.

A gold item made elsewhere (by the demo, or from an answer with expected scores) keeps its answer
and expected scores when ``--update`` replaces its question's reference from a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import insert

from audit.ingest import repository as repo
from audit.ingest.lines import Problem, RawLine, check_fields, contains_nul, decode_object, known_names
from audit.ingest.records import GoldRecord, key_value_problems, limits_checker
from audit.ingest.run import IngestRun
from audit.knowledge.hashing import question_hash
from audit.org import repository as org_repo
from audit.sampling.models import GoldItem

_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)
# what a line sets; a stored gold item with these values is unchanged
_CONTENT = ("question", "reference_answer", "key_values", "reference_document_ids", "department_id")


@dataclass
class _Valid:
    line: int
    raw: bytes
    values: dict[str, Any]  # the gold item's columns


class GoldIngester:
    """Check and store gold items chunk by chunk."""

    def __init__(self, run: IngestRun) -> None:
        self.run = run
        session = run.session
        self.departments = org_repo.department_ids_by_name(session)
        self.documents = repo.document_supersessions(session)
        self.decoder = msgspec.json.Decoder(GoldRecord)
        self.within_limits = limits_checker(GoldRecord)
        self.lines_by_hash: dict[str, tuple[int, dict[str, Any]]] = {}  # question_hash: (first line, content)

    def _decode(self, raw: bytes | None) -> GoldRecord | None:
        if raw is None:
            return None
        try:
            record = self.decoder.decode(raw)
        except _DECODE_ERRORS:
            return None
        if not self.within_limits(record) or (b"\\u0000" in raw and contains_nul(record)):
            return None
        return record

    def _reference_problems(self, values: dict[str, Any]) -> list[Problem]:
        problems: list[Problem] = key_value_problems(values.get("key_values", []))
        document = values.get("gold_document")
        if document is not None and document not in self.documents:
            problems.append(
                ("gold_document", f"no document with external_id {document!r} (ingest the documents first)")
            )
        elif document is not None and self.documents[document] is not None:
            problems.append(
                ("gold_document", f"document {document!r} is superseded: name the current version a right answer cites")
            )
        if "department" in values and values["department"] not in self.departments:
            known = known_names(self.departments, "departments")
            problems.append(("department", f"unknown department {values['department']!r} ({known})"))
        return problems

    def explain(self, raw: bytes | None) -> list[Problem]:
        obj, problems = decode_object(raw)
        if obj is None:
            return problems
        values, problems = check_fields(GoldRecord, obj)
        problems += self._reference_problems(values)
        return problems or [("json", "refused by the fast check but no problem found; please report this line")]

    def ingest_chunk(self, lines: list[RawLine]) -> None:
        run = self.run
        valid: list[_Valid] = []
        for number, raw in lines:
            record = self._decode(raw)
            if record is None or raw is None:
                run.reject(number, self.explain(raw), raw)
                continue
            problems = self._reference_problems(msgspec.structs.asdict(record))
            if problems:
                run.reject(number, problems, raw)
                continue
            values = {
                "question": record.question,
                "question_hash": question_hash(record.question),
                "reference_answer": record.reference_answer,
                "key_values": list(record.key_values),
                "reference_document_ids": [record.gold_document],
                "department_id": self.departments[record.department],
            }
            valid.append(_Valid(number, raw, values))
        self._store(valid)

    def _store(self, valid: list[_Valid]) -> None:
        run = self.run
        session = run.session
        stored_by_hash = repo.gold_items_by_question_hash(session, {v.values["question_hash"] for v in valid})
        inserts: list[dict[str, Any]] = []
        for item in valid:
            qhash = item.values["question_hash"]
            content = {key: item.values[key] for key in _CONTENT}
            earlier = self.lines_by_hash.get(qhash)
            if earlier is not None:
                if earlier[1] == content:
                    run.counts.unchanged += 1
                else:
                    message = (
                        f"the same question (ignoring case and spacing) is on line {earlier[0]} with other content"
                    )
                    run.reject(item.line, [("question", message)], item.raw)
                continue
            self.lines_by_hash[qhash] = (item.line, content)
            stored = stored_by_hash.get(qhash)
            if stored is None:
                inserts.append(item.values)
            elif all(getattr(stored, key) == value for key, value in content.items()):
                run.counts.unchanged += 1
            elif not run.options.update:
                message = (
                    f"gold item {stored.id} has this question (ignoring case and spacing) with other content "
                    "(use --update to replace it)"
                )
                run.reject(item.line, [("question", message)], item.raw)
            else:
                for key, value in content.items():
                    setattr(stored, key, value)
                run.counts.updated += 1
        if inserts:
            session.execute(insert(GoldItem), inserts)
            run.counts.inserted += len(inserts)
        session.flush()

    def finish(self) -> None:
        """Gold items are stored chunk by chunk; nothing is left to do at the end."""
