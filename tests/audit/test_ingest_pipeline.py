"""Large answers files go through a worker process (audit.ingest.pipeline); here the threshold is
lowered so small files take that path, and each scenario is run on both paths, in the same database
state (a savepoint rolled back between them), and must give the same summary, errors, rejected-lines
file, stored rows, model registrations and audit entries. On SQLite and PostgreSQL (``session``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.auditlog.models import AuditLogEntry
from audit.ingest import answers as answers_module
from audit.ingest import pipeline
from audit.ingest.run import IngestOptions
from audit.ingest.service import IngestRejected, ingest_file, rejected_path
from audit.modelops.models import ModelVersion
from tests.audit.test_ingest import answer, kb, write_jsonl

__all__ = ["kb"]  # the fixture, shared with test_ingest

# ids come from sequences, which PostgreSQL does not roll back: a model version by its name
_ROW_COLUMNS = [
    *(c for c in Answer.__table__.columns if c.name not in ("id", "ingested_at", "model_version_id")),
    ModelVersion.name,
]


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """Every worker started, the pipeline forced for any file size and CPU count."""
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process = real_popen(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(pipeline.subprocess, "Popen", spy)
    return started


@pytest.fixture
def force_pipeline(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    def force(on: bool) -> None:
        monkeypatch.setattr(pipeline, "PIPELINE_MIN_BYTES", 0 if on else 1 << 62)
        monkeypatch.setattr(pipeline, "available_cpus", lambda: 2)
        monkeypatch.setattr(pipeline, "spare_cpus", lambda: 1.0)

    return force


def outcome(session: Session, path: Path, **options: Any) -> dict[str, Any]:
    """Everything an ingest leaves behind or says, minus ids and times."""
    try:
        summary = ingest_file(session, actor=None, kind="answers", path=path, options=IngestOptions(**options))
        stored = True
    except IngestRejected as exc:
        summary = exc.summary
        stored = False
    session.expire_all()
    sink = rejected_path(path)
    result = {
        "stored": stored,
        "counts": summary.counts,
        "errors": [e.format(path.name) for e in summary.errors],
        "error_count": summary.error_count,
        "rejected_file": sink.read_text(encoding="utf-8") if sink.exists() else None,
        "rows": [
            tuple(row) for row in session.execute(select(*_ROW_COLUMNS).join(ModelVersion).order_by(Answer.external_id))
        ],
        "models": sorted(session.scalars(select(ModelVersion.name))),
        "audit": [
            (e.action, e.entity_type, json.dumps(e.details, sort_keys=True))
            for e in session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id))
            if e.action != "ingest.answers"  # its entity is the file name, details the same counts
        ],
    }
    if sink.exists():
        sink.unlink()
    return result


def both_paths(
    session: Session, force: Callable[[bool], None], workers: list[Any], steps: Callable[[], Iterator[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Run ``steps`` single-process, roll back, run them again through the worker; same outcomes."""
    savepoint = session.begin_nested()
    force(False)
    single = list(steps())
    savepoint.rollback()
    assert workers == []
    force(True)
    piped = list(steps())
    assert len(workers) == len(piped)  # every ingest of the second run went through a worker
    assert all(worker.returncode == 0 for worker in workers)
    assert piped == single
    return piped


def test_a_valid_file(session, kb, tmp_path, workers, force_pipeline) -> None:
    records: list[dict[str, Any] | str] = [
        answer(f"a-{i}", model_version="prod-7" if i % 3 else "new-1") for i in range(9)
    ]
    records[4] = ""  # a blank line: not read, not rejected
    records.append(answer("a-9", model_version="new-2", created_at="2026-03-01T10:30:00Z", confidence=None))
    path = write_jsonl(tmp_path / "a.jsonl", records)

    def steps() -> Iterator[dict[str, Any]]:
        yield outcome(session, path, chunk_lines=3)

    (result,) = both_paths(session, force_pipeline, workers, steps)
    assert result["stored"] and (result["counts"].read, result["counts"].inserted) == (9, 9)
    assert result["counts"].registered_models == 3  # prod-7, new-1, new-2: each once
    assert result["models"] == ["new-1", "new-2", "prod-7"]


