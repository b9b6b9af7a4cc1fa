"""Ingest rows/s: ``ingest_file`` (the real service, a JSONL file of ~900-byte answer lines) vs the raw
driver writing the same rows into an identical fresh table (``executemany`` on SQLite, ``COPY`` on
PostgreSQL). Each side loads its own fresh database (migrated, reference data only) and commits, so
neither inherits the other's write-ahead log or cache; on PostgreSQL a CHECKPOINT comes before each.

The same for past ratings (``ingest ratings``, one rating per five answers of the scale: 200k at
1M) against the raw driver writing the same rows into the ratings table, each side on a fresh
database already holding the rated answers. Beside them, the CPU time ``auditloop --help`` takes in
a fresh interpreter: every ingest (and every cron run) pays the CLI's start first."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import configure_mappers

from app.bench.context import Context
from app.bench.databases import bench_database
from app.bench.harness import Figure, with_floor
from app.bench.synth import (
    AUDITORS,
    Reference,
    answer_line,
    answer_row,
    default_anchor,
    default_days,
    generate_answers,
    insert_reference_data,
)
from audit.base import utcnow
from audit.db import make_session_factory
from audit.ingest.bulk import AnswerRow, insert_answers, sqlite_timestamp

FLOOR_CHUNK = 50_000
# issue 2: what "fast enough" means on a developer machine, beside the machine-independent ratio
ABSOLUTE_TARGET = {"sqlite": 55_000, "postgres": 30_000}
MIN_RATIO = 0.5
# answer text length that makes a JSONL line ~900 bytes (the JSON keys and sources take the rest)
LINE_ANSWER_CHARS = 560
PREFIX = "ingest"
CLI_START_TARGET_S = 0.5  # issue 17: `auditloop --help` CPU seconds
ANSWERS_PER_RATING = 5  # the ratings figure imports scale / 5 ratings (200k at 1M answers)
RATERS_PER_ANSWER = 2
_COLUMNS = (
    "external_id, question, answer_text, asker_department_id, model_version_id, sources, "
    "top_source_department_id, cites_other_department, confidence, latency_ms, created_at, content_hash, ingested_at"
)


def unavailable() -> str | None:
    """Why the ingest service cannot be measured in this build, or None."""
    try:
        import audit.ingest.service  # noqa: F401
    except ImportError as exc:
        return f"audit.ingest.service cannot be imported ({exc})"
    return None


def _answers(count: int) -> Iterator[Any]:
    anchor = default_anchor()
    yield from generate_answers(
        count, days=default_days(count), anchor=anchor, prefix=PREFIX, answer_chars=LINE_ANSWER_CHARS
    )


def write_answers_file(path: Path, count: int) -> int:
    """Write ``count`` answer lines; returns the file's size in bytes."""
    with path.open("w", encoding="utf-8", buffering=1 << 20) as fh:
        for answer in _answers(count):
            fh.write(answer_line(answer))
            fh.write("\n")
        fh.flush()
        # on disk before any timing starts: else the kernel writes the file back (~1 GB at 1M lines)
        # while the service, measured first, loads it, and the floor after it finds the disk idle
        os.fsync(fh.fileno())
    return path.stat().st_size


