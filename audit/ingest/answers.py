"""``ingest answers``: the hot path. Decode with msgspec, resolve names with in-memory maps, store with
the raw driver; a line that fails any check is taken apart by the slow path to say why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from audit.auditlog import service as auditlog
from audit.ingest import bulk
from audit.ingest import lines as lines_module
from audit.ingest import repository as repo
from audit.ingest.answer_rows import AnswerBuilder
from audit.ingest.bulk import CONTENT_HASH, EXTERNAL_ID, MODEL_ID
from audit.ingest.lines import RawLine
from audit.ingest.records import (
    AnswerRecord,
)
from audit.ingest.run import IngestRun
from audit.modelops.models import ModelVersion
from audit.org import repository as org_repo

__all__ = ["AnswerBuilder", "AnswerIngester", "answer_content_hash"]


def answer_content_hash(record: AnswerRecord, encoder: msgspec.json.Encoder) -> str:
    """sha256 of the record's canonical serialisation: compact JSON, the fields of :class:`AnswerRecord`
    in declaration order, absent optional fields as null, ``created_at`` in UTC written with ``Z`` (the
    same instant written with another offset is the same answer). Sets ``record.created_at`` to UTC.
    """
    if record.created_at.tzinfo is not dt.UTC:
        record.created_at = record.created_at.astimezone(dt.UTC)
    return hashlib.sha256(encoder.encode(record)).hexdigest()


class AnswerIngester:
    """Decode, check and store answers chunk by chunk (see the module docstring)."""

    def __init__(self, run: IngestRun) -> None:
        self.run = run
        session = run.session
        self.connection = session.connection()
        self.departments = org_repo.department_ids_by_name(session)
        self.documents = set(repo.document_ids_by_external_id(session))
        self.models = repo.model_version_ids_by_name(session)
        self.dialect = self.connection.dialect.name
        self.stored_ingested_at = bulk.storage_timestamp(self.connection)(run.ingested_at)
        self.builder = AnswerBuilder(
            departments=self.departments,
            documents=self.documents,
            models=self.models,
            dialect=self.dialect,
            stored_ingested_at=self.stored_ingested_at,
            register=self._register_model,
        )
        self.build = self.builder.build
        self.explain = self.builder.explain
        self.sqlite = self.dialect == "sqlite"
        # rows from first_new_id on were inserted by this file; rows it updated are remembered
        self.last_id = bulk.max_answer_id(self.connection)
        self.first_new_id = self.last_id + 1
        self.updated_hashes: dict[str, str] = {}
        self.updates: list[tuple[int, bulk.StoredAnswer]] = []
        # a stored row's source line: the raw bytes (read here), or its offset (read by the pipeline's worker)
        self.line_bytes: Callable[[Any], bytes | None] = _same

    def _register_model(self, name: str) -> int:
        """Model versions the production assistant names are registered on first sight."""
        model = ModelVersion(name=name, hyperparameters={}, evaluation={}, gate_result={})
        self.run.session.add(model)
        self.run.session.flush()
        auditlog.record(
            self.run.session,
            actor=self.run.actor,
            action="model_version.register",
            entity_type="model_version",
            entity_id=model.id,
            details={"name": name, "source": f"ingest answers {self.run.file_label}"[:500]},
        )
        self.models[name] = model.id
        self.run.counts.registered_models += 1
        return model.id

    # -- one chunk --------------------------------------------------------------------------------

    def ingest_chunk(self, lines: list[RawLine]) -> None:
        run = self.run
        build = self.build
        rows: list[bulk.StoredAnswer] = []
        sources: list[tuple[int, Any]] = []  # (line number, raw line) of each row, for rejections
        for line in lines:
            number, raw = line
            row = build(raw) if raw is not None else None
            if row is None:
                run.reject(number, self.explain(raw), raw)
                continue
            rows.append(row)
            sources.append(line)
        self.store_chunk(rows, sources)

    def ingest_pipelined(self, path: Path, *, chunk_lines: int, on_bytes: Callable[[int], None] | None) -> None:
        """The whole file, decoded and checked by a worker process (:mod:`audit.ingest.pipeline`) while
        this one stores the chunks it has sent: rejections, model registrations and rows arrive in line
        order, so counts, messages, the rejected-lines file and the stored rows are those of
        :meth:`ingest_chunk` on the same file."""
        from audit.ingest import pipeline  # noqa: PLC0415 - only large files need it

        config = pipeline.WorkerConfig(
            path=str(path),
            chunk_lines=chunk_lines,
            max_line_bytes=lines_module.MAX_LINE_BYTES,
            departments=self.departments,
            documents=self.documents,
            models=self.models,
            dialect=self.dialect,
            stored_ingested_at=self.stored_ingested_at,
        )
        run = self.run
        placeholders: dict[int, int] = {}  # the worker's stand-in id for a new model version: its real id
        with path.open("rb") as source_file, pipeline.start_worker(config) as chunks:

            def line_bytes(offset: int) -> bytes | None:
                source_file.seek(offset)
                return source_file.readline(lines_module.MAX_LINE_BYTES + 1)

            self.line_bytes = line_bytes
            for chunk in chunks:
                run.counts.read += chunk.lines
                # a line's rejection or model came before the rows of the chunk, as in ingest_chunk
                for number, problems, raw in chunk.rejects:
                    run.reject(number, problems, raw)
                for placeholder, name in chunk.new_models:
                    placeholders[placeholder] = self._register_model(name)
                rows = chunk.rows
                if placeholders:
                    rows = [
                        row
                        if row[MODEL_ID] > 0
                        else (*row[:MODEL_ID], placeholders[row[MODEL_ID]], *row[MODEL_ID + 1 :])
                        for row in rows
                    ]
                self.store_chunk(rows, chunk.sources)
                if on_bytes is not None and chunk.bytes_read:
                    on_bytes(chunk.bytes_read)
        self.line_bytes = _same

    def store_chunk(self, rows: list[bulk.StoredAnswer], sources: list[tuple[int, Any]]) -> None:
        """Store the rows of one chunk; ``sources`` holds each row's (line number, :attr:`line_bytes` key)."""
        if self.sqlite:
            self._store_sqlite(rows, sources)
        else:
            self._store_checked(rows, sources)
        if self.updates:
            self.run.counts.updated += bulk.update_stored_answers(self.connection, self.updates)
            self.updates = []

    def _store_sqlite(self, rows: list[bulk.StoredAnswer], sources: list[tuple[int, Any]]) -> None:
        """Insert first (the unique index skips ids already stored), then look at the skipped rows only."""
        stored_before = self.last_id
        inserted = bulk.insert_new_stored_answers_sqlite(self.connection, rows)
        self.run.counts.inserted += inserted
        self.last_id = bulk.max_answer_id(self.connection)
        if inserted == len(rows):  # the common case: every row was new
            return
        existing = bulk.existing_answers(self.connection, [row[EXTERNAL_ID] for row in rows])
        inserted_now: dict[str, int] = {}  # external_id: the line whose row was stored
        for row, (number, raw) in zip(rows, sources, strict=True):
            external_id = row[EXTERNAL_ID]
            answer_id, stored_hash = existing[external_id]
            if answer_id > stored_before and external_id not in inserted_now:
                inserted_now[external_id] = number  # the first line of an id is the one stored
                continue
            self._resolve(number, raw, row, answer_id, stored_hash, first_line=inserted_now.get(external_id))

    def _store_checked(self, rows: list[bulk.StoredAnswer], sources: list[tuple[int, Any]]) -> None:
        """Look the ids up first (COPY cannot skip conflicts), then insert only the new rows."""
        existing = bulk.existing_answers(self.connection, [row[EXTERNAL_ID] for row in rows])
        inserts: list[bulk.StoredAnswer] = []
        new_in_chunk: dict[str, tuple[int, str]] = {}  # external_id: (line, content hash)
        for row, (number, raw) in zip(rows, sources, strict=True):
            external_id = row[EXTERNAL_ID]
            first = new_in_chunk.get(external_id)
            found = existing.get(external_id)
            if first is not None:
                self._resolve(number, raw, row, self.first_new_id, first[1], first_line=first[0])
            elif found is not None:
                self._resolve(number, raw, row, *found)
            else:
                inserts.append(row)
                new_in_chunk[external_id] = (number, row[CONTENT_HASH])
        self.run.counts.inserted += bulk.insert_stored_answers(self.connection, inserts)

    def _resolve(
        self,
        number: int,
        raw: Any,
        row: bulk.StoredAnswer,
        answer_id: int,
        stored_hash: str,
        first_line: int | None = None,
    ) -> None:
        """A line whose external_id is stored already: unchanged, updated, or rejected. ``raw`` is the
        line's :attr:`line_bytes` key, read only to write a rejected line."""
        run = self.run
        external_id = row[EXTERNAL_ID]
        content_hash = row[CONTENT_HASH]
        updated_hash = self.updated_hashes.get(external_id)
        if (updated_hash or stored_hash) == content_hash:
            run.counts.unchanged += 1
        elif updated_hash is not None or answer_id >= self.first_new_id:
            where = f" (line {first_line})" if first_line is not None else ""
            run.reject(
                number,
                [("external_id", f"{external_id!r} appears earlier in this file{where} with other content")],
                self.line_bytes(raw),
            )
        elif run.options.update:
            self.updates.append((answer_id, row))
            self.updated_hashes[external_id] = content_hash
        else:
            message = f"answer {external_id!r} is already stored with other content (use --update to replace it)"
            run.reject(number, [("external_id", message)], self.line_bytes(raw))

    def finish(self) -> None:
        """Answers are stored chunk by chunk; nothing is left to do at the end."""


def _same(raw: Any) -> Any:
    return raw
