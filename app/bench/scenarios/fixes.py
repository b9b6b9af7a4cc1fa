"""The data side of the loop: writing a dataset version of every active example
(``knowledge.datasets.create_version``), applying 1,000 proposed fixes, which adds their examples and
writes the next version (``fixes.service.apply_fixes``), and exporting a version as JSONL
(``knowledge.export.export_version``). Writes are rolled back after each run so runs are alike; the
first version is then committed for the export."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from app.bench.context import Context
from app.bench.harness import Figure, with_floor
from app.bench.raw import RawConnection
from audit.fixes import service as fixes_service
from audit.fixes.models import DataFix
from audit.knowledge import datasets
from audit.knowledge import export as knowledge_export
from audit.knowledge.models import Example

FIXES = 1_000
FULL_EXAMPLES = 100_000  # the workload: its targets are stated for this many examples
APPLY_TARGET_S = 10.0
EXPORT_TARGET_S = 5.0


def measure(ctx: Context) -> list[Figure]:
    figures = [_version_write(ctx)]
    figures.append(_apply_fixes(ctx))
    figures.append(_export(ctx))
    return figures


def _active_examples(ctx: Context) -> int:
    with ctx.session() as session:
        return int(session.scalar(select(func.count()).where(Example.status == "active")) or 0)


def _version_write(ctx: Context) -> Figure:
    examples = _active_examples(ctx)
    times = []
    for _ in range(ctx.runs):
        session = ctx.session()
        try:
            started = time.perf_counter()
            version, created = datasets.create_version(session, actor=None, change_log=[{"bench": "snapshot"}])
            session.flush()
            times.append(time.perf_counter() - started)
            assert created and version.example_count == examples
        finally:
            session.rollback()
            session.close()
    figure = ctx.figure(
        "write a dataset version",
        "s",
        times,
        notes=f"{examples:,} active examples (hash, counts, membership rows); rolled back",
    )
    ctx.progress(f"dataset version of {examples:,} examples: {figure.median:.2f} s")
    return figure


def _apply_fixes(ctx: Context) -> Figure:
    with ctx.session() as session:
        fix_ids = list(
            session.scalars(
                select(DataFix.id)
                .where(DataFix.status == "proposed", DataFix.kind == "add_example")
                .order_by(DataFix.id)
                .limit(FIXES)
            )
        )
    examples = _active_examples(ctx)
    times = []
    applied = 0
    for _ in range(ctx.runs):
        session = ctx.session()
        try:
            started = time.perf_counter()
            report = fixes_service.apply_fixes(session, actor=None, fix_ids=fix_ids, note="bench")
            session.flush()
            times.append(time.perf_counter() - started)
            applied = len(report.applied)
        finally:
            session.rollback()
            session.close()
    full = len(fix_ids) >= FIXES and examples >= FULL_EXAMPLES
    figure = ctx.figure(
        "apply fixes + write the version",
        "s",
        times,
        target=f"≤ {APPLY_TARGET_S:g} s for {FIXES:,} fixes and {FULL_EXAMPLES // 1000}k examples",
        notes=f"{len(fix_ids):,} add_example fixes ({applied:,} applied) onto {examples:,} examples; rolled back"
        + ("" if full else "; smaller than the target's workload, so not judged"),
    )
    figure.met = figure.median <= APPLY_TARGET_S if full else None
    ctx.progress(f"apply {len(fix_ids):,} fixes: {figure.median:.2f} s")
    return figure


def _export(ctx: Context) -> Figure:
    session = ctx.session()
    try:
        version, _ = datasets.create_version(session, actor=None, change_log=[{"bench": "export"}])
        session.commit()
        number, examples, version_id = version.number, version.example_count, version.id
    finally:
        session.close()
    directory = Path(tempfile.mkdtemp(prefix="auditloop-bench-export-", dir=ctx.options.work_dir))
    try:
        times = []
        size = 0
        for run in range(ctx.runs):
            session = ctx.session()
            try:
                summary = knowledge_export.export_version(session, number=number, out=directory / f"v{run}.jsonl")
                times.append(summary.seconds)
                size = summary.bytes
            finally:
                session.close()
        floor_times = [_export_floor(ctx, version_id, directory / f"floor{run}.jsonl") for run in range(ctx.runs)]
    finally:
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()
    full = examples >= FULL_EXAMPLES
    figure = ctx.figure(
        "export a version as JSONL",
        "s",
        times,
        target=f"≤ {EXPORT_TARGET_S:g} s for {FULL_EXAMPLES // 1000}k examples",
        notes=f"{examples:,} examples, {size / 1e6:.1f} MB"
        + ("" if full else "; smaller than the target's workload, so not judged"),
    )
    figure.met = figure.median <= EXPORT_TARGET_S if full else None
    ctx.progress(f"export {examples:,} examples: {figure.median:.2f} s")
    return with_floor(figure, statistics.median(floor_times), "raw SELECT of the rows + json.dumps to a file, fsynced")


def _export_floor(ctx: Context, version_id: int, out: Path) -> float:
    started = time.perf_counter()
    with RawConnection(ctx.db) as raw:
        raw.begin()
        rows = raw.fetchall(
            "SELECT e.question, e.answer, d.name FROM dataset_version_examples m "
            "JOIN examples e ON e.id = m.example_id JOIN departments d ON d.id = e.department_id "
            "WHERE m.dataset_version_id = ? ORDER BY e.id",
            (version_id,),
        )
        raw.commit()
    with out.open("w", encoding="utf-8") as fh:
        for question, answer, department in rows:
            record = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
            fh.write(json.dumps({**record, "department": department}, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return time.perf_counter() - started
