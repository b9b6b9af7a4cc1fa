"""The daily sample: ``draw_sample`` (draw and assign, as ``auditloop sample`` does) over the freshest
day of answers, vs the raw driver reading that day's sampling frame. Each run is rolled back, so every
run draws the same day from the same state."""

from __future__ import annotations

import datetime as dt
import statistics
import time

from app.bench.context import Context
from app.bench.harness import Figure, with_floor
from app.bench.raw import RawConnection
from audit.sampling import service as sampling_service

TARGET_SECONDS = 1.0


def measure(ctx: Context) -> list[Figure]:
    assert ctx.synth is not None
    sample_date = ctx.synth.anchor.date()
    start = dt.datetime.combine(sample_date - dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    times: list[float] = []
    population = items = 0
    for _ in range(ctx.runs):
        session = ctx.session()
        try:
            started = time.perf_counter()
            summary = sampling_service.draw_sample(session, actor=None, sample_date=sample_date)
            times.append(time.perf_counter() - started)
            population, items = summary.population, summary.items
        finally:
            session.rollback()
            session.close()
    floor_times = []
    with RawConnection(ctx.db) as raw:
        for _ in range(ctx.runs):
            started = time.perf_counter()
            raw.begin()
            rows = raw.fetchall(
                "SELECT id, asker_department_id, confidence FROM answers WHERE created_at >= ? AND created_at < ?",
                (raw.timestamp(start), raw.timestamp(end)),
            )
            raw.commit()
            floor_times.append(time.perf_counter() - started)
    figure = ctx.figure(
        "draw the day's sample",
        "s",
        times,
        target=f"≤ {TARGET_SECONDS:g} s",
        notes=f"{population:,} answers in the day ({len(rows):,} read by the floor), {items} items drawn and "
        "assigned; rolled back",
    )
    figure.met = figure.median <= TARGET_SECONDS
    ctx.progress(f"sampling: {population:,} answers in the day, {items} items drawn, median {figure.median:.3f} s")
    floor = statistics.median(floor_times)
    return [with_floor(figure, floor, "raw SELECT of the day's (id, department, confidence)")]
