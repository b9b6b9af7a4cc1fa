"""The state one ingest carries from chunk to chunk: options, counts, and the lines it rejected."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import IO, Literal

from sqlalchemy.orm import Session

from audit.ingest.lines import DEFAULT_CHUNK_LINES, LineError, Problem, raw_text
from audit.org.models import User

Kind = Literal["documents", "examples", "gold", "answers", "ratings", "references"]
KINDS: tuple[Kind, ...] = ("documents", "examples", "gold", "answers", "ratings", "references")


@dataclass(frozen=True)
class IngestOptions:
    update: bool = False  # replace stored rows whose content changed (else: an error per such line)
    skip_invalid: bool = False  # store the valid lines, write the others to FILE.rejected.jsonl
    create_auditors: bool = False  # ratings: unknown auditors become inactive auditor accounts
    keep_errors: int = 1000  # line errors kept for the report; all are counted
    chunk_lines: int = DEFAULT_CHUNK_LINES  # lines decoded, checked and stored together


@dataclass
class Counts:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    created_auditors: int = 0
    registered_models: int = 0


@dataclass
class IngestRun:
    """Shared by the kind-specific ingesters; :meth:`reject` is the one way a line is refused."""

    session: Session
    actor: User | None
    kind: Kind
    file_label: str
    options: IngestOptions
    ingested_at: dt.datetime
    rejected_sink: IO[str] | None = None
    counts: Counts = field(default_factory=Counts)
    errors: list[LineError] = field(default_factory=list)  # the first ``keep_errors`` of them
    error_count: int = 0  # all of them

    def reject(self, line: int, problems: list[Problem], raw: bytes | None) -> None:
        self.counts.rejected += 1
        self.error_count += len(problems)
        room = self.options.keep_errors - len(self.errors)
        if room > 0:
            self.errors.extend(LineError(line, path, problem) for path, problem in problems[:room])
        if self.rejected_sink is not None:
            entry = {"line": line, "errors": [f"{path}: {problem}" for path, problem in problems], "raw": raw_text(raw)}
            self.rejected_sink.write(json.dumps(entry, ensure_ascii=False) + "\n")