def test_a_bad_line_in_the_middle_stores_nothing(session, kb, tmp_path, workers, force_pipeline) -> None:
    records: list[dict[str, Any] | str] = [answer(f"a-{i}", model_version=f"m-{i}") for i in range(12)]
    records[5] = answer("bad", asker_department="Fiance", latency_ms=-1)
    records[7] = '{"external_id": "bad-6",'
    path = write_jsonl(tmp_path / "bad.jsonl", records)

    def steps() -> Iterator[dict[str, Any]]:
        yield outcome(session, path, chunk_lines=4)
        yield outcome(session, path, chunk_lines=4, keep_errors=1)

    first, kept_one = both_paths(session, force_pipeline, workers, steps)
    assert not first["stored"] and first["rows"] == [] and first["models"] == []
    assert first["errors"] == [
        "bad.jsonl:6: latency_ms: expected an integer from 0 to 2,147,483,647 or null, got -1",
        "bad.jsonl:6: asker_department: unknown department 'Fiance' (known: Finance, HR)",
        "bad.jsonl:8: json: malformed JSON: Expecting property name enclosed in double quotes at column 25",
    ]
    assert kept_one["errors"] == first["errors"][:1] and kept_one["error_count"] == 3


def test_skip_invalid_writes_the_same_rejected_file(session, kb, tmp_path, workers, force_pipeline) -> None:
    records: list[dict[str, Any] | str] = [answer(f"a-{i}") for i in range(10)]
    records[2] = answer("a-2", sources=[{"document_id": "NOPE", "department": "Mars", "score": 1}])
    records[5] = answer("a-1", answer="Other content.")  # a repeat with other content, in another chunk
    records[7] = answer("a-7", question="bad \udcff")  # after it, but in the same chunk: rejected first
    path = write_jsonl(tmp_path / "mixed.jsonl", records)
    changed = write_jsonl(tmp_path / "changed.jsonl", [answer("a-0"), answer("a-3", answer="Changed."), answer("new")])

    def steps() -> Iterator[dict[str, Any]]:
        yield outcome(session, path, skip_invalid=True, chunk_lines=4)
        # stored rows with other content: rejected lines read back from the file by their offsets
        yield outcome(session, changed, skip_invalid=True, chunk_lines=2)

    first, second = both_paths(session, force_pipeline, workers, steps)
    assert first["stored"] and (first["counts"].inserted, first["counts"].rejected) == (7, 3)
    assert [json.loads(line)["line"] for line in first["rejected_file"].splitlines()] == [3, 8, 6]
    assert [json.loads(line)["raw"] for line in second["rejected_file"].splitlines()] == [
        json.dumps(answer("a-3", answer="Changed."))
    ]
    assert (second["counts"].inserted, second["counts"].unchanged, second["counts"].rejected) == (1, 1, 1)


def test_reingest_is_idempotent_and_update_replaces(session, kb, tmp_path, workers, force_pipeline) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [answer(f"a-{i}") for i in range(7)])
    changed = write_jsonl(tmp_path / "c.jsonl", [answer("a-1", answer="Thirty days."), answer("a-9"), answer("a-2")])

    def steps() -> Iterator[dict[str, Any]]:
        yield outcome(session, path, chunk_lines=3)
        yield outcome(session, path, chunk_lines=3)
        yield outcome(session, changed, chunk_lines=2)
        yield outcome(session, changed, chunk_lines=2, update=True)

    first, again, refused, updated = both_paths(session, force_pipeline, workers, steps)
    assert (again["counts"].inserted, again["counts"].unchanged) == (0, 7) and again["rows"] == first["rows"]
    assert refused["errors"] == [
        "c.jsonl:1: external_id: answer 'a-1' is already stored with other content (use --update to replace it)"
    ]
    assert (updated["counts"].inserted, updated["counts"].updated, updated["counts"].unchanged) == (1, 1, 1)