def measure(ctx: Context) -> list[Figure]:
    count = ctx.scale
    runs = ctx.runs if count < 1_000_000 else max(1, min(ctx.runs, ctx.options.large_ingest_runs))
    work_dir = Path(tempfile.mkdtemp(prefix="auditloop-bench-ingest-", dir=ctx.options.work_dir))
    path = work_dir / "answers.jsonl"
    try:
        ctx.progress(f"ingest: writing {count:,} answer lines")
        size = write_answers_file(path, count)
        service_rates: list[float] = []
        floor_rates: list[float] = []
        cpu_ratios: list[float] = []  # floor CPU seconds / service CPU seconds, per run
        cpu_seconds: dict[str, list[float]] = {"service": [], "floor": []}
        for run in range(runs):
            # odd runs load the floor first, so neither side always follows the other's disk writes
            order = ("service", "floor") if run % 2 == 0 else ("floor", "service")
            timed: dict[str, Timed] = {}
            for side in order:
                with _fresh(ctx) as engine:
                    timed[side] = (
                        _ingest_with_service(engine, path, count) if side == "service" else _floor_insert(engine, count)
                    )
            service_rates.append(count / timed["service"].seconds)
            floor_rates.append(count / timed["floor"].seconds)
            cpu_ratios.append(timed["floor"].all_cpu_seconds / timed["service"].all_cpu_seconds)
            for side, entry in timed.items():
                cpu_seconds[side].append(entry.all_cpu_seconds)
            worker_cpu = timed["service"].worker_cpu_seconds
            worker_note = f" + {worker_cpu:.1f} s in its decoding worker" if worker_cpu else ""
            ctx.progress(
                f"ingest run {run + 1}/{runs}: service {service_rates[-1]:,.0f} rows/s "
                f"({timed['service'].seconds:.1f} s, {timed['service'].cpu_seconds:.1f} s CPU{worker_note}), "
                f"raw driver {floor_rates[-1]:,.0f} rows/s "
                f"({timed['floor'].seconds:.1f} s, {timed['floor'].cpu_seconds:.1f} s CPU); CPU-time ratio {cpu_ratios[-1]:.2f}"
            )
    finally:
        path.unlink(missing_ok=True)
        work_dir.rmdir()
    absolute = ABSOLUTE_TARGET[ctx.backend]
    figure = ctx.figure(
        "ingest answers",
        "rows/s",
        service_rates,
        higher_is_better=True,
        target=f"≥ {MIN_RATIO:.0%} of raw driver and ≥ {absolute:,} rows/s",
        notes=f"{count:,} lines of {size / count:.0f} bytes, committed, into a fresh database; "
        f"CPU-time ratio {statistics.median(cpu_ratios):.2f}"
        + (f"; {runs} run at this size (each run is a full load)" if runs < ctx.runs else ""),
    )
    floor_name = "sqlite3 executemany" if ctx.backend == "sqlite" else "psycopg COPY"
    with_floor(figure, statistics.median(floor_rates), floor_name, min_ratio=MIN_RATIO)
    figure.met = bool(figure.met) and figure.median >= absolute
    figure.extra = {
        "absolute_target_rows_per_s": absolute,
        "floor_runs": floor_rates,
        # CPU seconds, floor / service: what the ratio would be on an idle machine with one core (SQLite
        # does its work in this thread; the service's decoding worker, on large files, is counted;
        # on PostgreSQL the server's share is not)
        "cpu_ratio_runs": cpu_ratios,
        # wall seconds far above CPU seconds mean the side waited (other processes, the disk)
        "cpu_seconds_runs": cpu_seconds,
    }
    return [figure, ingest_ratings(ctx), cli_start(ctx)]


