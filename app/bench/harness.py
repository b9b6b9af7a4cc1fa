"""Figures, repeated timings and their floors: what every bench scenario reports.

A figure is the median of several runs with min and max. Beside it stands the floor measured in the
same run (the raw driver for ingest, one indexed SELECT + INSERT for next/submit, a minimal Streamlit
app for the browser) and the ratio between them: machines are noisy, ratios much less so.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    name: str  # e.g. "ingest answers"
    scale: str  # e.g. "1M"
    db: str  # sqlite | postgres | -
    unit: str  # "rows/s", "ms", "s", "x", "%"
    median: float
    minimum: float
    maximum: float
    runs: int
    target: str = ""  # the target, in words, e.g. "≥ 50% of raw driver"
    floor: float | None = None  # the raw floor measured in the same run, same unit
    floor_name: str = ""
    ratio: float | None = None  # median / floor (or floor / median for times: see `higher_is_better`)
    higher_is_better: bool = False
    met: bool | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list: the value at rank ceil(q/100 · n)."""
    ordered = sorted(values)
    # q·n/100 rather than q/100·n keeps whole ranks exact (95 · 20 / 100 is 19, not 19.000000000000004)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) / 100 - 1e-9)))
    return ordered[rank - 1]


def repeat(fn: Callable[[], Any], runs: int) -> list[float]:
    """Wall-clock seconds of each of ``runs`` calls."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def with_floor(
    figure: Figure,
    floor: float | None,
    floor_name: str,
    *,
    min_ratio: float | None = None,
    max_ratio: float | None = None,
) -> Figure:
    """Attach a floor and the ratio median/floor; ``met`` from the ratio bounds when given."""
    figure.floor = floor
    figure.floor_name = floor_name
    if floor:
        figure.ratio = figure.median / floor
        checks = []
        if min_ratio is not None:
            checks.append(figure.ratio >= min_ratio)
        if max_ratio is not None:
            checks.append(figure.ratio <= max_ratio)
        if checks:
            figure.met = all(checks) if figure.met is None else figure.met and all(checks)
    return figure
