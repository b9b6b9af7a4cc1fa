"""``ingest documents``: the knowledge base. Lines are checked as they are read and stored at the end,
because ``superseded_by`` may name a document further down the same file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import insert, update

from audit.ingest import repository as repo
from audit.ingest.lines import Problem, RawLine, check_fields, contains_nul, decode_object, known_names
from audit.ingest.records import DocumentRecord, limits_checker
from audit.ingest.run import IngestRun
from audit.knowledge.models import Document
from audit.org import repository as org_repo

_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)


@dataclass
class _Accepted:
    line: int
    raw: bytes
    record: DocumentRecord
    department_id: int
    content_hash: str
    stored_id: int | None  # set when the line updates a stored document


def document_content_hash(record: DocumentRecord, encoder: msgspec.json.Encoder) -> str:
    """sha256 of the record as compact JSON, fields in declaration order, absent ones as null."""
    return hashlib.sha256(encoder.encode(record)).hexdigest()


class DocumentIngester:
    """Check documents line by line, then store and link them all in :meth:`finish`."""

    def __init__(self, run: IngestRun) -> None:
        self.run = run
        session = run.session
        self.departments = org_repo.department_ids_by_name(session)
        # {external_id: (id, content_hash, family, version)}
        self.stored = repo.documents_by_external_id(session)
        self.stored_family_versions = {(family, version): ext for ext, (_, _, family, version) in self.stored.items()}
        self.decoder = msgspec.json.Decoder(DocumentRecord)
        self.encoder = msgspec.json.Encoder()
        self.within_limits = limits_checker(DocumentRecord)
        self.accepted: dict[str, _Accepted] = {}  # in file order
        self.first_line: dict[str, int] = {}  # every external_id seen in the file: its first line
        self.family_versions: dict[tuple[str, int], tuple[str, int]] = {}  # (family, version): (external_id, line)
        self.rejected: dict[str, int] = {}  # external_id: line, of lines rejected so far

    def _decode(self, raw: bytes | None) -> DocumentRecord | None:
        if raw is None:
            return None
        try:
            record = self.decoder.decode(raw)
        except _DECODE_ERRORS:
            return None
        if not self.within_limits(record) or (b"\\u0000" in raw and contains_nul(record)):
            return None
        return record

    def explain(self, raw: bytes | None) -> list[Problem]:
        obj, problems = decode_object(raw)
        if obj is None:
            return problems
        values, problems = check_fields(DocumentRecord, obj)
        if "department" in values and values["department"] not in self.departments:
            problems.append(("department", self._unknown_department(values["department"])))
        return problems or [("json", "refused by the fast check but no problem found; please report this line")]

    def _unknown_department(self, name: str) -> str:
        return f"unknown department {name!r} ({known_names(self.departments, 'departments')})"

    def ingest_chunk(self, lines: list[RawLine]) -> None:
        run = self.run
        for number, raw in lines:
            record = self._decode(raw)
            if record is None or raw is None:
                run.reject(number, self.explain(raw), raw)
                continue
            department_id = self.departments.get(record.department)
            if department_id is None:
                run.reject(number, [("department", self._unknown_department(record.department))], raw)
            elif self._accept(number, raw, record, department_id):
                continue
            self.rejected.setdefault(record.external_id, number)

    def _accept(self, number: int, raw: bytes, record: DocumentRecord, department_id: int) -> bool:
        """Keep a valid line for storing; False if it was rejected."""
        run = self.run
        external_id = record.external_id
        content_hash = document_content_hash(record, self.encoder)
        earlier = self.accepted.get(external_id)
        first_line = self.first_line.setdefault(external_id, number)
        if earlier is not None or first_line != number:
            if earlier is not None and earlier.content_hash == content_hash:
                run.counts.unchanged += 1
                return True
            message = f"{external_id!r} appears earlier in this file (line {first_line})"
            run.reject(number, [("external_id", message)], raw)
            return False
        stored = self.stored.get(external_id)
        if stored is not None and stored[1] == content_hash:
            run.counts.unchanged += 1
            return True
        if stored is not None and not run.options.update:
            message = f"document {external_id!r} is already stored with other content (use --update to replace it)"
            run.reject(number, [("external_id", message)], raw)
            return False
        key = (record.family, record.version)
        in_file = self.family_versions.get(key)
        holder = in_file[0] if in_file is not None else self.stored_family_versions.get(key)
        if holder is not None and holder != external_id:
            where = f" (line {in_file[1]})" if in_file is not None else ""
            message = f"{record.family!r} version {record.version} is already document {holder!r}{where}"
            run.reject(number, [("version", message)], raw)
            return False
        self.family_versions[key] = (external_id, number)
        stored_id = stored[0] if stored is not None else None
        self.accepted[external_id] = _Accepted(number, raw, record, department_id, content_hash, stored_id)
        return True

    def _supersession_problem(self, entry: _Accepted, rejected: dict[str, int]) -> str | None:
        target = entry.record.superseded_by
        if target is None:
            return None
        if target == entry.record.external_id:
            return "a document cannot supersede itself"
        if target in self.accepted:
            family, version = self.accepted[target].record.family, self.accepted[target].record.version
        elif target in self.stored:
            _, _, family, version = self.stored[target]
        elif target in rejected:
            return f"document {target!r} (line {rejected[target]}) was rejected"
        else:
            return f"no document with external_id {target!r} in this file or stored"
        if family == entry.record.family and version <= entry.record.version:
            return f"{target!r} is version {version} of the same family: only a later version can supersede"
        return None

    def finish(self) -> None:
        """Check every ``superseded_by`` (rejecting in cascade: superseded by a rejected line is rejected),
        then store the accepted documents and link them."""
        run = self.run
        rejected = dict(self.rejected)
        changed = True
        while changed:
            changed = False
            for external_id, entry in list(self.accepted.items()):
                problem = self._supersession_problem(entry, rejected)
                if problem is not None:
                    run.reject(entry.line, [("superseded_by", problem)], entry.raw)
                    rejected[external_id] = entry.line
                    del self.accepted[external_id]
                    changed = True
        self._store()

    def _store(self) -> None:
        session = self.run.session
        new = [e for e in self.accepted.values() if e.stored_id is None]
        changed = [e for e in self.accepted.values() if e.stored_id is not None]
        if new:
            session.execute(insert(Document), [self._columns(e) for e in new])
        if changed:
            session.execute(update(Document), [{"id": e.stored_id, **self._columns(e)} for e in changed])
        ids = repo.document_ids_by_external_id(session) if new else {}
        links: list[dict[str, Any]] = []
        for entry in self.accepted.values():
            target = entry.record.superseded_by
            if target is not None or entry.stored_id is not None:
                own_id = entry.stored_id or ids[entry.record.external_id]
                target_id = None if target is None else (ids.get(target) or self.stored[target][0])
                links.append({"id": own_id, "superseded_by_id": target_id})
        if links:
            session.execute(update(Document), links)
        self.run.counts.inserted += len(new)
        self.run.counts.updated += len(changed)

    @staticmethod
    def _columns(entry: _Accepted) -> dict[str, Any]:
        record = entry.record
        return {
            "external_id": record.external_id,
            "family": record.family,
            "department_id": entry.department_id,
            "title": record.title,
            "body": record.body,
            "version": record.version,
            "effective_date": record.effective_date,
            "content_hash": entry.content_hash,
        }