def ingest_ratings(ctx: Context) -> Figure:
    """Rows/s of ``ingest ratings`` (the real service) vs the raw driver storing the same rows."""
    count = max(RATERS_PER_ANSWER, ctx.scale // ANSWERS_PER_RATING)
    runs = ctx.runs if count < 200_000 else max(1, min(ctx.runs, ctx.options.large_ingest_runs))
    work_dir = Path(tempfile.mkdtemp(prefix="auditloop-bench-ratings-", dir=ctx.options.work_dir))
    path = work_dir / "ratings.jsonl"
    try:
        ctx.progress(f"ingest: writing {count:,} rating lines")
        write_ratings_file(path, count)
        service_rates: list[float] = []
        floor_rates: list[float] = []
        for run in range(runs):
            order = ("service", "floor") if run % 2 == 0 else ("floor", "service")
            timed: dict[str, Timed] = {}
            for side in order:
                with _fresh(ctx) as engine:
                    _insert_rated_answers(engine, count)
                    _checkpoint(engine)
                    timed[side] = (
                        _ratings_with_service(engine, path, count)
                        if side == "service"
                        else _ratings_floor(engine, count)
                    )
            service_rates.append(count / timed["service"].seconds)
            floor_rates.append(count / timed["floor"].seconds)
            ctx.progress(
                f"ingest ratings run {run + 1}/{runs}: service {service_rates[-1]:,.0f} rows/s "
                f"({timed['service'].seconds:.1f} s), raw driver {floor_rates[-1]:,.0f} rows/s ({timed['floor'].seconds:.1f} s)"
            )
    finally:
        path.unlink(missing_ok=True)
        work_dir.rmdir()
    figure = ctx.figure(
        "ingest ratings",
        "rows/s",
        service_rates,
        higher_is_better=True,
        target=f"≥ {MIN_RATIO:.0%} of raw driver",
        notes=f"{count:,} past ratings ({RATERS_PER_ANSWER} auditors per answer), committed, into a fresh database "
        "holding their answers",
    )
    floor_name = "sqlite3 executemany" if ctx.backend == "sqlite" else "psycopg COPY"
    with_floor(figure, statistics.median(floor_rates), floor_name, min_ratio=MIN_RATIO)
    figure.extra = {"floor_runs": floor_rates}
    return figure


def _rated(count: int) -> Iterator[tuple[int, int, dt.datetime, int]]:
    """(answer number, auditor number, created_at, accuracy) of each rating, ``count`` in all."""
    anchor = default_anchor()
    for n in range(count):
        answer, rater = divmod(n, RATERS_PER_ANSWER)
        yield answer, (answer + rater) % AUDITORS, anchor - dt.timedelta(minutes=n), 1 + (n * 7) % 5


def write_ratings_file(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8", buffering=1 << 20) as fh:
        for answer, auditor, created_at, accuracy in _rated(count):
            line = {
                "answer_external_id": f"{PREFIX}-{answer}",
                "auditor": f"auditor{auditor:02d}",
                "created_at": created_at.isoformat(),
                "accuracy": accuracy,
                "completeness": 1 + (accuracy + 1) % 5,
                "relevance": 4,
                "sources_correct": "yes",
            }
            fh.write(json.dumps(line) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _insert_rated_answers(engine: Engine, ratings: int) -> None:
    """The answers the ratings rate (not timed)."""
    count = -(-ratings // RATERS_PER_ANSWER)
    with engine.connect() as conn:
        departments = {name: i for i, name in conn.execute(text("SELECT id, name FROM departments"))}
        model_id = conn.execute(text("SELECT id FROM model_versions WHERE name = 'v1'")).scalar_one()
    ref = Reference(department_ids=departments, user_ids={}, auditor_ids=[], model_version_id=model_id)
    now = utcnow()
    with engine.begin() as conn:
        chunk: list[AnswerRow] = []
        for answer in _answers(count):
            chunk.append(answer_row(answer, ref, now))
            if len(chunk) >= FLOOR_CHUNK:
                insert_answers(conn, chunk)
                chunk = []
        insert_answers(conn, chunk)


def _ratings_with_service(engine: Engine, path: Path, count: int) -> Timed:
    from audit.ingest.service import ingest_file

    configure_mappers()
    session = make_session_factory(engine)()
    try:
        session.connection()
        started, cpu_started = time.perf_counter(), time.thread_time()
        summary = ingest_file(session, actor=None, kind="ratings", path=path)
        session.commit()
        timed = Timed(time.perf_counter() - started, time.thread_time() - cpu_started)
    finally:
        session.close()
    if summary.counts.inserted != count:
        raise RuntimeError(f"ingest stored {summary.counts.inserted} of {count} ratings: {summary.line()}")
    return timed


def _ratings_floor(engine: Engine, count: int) -> Timed:
    """The raw driver storing the same rating rows (built before the clock starts) and committing."""
    from audit.ingest.bulk import insert_ratings, timestamp_formatter
    from audit.ingest.ratings import import_key

    with engine.connect() as conn:
        answer_ids = dict(conn.execute(text("SELECT external_id, id FROM answers")).tuples().all())
        user_ids = dict(conn.execute(text("SELECT username, id FROM users")).tuples().all())
    stamp = timestamp_formatter(engine.dialect.name)
    rows = []
    for n, (answer, auditor, created_at, accuracy) in enumerate(_rated(count), start=1):
        external_id, username = f"{PREFIX}-{answer}", f"auditor{auditor:02d}"
        rows.append(
            (n, answer_ids[external_id], user_ids[username], accuracy, 1 + (accuracy + 1) % 5, 4, None, "yes")
            + (False, None, None, None, "v1", "import", True, None, import_key(external_id, username, created_at))
            + (stamp(created_at),)
        )
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")  # BEGIN (IMMEDIATE on SQLite) before the clock starts
        started, cpu_started = time.perf_counter(), time.thread_time()
        for start in range(0, len(rows), FLOOR_CHUNK):
            insert_ratings(conn, rows[start : start + FLOOR_CHUNK])
        conn.commit()
        return Timed(time.perf_counter() - started, time.thread_time() - cpu_started)


def cli_start(ctx: Context) -> Figure:
    """CPU seconds (user + system) of ``auditloop --help`` in a fresh interpreter, per run."""
    code = "import sys; from app.cli.main import main; sys.argv = ['auditloop', '--help']; main()"
    seconds = []
    for _ in range(ctx.runs):
        before = _children_cpu()
        subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
        seconds.append(_children_cpu() - before)
    figure = ctx.figure(
        "CLI start (--help)",
        "s",
        seconds,
        target=f"≤ {CLI_START_TARGET_S} s CPU",
        notes="user + system CPU seconds of a fresh interpreter running `auditloop --help` (Python's own start included)",
    )
    figure.met = figure.median <= CLI_START_TARGET_S
    return figure


@contextlib.contextmanager
def _fresh(ctx: Context) -> Iterator[Engine]:
    """A fresh migrated database holding the reference data, checkpointed: its engine."""
    with bench_database(ctx.backend, postgres_url=ctx.options.postgres_url, label="ingest") as db:
        engine = db.engine()
        try:
            with engine.begin() as conn:
                insert_reference_data(conn, now=utcnow())
            _checkpoint(engine)
            yield engine
        finally:
            engine.dispose()


def _checkpoint(engine: Engine) -> None:
    """Start from a clean write-ahead log (PostgreSQL: needs superuser or pg_checkpoint; skipped otherwise)."""
    if engine.dialect.name != "postgresql":
        return
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("CHECKPOINT")
    except Exception:  # noqa: BLE001 -- a server that refuses just runs without it
        return


@dataclass(frozen=True)
class Timed:
    seconds: float  # wall clock
    cpu_seconds: float  # this thread's CPU time over the same span
    worker_cpu_seconds: float = 0.0  # CPU time of child processes (the ingest's decoding worker)

    @property
    def all_cpu_seconds(self) -> float:
        return self.cpu_seconds + self.worker_cpu_seconds


def _ingest_with_service(engine: Engine, path: Path, count: int) -> Timed:
    from audit.ingest.service import ingest_file

    # What the floor does before its clock starts, the service does too: the ORM's one-time set-up
    # of this process, the connection (with its PRAGMAs) and BEGIN.
    configure_mappers()
    session = make_session_factory(engine)()
    try:
        session.connection()
        started, cpu_started, children_started = time.perf_counter(), time.thread_time(), _children_cpu()
        summary = ingest_file(session, actor=None, kind="answers", path=path)
        session.commit()
        timed = Timed(
            time.perf_counter() - started, time.thread_time() - cpu_started, _children_cpu() - children_started
        )
    finally:
        session.close()
    if summary.counts.inserted != count:
        raise RuntimeError(f"ingest stored {summary.counts.inserted} of {count} answers: {summary.line()}")
    return timed


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (the ingest waits for its worker)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _floor_rows(count: int, engine: Engine) -> Iterator[list[tuple[Any, ...]]]:
    """The same answers as the file, as ready-to-insert tuples, in chunks (built outside the timing)."""
    with engine.connect() as conn:
        departments = {name: i for i, name in conn.execute(text("SELECT id, name FROM departments"))}
        model_id = conn.execute(text("SELECT id FROM model_versions WHERE name = 'v1'")).scalar_one()
    ref = Reference(department_ids=departments, user_ids={}, auditor_ids=[], model_version_id=model_id)
    now = utcnow()
    sqlite = engine.dialect.name == "sqlite"
    chunk: list[tuple[Any, ...]] = []
    for answer in _answers(count):
        row = answer_row(answer, ref, now)
        chunk.append(
            row[:10] + (sqlite_timestamp(row[10]), row[11], sqlite_timestamp(row[12])) if sqlite else tuple(row)
        )
        if len(chunk) >= FLOOR_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _floor_insert(engine: Engine, count: int) -> Timed:
    """How long the raw driver takes to store the rows into the fresh answers table and commit
    (building the rows, between the timed spans, is not counted)."""
    raw = engine.raw_connection()  # the driver's own connection, with the settings audit.db gives it
    try:
        driver: Any = raw.driver_connection
        seconds = cpu_seconds = 0.0
        if engine.dialect.name == "sqlite":
            sql = f"INSERT INTO answers ({_COLUMNS}) VALUES ({', '.join('?' * 13)})"  # noqa: S608 -- constants
            driver.execute("BEGIN")
            cursor = driver.cursor()
            for chunk in _floor_rows(count, engine):
                started, cpu_started = time.perf_counter(), time.thread_time()
                cursor.executemany(sql, chunk)
                seconds += time.perf_counter() - started
                cpu_seconds += time.thread_time() - cpu_started
            started, cpu_started = time.perf_counter(), time.thread_time()
            driver.execute("COMMIT")
            seconds += time.perf_counter() - started
            cpu_seconds += time.thread_time() - cpu_started
        else:
            with driver.cursor() as cursor:
                for chunk in _floor_rows(count, engine):
                    started, cpu_started = time.perf_counter(), time.thread_time()
                    with cursor.copy(f"COPY answers ({_COLUMNS}) FROM STDIN") as copy:
                        for row in chunk:
                            copy.write_row(row)
                    seconds += time.perf_counter() - started
                    cpu_seconds += time.thread_time() - cpu_started
            started, cpu_started = time.perf_counter(), time.thread_time()
            driver.commit()
            seconds += time.perf_counter() - started
            cpu_seconds += time.thread_time() - cpu_started
        return Timed(seconds, cpu_seconds)
    finally:
        raw.close()
