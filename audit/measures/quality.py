"""Mean rating per cell with a t confidence interval, and the production-weighted (Hajek) mean.

The database supplies per-cell sufficient statistics (n, Σy, Σy², and the weighted sums); these
functions turn them into means and intervals, so no rating is ever loaded row by row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def t_interval(
    n: int, total: float, total_sq: float, *, confidence: float = 0.95
) -> tuple[float | None, float | None, float | None]:
    """Mean and two-sided t confidence interval from the sufficient statistics of a sample.

    mean = Σy / n;  s² = (Σy² − (Σy)²/n) / (n − 1);  half-width = t_{(1+c)/2, n−1} · s / √n.
    Returns (mean, low, high); the interval is (None, None) for n < 2 and everything is None for
    n = 0. The variance is clipped at 0 against rounding in Σy² − (Σy)²/n.
    """
    if n <= 0:
        return None, None, None
    mean = total / n
    if n < 2:
        return mean, None, None
    variance = max((total_sq - total * total / n) / (n - 1), 0.0)
    half_width = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * math.sqrt(variance / n)
    return mean, mean - half_width, mean + half_width


def hajek_mean(values: Sequence[float], weights: Sequence[float]) -> float | None:
    """Hajek (ratio) estimator of a population mean from a weighted sample.

    ȳ_w = Σ wᵢ·yᵢ / Σ wᵢ, with wᵢ = 1/πᵢ the inverse inclusion probability of unit i: the
    Horvitz–Thompson total Σ wᵢ·yᵢ divided by the estimated population size Σ wᵢ, slightly
    biased but far more stable than dividing by a known N when the sample size is random.
    Applied to ratings, each rating carries its answer's weight; an answer rated by k auditors
    counts k times, which leaves the estimate consistent because the overlap is drawn
    independently of quality.
    """
    w = np.asarray(weights, dtype=float)
    y = np.asarray(values, dtype=float)
    denominator = w.sum()
    if w.size == 0 or denominator <= 0:
        return None
    return float((w * y).sum() / denominator)


def summarize_cells(cells: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Means, intervals and weighted means for cells of sufficient statistics.

    ``cells`` holds one row per cell with columns ``n``, ``total`` (Σy), ``total_sq`` (Σy²),
    ``weighted_total`` (Σ w·y) and ``weight_total`` (Σ w); any other columns (the cell's keys)
    are kept. Adds ``mean``, ``ci_low``, ``ci_high`` (see :func:`t_interval`) and
    ``weighted_mean`` = weighted_total / weight_total (:func:`hajek_mean`); NaN where undefined.
    """
    out = cells.copy()
    n = out["n"].to_numpy(dtype=float)
    total = out["total"].to_numpy(dtype=float)
    total_sq = out["total_sq"].to_numpy(dtype=float)
    # the same arithmetic as t_interval, vectorised: one ppf call for all cells
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, total / n, np.nan)
        variance = np.clip((total_sq - total * total / n) / (n - 1), 0.0, None)
        t_critical = stats.t.ppf((1 + confidence) / 2, np.where(n >= 2, n - 1, np.nan))
        half_width = np.where(n >= 2, t_critical * np.sqrt(variance / n), np.nan)
        weight_total = out["weight_total"].to_numpy(dtype=float)
        weighted_mean = np.where(weight_total > 0, out["weighted_total"].to_numpy(dtype=float) / weight_total, np.nan)
    out["mean"] = mean
    out["ci_low"] = mean - half_width
    out["ci_high"] = mean + half_width
    out["weighted_mean"] = weighted_mean
    return out
