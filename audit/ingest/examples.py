"""``ingest examples``: curated question/answer pairs for fine-tuning, unique by normalised content.

An example that a dataset version holds is frozen: ``--update`` may change its status or origin,
not its question, answer, department or sources (that would rewrite a published snapshot).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import insert

from audit.ingest import repository as repo
from audit.ingest.lines import Problem, RawLine, check_fields, contains_nul, decode_object, known_names
from audit.ingest.records import ExampleRecord, limits_checker
from audit.ingest.run import IngestRun
from audit.knowledge.hashing import example_content_hash
from audit.knowledge.models import Example
from audit.org import repository as org_repo

_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)
_FROZEN_FIELDS = ("question", "answer", "department_id", "source_document_ids")


@dataclass
class _Valid:
    line: int
    raw: bytes
    values: dict[str, Any]  # the example's columns
    record_hash: str  # sha256 of the whole record: tells a repeated line from a changed one


class ExampleIngester:
    """Check and store examples chunk by chunk."""

    def __init__(self, run: IngestRun) -> None:
        self.run = run
        session = run.session
        self.departments = org_repo.department_ids_by_name(session)
        self.documents = set(repo.document_ids_by_external_id(session))
        self.decoder = msgspec.json.Decoder(ExampleRecord)
        self.encoder = msgspec.json.Encoder()
        self.within_limits = limits_checker(ExampleRecord)
        self.lines_by_id: dict[str, tuple[int, str]] = {}  # external_id: (first line, record hash)
        self.lines_by_content: dict[str, tuple[int, str]] = {}  # content_hash: (line, external_id)

    def _decode(self, raw: bytes | None) -> ExampleRecord | None:
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
        problems: list[Problem] = []
        if "department" in values and values["department"] not in self.departments:
            known = known_names(self.departments, "departments")
            problems.append(("department", f"unknown department {values['department']!r} ({known})"))
        for index, document_id in enumerate(values.get("source_document_ids", [])):
            if document_id not in self.documents:
                problems.append(
                    (
                        f"source_document_ids[{index}]",
                        f"no document with external_id {document_id!r} (ingest the documents first)",
                    )
                )
        return problems

    def explain(self, raw: bytes | None) -> list[Problem]:
        obj, problems = decode_object(raw)
        if obj is None:
            return problems
        values, problems = check_fields(ExampleRecord, obj)
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
                "external_id": record.external_id,
                "question": record.question,
                "answer": record.answer,
                "department_id": self.departments[record.department],
                "source_document_ids": list(record.source_document_ids),
                "origin": record.origin,
                "status": record.status,
                "content_hash": example_content_hash(record.question, record.answer),
            }
            valid.append(_Valid(number, raw, values, hashlib.sha256(self.encoder.encode(record)).hexdigest()))
        self._store(valid)

    def _store(self, valid: list[_Valid]) -> None:
        run = self.run
        session = run.session
        stored_by_id = repo.examples_by_external_id(session, {v.values["external_id"] for v in valid})
        stored_by_content = repo.examples_by_content_hash(session, {v.values["content_hash"] for v in valid})
        frozen = repo.example_ids_in_dataset_versions(session, [e.id for e in stored_by_id.values()])
        inserts: list[dict[str, Any]] = []
        for item in valid:
            external_id = item.values["external_id"]
            content_hash = item.values["content_hash"]
            earlier = self.lines_by_id.get(external_id)
            if earlier is not None:
                if earlier[1] == item.record_hash:
                    run.counts.unchanged += 1
                else:
                    message = f"{external_id!r} appears earlier in this file (line {earlier[0]}) with other content"
                    run.reject(item.line, [("external_id", message)], item.raw)
                continue
            self.lines_by_id[external_id] = (item.line, item.record_hash)
            stored = stored_by_id.get(external_id)
            if stored is not None and all(getattr(stored, k) == v for k, v in item.values.items()):
                run.counts.unchanged += 1
                continue
            problem = self._conflict(item, stored, stored_by_content, frozen)
            if problem is not None:
                run.reject(item.line, [problem], item.raw)
                continue
            self.lines_by_content[content_hash] = (item.line, external_id)
            if stored is None:
                inserts.append(item.values)
            else:
                for key, value in item.values.items():
                    setattr(stored, key, value)
                run.counts.updated += 1
        if inserts:
            session.execute(insert(Example), inserts)
            run.counts.inserted += len(inserts)
        session.flush()

    def _conflict(
        self,
        item: _Valid,
        stored: Example | None,
        stored_by_content: dict[str, tuple[int, str | None]],
        frozen: set[int],
    ) -> Problem | None:
        """Why this line cannot be stored, if it cannot."""
        external_id = item.values["external_id"]
        if stored is not None and not self.run.options.update:
            return (
                "external_id",
                f"example {external_id!r} is already stored with other content (use --update to replace it)",
            )
        if stored is not None and stored.id in frozen:
            changed = [k for k in _FROZEN_FIELDS if getattr(stored, k) != item.values[k]]
            if changed:
                fields = ", ".join(k.removesuffix("_id") for k in changed)
                return (
                    "external_id",
                    f"example {external_id!r} is in a dataset version, so its {fields} cannot change "
                    "(retire it and add the new content under a new external_id)",
                )
        content_hash = item.values["content_hash"]
        in_file = self.lines_by_content.get(content_hash)
        if in_file is not None and in_file[1] != external_id:
            return "question", f"the same question and answer (ignoring case and spacing) is on line {in_file[0]}"
        holder = stored_by_content.get(content_hash)
        if holder is not None and holder[1] != external_id:
            name = repr(holder[1]) if holder[1] is not None else f"id {holder[0]}"
            return "question", f"the same question and answer (ignoring case and spacing) is already example {name}"
        return None

    def finish(self) -> None:
        """Examples are stored chunk by chunk; nothing is left to do at the end."""
