"""Mean rating per cell with a confidence interval over answers, and the production-weighted (Hajek) mean.

Ratings of one answer are not independent (several auditors rate the same text), so the interval
treats each answer as a cluster. With answer i of a cell carrying mᵢ ratings that sum to sᵢ, over
k answers, M = Σmᵢ ratings and S = Σsᵢ:

    mean ȳ = S / M  (the mean over ratings, as before)
    Var(ȳ) = k/(k − 1) · Σᵢ (sᵢ − ȳ·mᵢ)² / M²   (the cluster-robust, "sandwich" variance of a ratio
             mean; with one rating per answer it is s²/n, the plain t-interval's)

and Σᵢ(sᵢ − ȳ·mᵢ)² = Σsᵢ² − 2ȳ·Σmᵢsᵢ + ȳ²·Σmᵢ², so the database supplies per-cell sums over
answers (k, M, S, Σsᵢ², Σmᵢ², Σmᵢsᵢ) and no rating is loaded row by row.

The interval is built on the logit scale of p = (ȳ − 1)/4, the mean's place on the 1–5 scale:
logit(p) ± t_{(1+c)/2, k−1} · se(ȳ) / (4·p·(1 − p)) (the delta method), mapped back. So it never
leaves 1–5, however few or extreme the ratings (a symmetric interval on 3 ratings of 1, 4 and 5
reached −1.84 to 8.50), and for many answers it is the usual mean ± t·se. Cells where every rating
is the same end of the scale get the point itself. Below MIN_INTERVAL_ANSWERS answers a cell has no
interval: with so few clusters the variance is not worth printing (the report says so instead).

A cluster bootstrap would give the same kind of answer-level interval, but resampling the answers of
a month's cells (numpy, 2,880 cells of ~200 answers, 1,000 replicates) took 13 s on this project's
shared two-core machine, against a 1 s budget for the report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

SCALE_LOW, SCALE_HIGH = 1.0, 5.0
MIN_INTERVAL_ANSWERS = 5  # answers (not ratings) a cell needs before it shows an interval


def clustered_interval(
    clusters: Sequence[Sequence[float]], *, confidence: float = 0.95, min_answers: int = MIN_INTERVAL_ANSWERS
) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high) over ratings grouped by answer: ``clusters`` holds each answer's ratings.

    The reference form of :func:`summarize_cells` (same arithmetic, one cell); None where undefined:
    everything for no ratings, the interval for fewer than ``min_answers`` answers.
    """
    rated = [list(c) for c in clusters if len(c) > 0]
    sizes = np.array([len(c) for c in rated], dtype=float)
    sums = np.array([sum(c) for c in rated], dtype=float)
    cell = pd.DataFrame(
        {
            "n": [sizes.sum()],
            "answers": [len(rated)],
            "total": [sums.sum()],
            "cluster_sq": [(sums**2).sum()],
            "size_sq": [(sizes**2).sum()],
            "cross": [(sizes * sums).sum()],
            "weighted_total": [0.0],
            "weight_total": [0.0],
        }
    )
    row = summarize_cells(cell, confidence=confidence, min_answers=min_answers).iloc[0]
    return tuple(None if np.isnan(row[name]) else float(row[name]) for name in ("mean", "ci_low", "ci_high"))  # type: ignore[return-value]


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


def summarize_cells(
    cells: pd.DataFrame, *, confidence: float = 0.95, min_answers: int = MIN_INTERVAL_ANSWERS
) -> pd.DataFrame:
    """Means, answer-level intervals and weighted means for cells of sums over answers.

    ``cells`` holds one row per cell with ``n`` (ratings, M), ``answers`` (k), ``total`` (S),
    ``cluster_sq`` (Σsᵢ²), ``size_sq`` (Σmᵢ²), ``cross`` (Σmᵢsᵢ), ``weighted_total`` (Σ w·y) and
    ``weight_total`` (Σ w); any other columns (the cell's keys) are kept. Adds ``mean``, ``ci_low``,
    ``ci_high`` (see the module docstring; NaN below ``min_answers`` answers), ``too_few_answers``
    and ``weighted_mean`` = weighted_total / weight_total (:func:`hajek_mean`); NaN where undefined.
    """
    out = cells.copy()
    n = out["n"].to_numpy(dtype=float)
    k = out["answers"].to_numpy(dtype=float)
    width = SCALE_HIGH - SCALE_LOW
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, out["total"].to_numpy(dtype=float) / n, np.nan)
        residual = (
            out["cluster_sq"].to_numpy(dtype=float)
            - 2 * mean * out["cross"].to_numpy(dtype=float)
            + mean * mean * out["size_sq"].to_numpy(dtype=float)
        )
        # clipped at 0 against rounding in the expanded sum of squares
        se = np.sqrt(k / (k - 1) * np.clip(residual, 0.0, None) / (n * n))
        shown = (k >= max(min_answers, 2)) & (n > 0)
        t_critical = stats.t.ppf((1 + confidence) / 2, np.where(shown, k - 1, np.nan))
        p = (mean - SCALE_LOW) / width
        inside = shown & (p > 0) & (p < 1)
        centre = special.logit(np.where(inside, p, 0.5))
        half_width = t_critical * se / (width * np.where(inside, p * (1 - p), 1.0))
        low = np.where(inside, SCALE_LOW + width * special.expit(centre - half_width), mean)
        high = np.where(inside, SCALE_LOW + width * special.expit(centre + half_width), mean)
        weight_total = out["weight_total"].to_numpy(dtype=float)
        weighted_mean = np.where(weight_total > 0, out["weighted_total"].to_numpy(dtype=float) / weight_total, np.nan)
    out["mean"] = mean
    out["ci_low"] = np.where(shown, low, np.nan)
    out["ci_high"] = np.where(shown, high, np.nan)
    out["too_few_answers"] = (n > 0) & ~shown
    out["weighted_mean"] = weighted_mean
    return out
