"""Per-item latency at the service layer: an auditor's next item (``sampling.next_item``) and submitting
its rating (``ratings.submit_rating``, routing included), each one unit of work as the rating page runs
it (re-read the user, call the service, commit). One auditor alone, then N auditors at once (threads,
each with its own session). Floor: one indexed SELECT (the next pending assignment) and one INSERT (a
rating row), each committed, with the raw driver.

The day's sample is drawn and committed first (a larger one than the default, so every auditor has
enough pending items); every run uses auditors nobody used before.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.bench.context import Context
from app.bench.harness import Figure, percentile, with_floor
from app.bench.raw import RawConnection
from audit.base import utcnow
from audit.org import repository as org_repo
from audit.ratings import service as ratings_service
from audit.sampling import service as sampling_service
from audit.sampling.models import Assignment

SAMPLE_SIZE = 2_000
WARMUP_PAIRS = 2
TARGET_P95_MS = 10.0
BROWSER_RESERVED_AUDITORS = 3  # the last auditors are kept untouched for the browser scenario
FLOOR_MARK = "bench-floor"  # rubric_version of the floor's rating rows, deleted afterwards


@dataclass
class Latencies:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)


def prepare(ctx: Context) -> dict[int, int]:
    """Draw and commit the sample of the freshest day; pending assignments per auditor id."""
    assert ctx.synth is not None
    session = ctx.session()
    try:
        summary = sampling_service.draw_sample(
            session, actor=None, sample_date=ctx.synth.anchor.date(), size=SAMPLE_SIZE
        )
        session.commit()
        rows = session.execute(
            select(Assignment.auditor_id, func.count())
            .where(Assignment.status == "pending")
            .group_by(Assignment.auditor_id)
        ).all()
        pending = {int(auditor_id): int(count) for auditor_id, count in rows}
    finally:
        session.close()
    ctx.progress(f"per-item: sample of {summary.items} items drawn and assigned ({sum(pending.values())} pending)")
    return pending


def _next(factory: sessionmaker[Session], auditor_id: int) -> tuple[float, int | None]:
    started = time.perf_counter()
    session = factory()
    try:
        actor = org_repo.user_by_id(session, auditor_id)
        assert actor is not None
        item = sampling_service.next_item(session, actor=actor)
        session.commit()
    finally:
        session.close()
    return (time.perf_counter() - started) * 1000, item.assignment_id if item is not None else None


def _submit(factory: sessionmaker[Session], auditor_id: int, assignment_id: int) -> float:
    started = time.perf_counter()
    session = factory()
    try:
        actor = org_repo.user_by_id(session, auditor_id)
        assert actor is not None
        ratings_service.submit_rating(
            session,
            actor=actor,
            assignment_id=assignment_id,
            accuracy=4,
            completeness=4,
            relevance=5,
            coherence=4,
            sources_correct="yes",
            seconds_spent=42,
            idempotency_key=uuid.uuid4().hex,
        )
        session.commit()
    finally:
        session.close()
    return (time.perf_counter() - started) * 1000


def _auditor_loop(factory: sessionmaker[Session], auditor_id: int, pairs: int, out: Latencies) -> None:
    for index in range(pairs + WARMUP_PAIRS):
        next_ms, assignment_id = _next(factory, auditor_id)
        if assignment_id is None:
            raise RuntimeError(f"auditor {auditor_id} ran out of pending items")
        submit_ms = _submit(factory, auditor_id, assignment_id)
        if index >= WARMUP_PAIRS:
            out.next_ms.append(next_ms)
            out.submit_ms.append(submit_ms)


def _floor_loop(ctx: Context, auditor_id: int, pairs: int, out: Latencies) -> None:
    with RawConnection(ctx.db) as raw:
        for index in range(pairs + WARMUP_PAIRS):
            started = time.perf_counter()
            raw.begin()
            row = raw.fetchone(
                "SELECT id, answer_id FROM assignments WHERE auditor_id = ? AND status = 'pending' "
                "ORDER BY position LIMIT 1",
                (auditor_id,),
            )
            raw.commit()
            next_ms = (time.perf_counter() - started) * 1000
            if row is None:
                raise RuntimeError(f"floor: auditor {auditor_id} has no pending item")
            started = time.perf_counter()
            raw.begin(write=True)
            raw.execute(
                "INSERT INTO ratings (answer_id, auditor_id, accuracy, completeness, relevance, coherence, "
                "sources_correct, bias_flag, rubric_version, seconds_spent, origin, is_current, created_at) "
                "VALUES (?, ?, 4, 4, 5, 4, 'yes', ?, ?, 42, 'app', ?, ?)",
                (row[1], auditor_id, False, FLOOR_MARK, False, raw.timestamp(utcnow())),
            )
            raw.commit()
            submit_ms = (time.perf_counter() - started) * 1000
            if index >= WARMUP_PAIRS:
                out.next_ms.append(next_ms)
                out.submit_ms.append(submit_ms)


def _parallel(workers: list[Callable[[], None]]) -> None:
    """Start every worker at the same moment; re-raise the first failure."""
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        try:
            barrier.wait()
            work()
        except BaseException as exc:  # noqa: BLE001 -- handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _delete_floor_rows(ctx: Context) -> None:
    with RawConnection(ctx.db) as raw:
        raw.begin(write=True)
        raw.execute("DELETE FROM ratings WHERE rubric_version = ?", (FLOOR_MARK,))
        raw.commit()


def measure(ctx: Context) -> list[Figure]:
    assert ctx.synth is not None
    pending = prepare(ctx)
    factory = ctx.session_factory()
    auditors = ctx.synth.auditor_ids[: len(ctx.synth.auditor_ids) - BROWSER_RESERVED_AUDITORS]
    n = ctx.options.concurrency
    runs = ctx.runs
    single_runs = [auditors[r] for r in range(min(runs, len(auditors)))]
    spare = auditors[len(single_runs) :]
    concurrent_runs = [spare[r * n : (r + 1) * n] for r in range(min(runs, len(spare) // n))]
    figures: list[Figure] = []

    # -- one auditor ----------------------------------------------------------------------------
    single_pairs = min([ctx.options.single_ops] + [pending.get(a, 0) - WARMUP_PAIRS for a in single_runs])
    if single_pairs < 1:
        raise RuntimeError(f"per-item: too few pending items per auditor ({single_pairs + WARMUP_PAIRS})")
    service_runs: list[Latencies] = []
    floor_runs: list[Latencies] = []
    # the floor first: it reads the auditor's next pending item without using it up
    for auditor_id in single_runs:
        floor = Latencies()
        _floor_loop(ctx, auditor_id, single_pairs, floor)
        floor_runs.append(floor)
        service = Latencies()
        _auditor_loop(factory, auditor_id, single_pairs, service)
        service_runs.append(service)
    _delete_floor_rows(ctx)
    label = "1 auditor"
    figures += _latency_figures(ctx, label, service_runs, floor_runs, single_pairs)
    ctx.progress(f"per-item ({label}): " + _line(figures[-4:]))

    # -- N auditors at once ---------------------------------------------------------------------
    if not concurrent_runs:
        ctx.note(f"not measured: next/submit with {n} auditors at once: only {len(spare)} auditors left unused")
        return figures
    concurrent_pairs = min(
        [ctx.options.concurrent_ops] + [pending.get(a, 0) - WARMUP_PAIRS for group in concurrent_runs for a in group]
    )
    if concurrent_pairs < 1:
        ctx.note(f"not measured: next/submit with {n} auditors at once: too few pending items per auditor")
        return figures
    service_runs, floor_runs = [], []
    for group in concurrent_runs:
        floor = Latencies()
        _parallel([functools.partial(_floor_loop, ctx, a, concurrent_pairs, floor) for a in group])
        floor_runs.append(floor)
        service = Latencies()
        _parallel([functools.partial(_auditor_loop, factory, a, concurrent_pairs, service) for a in group])
        service_runs.append(service)
    _delete_floor_rows(ctx)
    label = f"{n} auditors at once"
    figures += _latency_figures(ctx, label, service_runs, floor_runs, concurrent_pairs * n)
    ctx.progress(f"per-item ({label}): " + _line(figures[-4:]))
    return figures


def _line(figures: list[Figure]) -> str:
    return ", ".join(f"{f.name.split(' (')[0]} {f.median:.1f} ms (floor {f.floor or 0:.1f})" for f in figures)


def _latency_figures(
    ctx: Context, label: str, service_runs: list[Latencies], floor_runs: list[Latencies], ops: int
) -> list[Figure]:
    figures = []
    for operation, attribute, floor_name in (
        ("next item", "next_ms", "one indexed SELECT, committed"),
        ("submit rating", "submit_ms", "one INSERT, committed"),
    ):
        for q in (50, 95):
            values = [percentile(getattr(run, attribute), q) for run in service_runs]
            floors = [percentile(getattr(run, attribute), q) for run in floor_runs]
            figure = ctx.figure(
                f"{operation} p{q} ({label})",
                "ms",
                values,
                target=f"≤ {TARGET_P95_MS:g} ms" if q == 95 else "",
                notes=f"{ops} operations per run, unit of work incl. commit",
            )
            if q == 95:
                figure.met = figure.median <= TARGET_P95_MS
            figures.append(with_floor(figure, sorted(floors)[len(floors) // 2], floor_name))
    return figures