def test_progress_reports_every_byte(session, kb, tmp_path, force_pipeline) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [answer(f"a-{i}") for i in range(5)] + ["", "  "])
    force_pipeline(True)
    seen: list[int] = []
    ingest_file(
        session, actor=None, kind="answers", path=path, options=IngestOptions(chunk_lines=2), on_bytes=seen.append
    )
    assert len(seen) >= 3 and sum(seen) == path.stat().st_size


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("-c", "import os; os._exit(3)"), "it stopped without finishing (EOFError) (exit status 3)"),
        (
            ("-c", "import sys; sys.stdin.buffer.read(); sys.exit('worker says no')"),
            "stopped without finishing (EOFError) (exit status 1)\nworker says no",
        ),
    ],
)
def test_a_worker_that_dies_fails_the_ingest_and_stores_nothing(
    session, kb, tmp_path, workers, force_pipeline, monkeypatch, args, expected
) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [answer(f"a-{i}") for i in range(5)])
    force_pipeline(True)
    monkeypatch.setattr(pipeline, "WORKER_ARGS", args)
    with pytest.raises(pipeline.IngestWorkerFailed) as caught:
        ingest_file(session, actor=None, kind="answers", path=path, options=IngestOptions(chunk_lines=2))
    assert expected in str(caught.value) and str(caught.value).endswith("nothing was stored")
    assert session.scalars(select(Answer.id)).first() is None
    assert workers[0].returncode is not None


def test_a_worker_error_is_reported(session, kb, tmp_path, workers, force_pipeline, monkeypatch) -> None:
    path = tmp_path / "gone.jsonl"
    write_jsonl(path, [answer("a-1")])
    force_pipeline(True)
    real_start = pipeline.start_worker

    def start_on_a_missing_file(config: pipeline.WorkerConfig) -> Any:
        path.unlink()  # after the service checked it and opened it to read lines back: the worker cannot
        return real_start(config)

    monkeypatch.setattr(pipeline, "start_worker", start_on_a_missing_file)
    with pytest.raises(pipeline.IngestWorkerFailed, match="FileNotFoundError: .*gone.jsonl"):
        ingest_file(session, actor=None, kind="answers", path=path, options=IngestOptions())
    assert workers[0].returncode == 1


def test_an_interrupted_ingest_kills_the_worker_and_stores_nothing(
    session, kb, tmp_path, workers, force_pipeline, monkeypatch
) -> None:
    # a file far bigger than the pipe holds: the worker is still busy when the interruption comes
    path = write_jsonl(tmp_path / "a.jsonl", [answer(f"a-{i}", answer="x" * 5000) for i in range(3000)])
    force_pipeline(True)
    real_store = answers_module.AnswerIngester.store_chunk
    calls = []

    def interrupted(self: Any, rows: Any, sources: Any) -> None:
        calls.append(len(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_store(self, rows, sources)

    monkeypatch.setattr(answers_module.AnswerIngester, "store_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ingest_file(session, actor=None, kind="answers", path=path, options=IngestOptions(chunk_lines=100))
    assert workers[0].returncode is not None  # gone, not left running
    assert session.scalars(select(Answer.id)).first() is None


@pytest.mark.parametrize(
    ("size", "cpus", "load", "expected"),
    [
        (pipeline.PIPELINE_MIN_BYTES, 2, 1.0, True),  # large, and a CPU free beside this process
        (pipeline.PIPELINE_MIN_BYTES - 1, 16, 1.0, False),  # small: the single process is done first
        (pipeline.PIPELINE_MIN_BYTES, 1, 0.0, False),  # one CPU: nothing to overlap on
        (pipeline.PIPELINE_MIN_BYTES, 2, 1.6, False),  # busy: the two halves would take turns
        (pipeline.PIPELINE_MIN_BYTES, 8, 7.5, True),
    ],
)
def test_the_pipeline_is_used_for_large_files_with_a_cpu_free(
    tmp_path, monkeypatch, size: int, cpus: int, load: float, expected: bool
) -> None:
    path = tmp_path / "a.jsonl"
    with path.open("wb") as fh:
        fh.truncate(size)  # sparse: only the size matters here
    monkeypatch.setattr(pipeline, "available_cpus", lambda: cpus)
    monkeypatch.setattr(pipeline.os, "getloadavg", lambda: (load, load, load))
    assert pipeline.use_pipeline(path) is expected
