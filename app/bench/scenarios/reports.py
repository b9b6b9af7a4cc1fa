"""Each report's time (``audit.measures.service``) over the dashboards' default window, the last 30
days, vs the raw driver scanning the same ratings once (one aggregate over the window)."""

from __future__ import annotations

import datetime as dt
import statistics
import time

from app.bench.context import Context
from app.bench.harness import Figure, with_floor
from app.bench.raw import RawConnection
from audit.measures import service as measures_service

TARGET_SECONDS = 1.0
WINDOW_DAYS = 30  # app/components/report_filters.py DEFAULT_DAYS


def measure(ctx: Context) -> list[Figure]:
    assert ctx.synth is not None
    last_day = ctx.synth.last_day
    filters = measures_service.ReportFilters(date_from=last_day - dt.timedelta(days=WINDOW_DAYS - 1), date_to=last_day)
    start = dt.datetime.combine(filters.date_from or last_day, dt.time(0), tzinfo=dt.UTC)
    end = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
    floor_times = []
    with RawConnection(ctx.db) as raw:
        for _ in range(ctx.runs):
            started = time.perf_counter()
            raw.begin()
            count, _mean = raw.fetchone(
                "SELECT COUNT(*), AVG(accuracy) FROM ratings WHERE is_current = ? AND created_at >= ? AND created_at < ?",
                (True, raw.timestamp(start), raw.timestamp(end)),
            )
            raw.commit()
            floor_times.append(time.perf_counter() - started)
    floor = statistics.median(floor_times)
    figures = []
    for name in measures_service.REPORT_NAMES:
        times = []
        for _ in range(ctx.runs):
            session = ctx.session()
            try:
                started = time.perf_counter()
                measures_service.report(session, actor=None, name=name, filters=filters)
                times.append(time.perf_counter() - started)
            finally:
                session.rollback()
                session.close()
        figure = ctx.figure(
            f"report: {name}",
            "s",
            times,
            target=f"≤ {TARGET_SECONDS:g} s",
            notes=f"last {WINDOW_DAYS} days ({count:,} current ratings in the window)",
        )
        figure.met = figure.median <= TARGET_SECONDS
        figures.append(with_floor(figure, floor, "raw COUNT/AVG scan of the window's ratings"))
        ctx.progress(f"report {name}: {figure.median:.3f} s")
    return figures
