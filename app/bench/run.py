"""Run the whole bench: for each database and scale, a fresh database filled by the synthesizer and
every scenario over it; the browser at the largest scale on SQLite; training and generation once.

Returns one JSON-ready document (see :mod:`app.bench.report` for the files written from it).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from app.bench import machine
from app.bench.choices import SCALE_SCENARIOS, scale_label
from app.bench.context import BenchOptions, Context, Progress, stderr_progress
from app.bench.databases import BenchDatabase, bench_database, postgres_reachable
from app.bench.harness import Figure
from app.bench.synth import synthesize

GROWTH_TARGET = 1.5


def _scenario(name: str) -> Callable[[Context], list[Figure]]:
    if name == "ingest":
        from app.bench.scenarios import ingest

        return ingest.measure
    if name == "sampling":
        from app.bench.scenarios import sampling

        return sampling.measure
    if name == "reports":
        from app.bench.scenarios import reports

        return reports.measure
    if name == "fixes":
        from app.bench.scenarios import fixes

        return fixes.measure
    if name == "per-item":
        from app.bench.scenarios import per_item

        return per_item.measure
    if name == "browser":
        from app.bench.scenarios import browser

        return browser.measure
    from app.bench.scenarios import training

    return training.measure


def _unavailable(name: str) -> str | None:
    """Why a scenario cannot run in this build (a service it measures is missing), or None."""
    if name == "ingest":
        from app.bench.scenarios import ingest

        return ingest.unavailable()
    if name == "browser":
        from app.bench.scenarios import browser

        return browser.unavailable()
    return None


class Bench:
    def __init__(self, options: BenchOptions, progress: Progress) -> None:
        self.options = options
        self.progress = progress
        self.figures: list[Figure] = []
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.progress(text)

    def attempt(self, name: str, where: str, ctx: Context) -> None:
        """Run one scenario; a failure is reported as "not measured" with its reason, never as a number."""
        reason = _unavailable(name)
        if reason is not None:
            self.note(f"not measured: {name} ({where}): {reason}")
            return
        self.progress(f"{name} ({where})")
        noted = len(ctx.notes)
        try:
            self.figures += _scenario(name)(ctx)
        except Exception as exc:  # a broken scenario must not lose the figures of the others
            traceback.print_exc(file=sys.stderr)
            self.notes.append(f"not measured: {name} ({where}): {type(exc).__name__}: {exc}".splitlines()[0])
        finally:
            self.notes += [f"{text} ({where})" for text in ctx.notes[noted:]]

    def run_scale(self, backend: str, answers: int, *, browser: bool) -> None:
        options = self.options
        label = scale_label(answers)
        where = f"{backend}, {label}"
        if "ingest" not in options.skip:
            placeholder = BenchDatabase(backend, "")  # ingest makes a fresh database per run
            ctx = Context(
                db=placeholder, engine=None, scale=answers, scale_label=label, options=options, progress=self.progress
            )
            self.attempt("ingest", where, ctx)
        wanted = [s for s in SCALE_SCENARIOS[1:] if s not in options.skip]
        if not wanted and not browser:
            return
        with bench_database(backend, postgres_url=options.postgres_url, label=label.replace(".", "_")) as db:
            engine = db.engine(pool_size=max(10, options.concurrency + 2))
            try:
                self.progress(f"synthesizing {answers:,} answers ({where})")
                synth = synthesize(engine, answers=answers, progress=lambda m: self.progress(f"synth: {m}"))
                self.progress(
                    f"synthesized {synth.answers:,} answers, {synth.ratings:,} ratings, {synth.examples:,} examples "
                    f"in {synth.seconds:.1f} s"
                )
                ctx = Context(
                    db=db,
                    engine=engine,
                    scale=answers,
                    scale_label=label,
                    options=options,
                    progress=self.progress,
                    synth=synth,
                )
                ctx.extras["synth_seconds"] = synth.seconds
                for name in wanted:
                    self.attempt(name, where, ctx)
                if browser:
                    self.attempt("browser", where, ctx)
            finally:
                engine.dispose()

    def run(self) -> dict[str, Any]:
        options = self.options
        started = time.perf_counter()
        load_at_start = machine.load_average()
        backends = list(options.backends)
        if "postgres" in backends:
            reason = postgres_reachable(options.postgres_url or "")
            if reason is not None:
                self.note(f"not measured: every PostgreSQL figure: cannot connect to {options.postgres_url}: {reason}")
                backends.remove("postgres")
        scales = sorted(set(options.scales))
        browser_backend = "sqlite" if "sqlite" in backends else None
        if "browser" not in options.skip and browser_backend is None:
            self.note(
                "not measured: browser: it runs on SQLite only (one Streamlit process over the embedded database)"
            )
        for backend in backends:
            for answers in scales:
                self.run_scale(
                    backend,
                    answers,
                    browser=backend == browser_backend and answers == scales[-1] and "browser" not in options.skip,
                )
        if "training" not in options.skip:
            placeholder = BenchDatabase("-", "")
            ctx = Context(
                db=placeholder, engine=None, scale=0, scale_label="-", options=options, progress=self.progress
            )
            self.attempt("training", "once", ctx)
        growth = growth_figures(self.figures, [scale_label(s) for s in scales])
        described = machine.describe(options.postgres_url if "postgres" in backends else None)
        described["load_average_at_start"] = load_at_start
        return {
            "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 1),
            "machine": described,
            "options": {
                "scales": [scale_label(s) for s in scales],
                "databases": backends,
                "runs": options.runs,
                "skip": sorted(options.skip),
                "concurrency": options.concurrency,
                "single_ops": options.single_ops,
                "concurrent_ops": options.concurrent_ops,
            },
            "figures": [f.to_dict() for f in self.figures],
            "growth": growth,
            "notes": self.notes,
        }


def growth_figures(figures: list[Figure], scale_labels: list[str]) -> list[dict[str, Any]]:
    """For each per-item figure (next/submit, p50/p95): its value at the largest scale over the smallest."""
    if len(scale_labels) < 2:
        return []
    smallest, largest = scale_labels[0], scale_labels[-1]
    by_key = {(f.name, f.db, f.scale): f for f in figures}
    rows = []
    for f in figures:
        if f.scale != smallest or not f.name.startswith(("next item", "submit rating")):
            continue
        big = by_key.get((f.name, f.db, largest))
        if big is None or not f.median:
            continue
        growth = big.median / f.median
        judged = " p95 " in f" {f.name} "
        rows.append(
            {
                "name": f.name,
                "db": f.db,
                "smallest_scale": smallest,
                "largest_scale": largest,
                "smallest": f.median,
                "largest": big.median,
                "unit": f.unit,
                "growth": growth,
                "target": f"≤ {GROWTH_TARGET:g}×" if judged else "",
                "met": (growth <= GROWTH_TARGET) if judged else None,
            }
        )
    return rows


def run_bench(options: BenchOptions, progress: Progress | None = None) -> dict[str, Any]:
    return Bench(options, progress or stderr_progress()).run()
