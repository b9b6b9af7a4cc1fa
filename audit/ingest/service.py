"""Ingest a JSONL file of documents, examples, gold items, answers, ratings or references: all of it, or (``skip_invalid``) its valid lines.

A file with any invalid line is rejected whole: the service rolls its savepoint back, so nothing of
it can be committed, and raises :class:`IngestRejected` carrying every line error. The caller commits.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import ConflictError, NotFoundError, ValidationError
from audit.ingest import pipeline
from audit.ingest.answers import AnswerIngester
from audit.ingest.documents import DocumentIngester
from audit.ingest.examples import ExampleIngester
from audit.ingest.gold import GoldIngester
from audit.ingest.lines import LineError, RawLine, read_chunks
from audit.ingest.ratings import RatingIngester
from audit.ingest.references import ReferenceIngester
from audit.ingest.run import KINDS, Counts, IngestOptions, IngestRun, Kind
from audit.org.models import User
from audit.permissions import require


class Ingester(Protocol):
    def ingest_chunk(self, lines: list[RawLine]) -> None: ...

    def finish(self) -> None: ...


INGESTERS: dict[Kind, Callable[[IngestRun], Ingester]] = {
    "documents": DocumentIngester,
    "examples": ExampleIngester,
    "gold": GoldIngester,
    "answers": AnswerIngester,
    "ratings": RatingIngester,
    "references": ReferenceIngester,
}


@dataclass(frozen=True)
class IngestSummary:
    kind: Kind
    file: str
    counts: Counts
    seconds: float
    errors: list[LineError] = field(default_factory=list)  # the first IngestOptions.keep_errors
    error_count: int = 0
    rejected_file: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.counts.read / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        c = self.counts
        text = (
            f"{self.kind}: {c.read} read, {c.inserted} inserted, {c.updated} updated, {c.unchanged} unchanged, "
            f"{c.rejected} rejected in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s)"
        )
        extras = []
        if c.registered_models:
            extras.append(f"new model versions registered: {c.registered_models}")
        if c.created_auditors:
            extras.append(f"inactive auditor accounts created: {c.created_auditors}")
        return text + (f"; {', '.join(extras)}" if extras else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            **asdict(self.counts),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second),
            "rejected_file": self.rejected_file,
            "error_count": self.error_count,
            "errors": [e.format(self.file) for e in self.errors],
        }


class IngestRejected(ValidationError):
    """The file had invalid lines and nothing of it was stored."""

    def __init__(self, summary: IngestSummary) -> None:
        self.summary = summary
        super().__init__(
            f"{summary.file}: {summary.counts.rejected} of {summary.counts.read} lines are invalid; nothing was stored "
            "(fix them, or use --skip-invalid to store the valid lines)"
        )


def rejected_path(path: Path) -> Path:
    """Where ``skip_invalid`` writes the refused lines: beside the input, ``FILE.rejected.jsonl``."""
    return path.with_name(path.name + ".rejected.jsonl")


def ingest_file(
    session: Session,
    *,
    actor: User | None,
    kind: Kind,
    path: Path,
    options: IngestOptions = IngestOptions(),
    on_bytes: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Ingest ``path`` as ``kind`` records inside one savepoint of the caller's transaction."""
    require(actor, "ingest")
    if kind not in KINDS:
        raise ValidationError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    if options.create_auditors and kind != "ratings":
        raise ValidationError("--create-auditors applies only to ratings")
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    started = time.perf_counter()
    sink_path = rejected_path(path) if options.skip_invalid else None
    savepoint = session.begin_nested()
    # The bulk path talks to the driver directly, so its errors arrive unwrapped by SQLAlchemy.
    driver_error: type[Exception] = session.connection().dialect.loaded_dbapi.Error
    # The hot loop allocates millions of short-lived, acyclic objects; the cyclic garbage collector
    # would walk them again and again for nothing (about 6% of the time of a large answers file).
    collecting = gc.isenabled()
    gc.disable()
    try:
        with contextlib.ExitStack() as stack:
            sink: IO[str] | None = (
                stack.enter_context(sink_path.open("w", encoding="utf-8")) if sink_path is not None else None
            )
            run = IngestRun(
                session=session,
                actor=actor,
                kind=kind,
                file_label=str(path),
                options=options,
                ingested_at=utcnow(),
                rejected_sink=sink,
            )
            ingester = INGESTERS[kind](run)
            if isinstance(ingester, AnswerIngester) and pipeline.use_pipeline(path):
                ingester.ingest_pipelined(path, chunk_lines=options.chunk_lines, on_bytes=on_bytes)
            else:
                for chunk in read_chunks(path, chunk_lines=options.chunk_lines, on_bytes=on_bytes):
                    run.counts.read += len(chunk)
                    ingester.ingest_chunk(chunk)
            ingester.finish()
    except (DBAPIError, driver_error) as exc:
        savepoint.rollback()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        # e.g. another ingest of the same ids committed meanwhile: the checks here passed, the database refused
        raise ConflictError(f"{path}: the database refused the data ({reason}); nothing was stored") from exc
    except BaseException:
        savepoint.rollback()
        raise
    finally:
        if collecting:
            gc.enable()
    summary = IngestSummary(
        kind=kind,
        file=str(path),
        counts=run.counts,
        seconds=time.perf_counter() - started,
        errors=sorted(run.errors, key=lambda e: e.line),  # stable: a line's problems keep their order
        error_count=run.error_count,
        rejected_file=str(sink_path) if sink_path is not None else None,
    )
    if run.counts.rejected and not options.skip_invalid:
        savepoint.rollback()
        raise IngestRejected(summary)
    savepoint.commit()
    auditlog.record(
        session,
        actor=actor,
        action=f"ingest.{kind}",
        entity_type="ingest",
        entity_id=path.name[:64],
        details={"file": str(path), **asdict(run.counts), "update": options.update},
    )
    return summary
