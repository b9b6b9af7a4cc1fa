"""What a scenario gets: the database under test, its scale, the synthetic data's ids, options, progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.bench.databases import BenchDatabase
from app.bench.harness import Figure, summarise
from app.bench.synth import SynthResult
from audit.db import make_session_factory

Progress = Callable[[str], None]


def stderr_progress(prefix: str = "bench") -> Progress:
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{prefix} {time.perf_counter() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    return say


@dataclass
class BenchOptions:
    scales: list[int]
    backends: list[str]
    runs: int = 3
    postgres_url: str | None = None
    skip: frozenset[str] = frozenset()
    concurrency: int = 10  # auditors submitting at once
    single_ops: int = 30  # next+submit pairs per run, one auditor
    concurrent_ops: int = 20  # next+submit pairs per auditor per run, N auditors
    large_ingest_runs: int = 1  # runs of the ingest figure at 1M answers and above (each is a full load)
    browser_ops: int = 15  # submit -> next round trips per browser run
    work_dir: Path | None = None  # where temporary files go (default: the system's temp dir)


@dataclass
class Context:
    db: BenchDatabase
    engine: Engine | None  # None for the scenarios that make their own databases (ingest) or use none
    scale: int
    scale_label: str
    options: BenchOptions
    progress: Progress
    synth: SynthResult | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # "not measured: <why>" lines for the report (the bench collects them; alone, they go to progress)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.progress(text)

    @property
    def backend(self) -> str:
        return self.db.backend

    @property
    def runs(self) -> int:
        return self.options.runs

    def session_factory(self) -> sessionmaker[Session]:
        if self.engine is None:
            raise RuntimeError("this scenario was given no database")
        return make_session_factory(self.engine)

    def session(self) -> Session:
        return self.session_factory()()

    def figure(self, name: str, unit: str, values: list[float], **fields: Any) -> Figure:
        """A figure from one value per run (median, min, max)."""
        median, minimum, maximum = summarise(values)
        return Figure(
            name=name,
            scale=self.scale_label,
            db=self.backend,
            unit=unit,
            median=median,
            minimum=minimum,
            maximum=maximum,
            runs=len(values),
            **fields,
        )
