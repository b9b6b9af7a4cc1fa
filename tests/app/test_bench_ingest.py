"""The ingest bench scenario: both sides load the same rows, each into its own fresh database, and the
figure carries the wall-clock ratio and the CPU-time ratio of every run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from app.bench.context import BenchOptions, Context
from app.bench.databases import BenchDatabase
from app.bench.scenarios import ingest as scenario
from app.bench.synth import answer_line
from tests.conftest import postgres_admin_url

BACKENDS = ["sqlite"] + (["postgres"] if postgres_admin_url() else [])


def _context(backend: str, count: int, runs: int, tmp_path: Path) -> Context:
    options = BenchOptions(
        scales=[count], backends=[backend], runs=runs, postgres_url=postgres_admin_url(), work_dir=tmp_path
    )
    # the scenario makes its own databases: the context's db only names the backend
    return Context(
        db=BenchDatabase(backend, "unused"),
        engine=None,
        scale=count,
        scale_label=str(count),
        options=options,
        progress=lambda _message: None,
    )


def test_the_answers_file_holds_the_synthetic_answers(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    size = scenario.write_answers_file(path, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    assert size == sum(len(line) for line in lines) == os.path.getsize(path)
    assert [json.loads(line)["external_id"] for line in lines] == ["ingest-0", "ingest-1", "ingest-2"]
    assert lines[0].decode().rstrip("\n") == answer_line(next(scenario._answers(3)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_sides_store_every_row_and_report_wall_and_cpu_ratios(backend: str, tmp_path: Path) -> None:
    count = 300
    with scenario._fresh(_context(backend, count, 1, tmp_path)) as engine:
        service = scenario._ingest_with_service(engine, _answers_file(tmp_path, count), count)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*), count(DISTINCT external_id) FROM answers")).one()
    assert tuple(stored) == (count, count)
    with scenario._fresh(_context(backend, count, 1, tmp_path)) as engine:
        floor = scenario._floor_insert(engine, count)
        with engine.connect() as conn:
            floor_ids = set(conn.execute(text("SELECT external_id FROM answers")).scalars())
    assert floor_ids == {f"ingest-{n}" for n in range(count)}  # the same rows as the file
    for timed in (service, floor):
        assert timed.seconds > 0 and timed.cpu_seconds > 0

    figures = scenario.measure(_context(backend, count, 2, tmp_path))
    assert [f.name for f in figures] == ["ingest answers", "ingest ratings", "CLI start (--help)"]
    figure, ratings, start = figures
    assert ratings.runs == 2 and ratings.floor and ratings.ratio == pytest.approx(ratings.median / ratings.floor)
    assert start.runs == 2 and start.median > 0 and start.unit == "s"
    assert figure.runs == 2 and figure.ratio == pytest.approx(figure.median / figure.floor)
    assert len(figure.extra["floor_runs"]) == 2
    assert len(figure.extra["cpu_ratio_runs"]) == 2 and all(r > 0 for r in figure.extra["cpu_ratio_runs"])
    assert "CPU-time ratio" in figure.notes
    assert all(len(figure.extra["cpu_seconds_runs"][side]) == 2 for side in ("service", "floor"))
    assert list(tmp_path.glob("auditloop-bench-ingest-*")) == []  # the answers file is cleaned up


def _answers_file(tmp_path: Path, count: int) -> Path:
    path = tmp_path / f"answers-{count}.jsonl"
    scenario.write_answers_file(path, count)
    return path


def test_the_service_cpu_time_counts_its_decoding_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.ingest import pipeline

    monkeypatch.setattr(pipeline, "PIPELINE_MIN_BYTES", 0)
    monkeypatch.setattr(pipeline, "available_cpus", lambda: 2)
    monkeypatch.setattr(pipeline, "spare_cpus", lambda: 1.0)
    count = 300
    with scenario._fresh(_context("sqlite", count, 1, tmp_path)) as engine:
        timed = scenario._ingest_with_service(engine, _answers_file(tmp_path, count), count)
    assert timed.worker_cpu_seconds > 0  # the worker ran, and its time is part of the service's
    assert timed.all_cpu_seconds == timed.cpu_seconds + timed.worker_cpu_seconds


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_sides_of_the_ratings_figure_store_the_same_ratings(backend: str, tmp_path: Path) -> None:
    count = 60
    path = tmp_path / "ratings.jsonl"
    scenario.write_ratings_file(path, count)
    stored = {}
    for side in ("service", "floor"):
        with scenario._fresh(_context(backend, count * 5, 1, tmp_path)) as engine:
            scenario._insert_rated_answers(engine, count)
            timed = (
                scenario._ratings_with_service(engine, path, count)
                if side == "service"
                else scenario._ratings_floor(engine, count)
            )
            assert timed.seconds > 0
            with engine.connect() as conn:
                stored[side] = conn.execute(
                    text(
                        "SELECT a.external_id, u.username, r.accuracy, r.completeness, r.relevance, r.sources_correct,"
                        " r.origin, r.is_current, r.idempotency_key, r.rubric_version FROM ratings r"
                        " JOIN answers a ON a.id = r.answer_id JOIN users u ON u.id = r.auditor_id ORDER BY r.id"
                    )
                ).all()
    assert len(stored["service"]) == count
    assert stored["service"] == stored["floor"]
