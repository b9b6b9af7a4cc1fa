"""Quality measures against hand-computed answer-level (clustered) intervals and Hajek means."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from audit.measures.quality import MIN_INTERVAL_ANSWERS, clustered_interval, hajek_mean, summarize_cells

T_975_4 = 2.7764451051977987  # t-table: two-sided 95 %, 4 degrees of freedom


def logit_half_width(mean: float, low: float, high: float) -> tuple[float, float]:
    """(half-width, centre) of an interval on the logit scale of (y − 1)/4."""

    def logit(y: float) -> float:
        p = (y - 1) / 4
        return math.log(p / (1 - p))

    return (logit(high) - logit(low)) / 2, (logit(high) + logit(low)) / 2


def test_a_clustered_interval_by_hand() -> None:
    # five answers: A rated 5, 5; B 4, 4, 4; C 2; D 3, 1; E 4.  M = 9 ratings, S = 32, mean 32/9.
    # residuals sᵢ − ȳ·mᵢ in ninths: 26, 12, −14, −28, 4 → Σ = 1816/81;
    # Var = k/(k−1) · Σ / M² = 5/4 · (1816/81) / 81 = 9080/26244
    mean, low, high = clustered_interval([[5, 5], [4, 4, 4], [2], [3, 1], [4]])
    assert mean == pytest.approx(32 / 9)
    assert low is not None and high is not None and 1 < low < mean < high < 5
    p = (32 / 9 - 1) / 4
    half, centre = logit_half_width(mean, low, high)
    assert centre == pytest.approx(math.log(p / (1 - p)))
    assert half == pytest.approx(T_975_4 * math.sqrt(9080 / 26244) / (4 * p * (1 - p)))


def test_clustering_widens_the_interval_against_counting_ratings_as_independent() -> None:
    # the same nine ratings as one answer each: Var = s²/n = (128/72)/9, as the plain t-interval has
    clusters = [[5, 5], [4, 4, 4], [2], [3, 1], [4]]
    flat = [[y] for c in clusters for y in c]
    clustered = clustered_interval(clusters)
    independent = clustered_interval(flat)
    p = (32 / 9 - 1) / 4
    half, _ = logit_half_width(*independent)  # type: ignore[arg-type]
    t_975_8 = 2.3060041350333704
    assert half == pytest.approx(t_975_8 * math.sqrt(128 / 72 / 9) / (4 * p * (1 - p)))
    assert clustered[2] - clustered[1] > independent[2] - independent[1]  # type: ignore[operator]


def test_intervals_stay_on_the_scale_and_small_cells_have_none() -> None:
    # issue 20: ratings 1, 4 and 5 gave −1.84 to 8.50 as a t-interval; 3 answers now show none
    assert clustered_interval([[1], [4], [5]]) == (pytest.approx(10 / 3), None, None)
    assert MIN_INTERVAL_ANSWERS == 5
    rng = np.random.default_rng(7)
    for _ in range(200):
        clusters = [list(rng.integers(1, 6, size=rng.integers(1, 4))) for _ in range(rng.integers(5, 9))]
        mean, low, high = clustered_interval(clusters)
        assert low is not None and high is not None
        assert 1 <= low <= mean <= high <= 5  # type: ignore[operator]
    # every rating at the top of the scale: the point itself; none at all: nothing
    assert clustered_interval([[5]] * 6) == (5.0, 5.0, 5.0)
    assert clustered_interval([]) == (None, None, None)


def test_hajek_mean_by_hand() -> None:
    # (1·2 + 3·4 + 2·5) / (1 + 3 + 2) = 24 / 6
    assert hajek_mean([2, 4, 5], [1, 3, 2]) == pytest.approx(4.0)
    assert hajek_mean([], []) is None


def test_summarize_cells_keeps_keys_and_marks_cells_with_too_few_answers() -> None:
    six = [[2], [5, 4], [4], [3, 3], [1], [5]]
    sizes = np.array([len(c) for c in six], dtype=float)
    sums = np.array([sum(c) for c in six], dtype=float)
    cells = pd.DataFrame(
        {
            "key": ["a", "b", "c"],
            "n": [sizes.sum(), 2.0, 0.0],
            "answers": [6, 1, 0],
            "total": [sums.sum(), 8.0, 0.0],
            "cluster_sq": [(sums**2).sum(), 64.0, 0.0],
            "size_sq": [(sizes**2).sum(), 4.0, 0.0],
            "cross": [(sizes * sums).sum(), 16.0, 0.0],
            "weighted_total": [10.0, 6.0, 0.0],
            "weight_total": [4.0, 2.0, 0.0],
        }
    )
    out = summarize_cells(cells)
    first = out.iloc[0]
    assert (first["mean"], first["ci_low"], first["ci_high"]) == pytest.approx(clustered_interval(six))
    assert not first["too_few_answers"] and first["weighted_mean"] == pytest.approx(2.5)
    single = out.iloc[1]
    assert single["mean"] == 4.0 and np.isnan(single["ci_low"]) and single["too_few_answers"]
    assert np.isnan(out.iloc[2]["mean"]) and not out.iloc[2]["too_few_answers"]
    assert list(out["key"]) == ["a", "b", "c"]
