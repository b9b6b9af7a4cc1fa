"""Quality measures against hand-computed t-intervals and Hajek means."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from audit.measures.quality import hajek_mean, summarize_cells, t_interval

T_975_2 = 4.302652729911275  # t-table: two-sided 95 %, 2 degrees of freedom
T_975_3 = 3.182446305284263  # 3 degrees of freedom


def test_t_interval_by_hand() -> None:
    # ratings 3, 4, 5: mean 4, s = 1, half-width = t(0.975, 2) · 1 / √3
    mean, low, high = t_interval(3, 12, 9 + 16 + 25)
    assert mean == pytest.approx(4.0)
    assert low == pytest.approx(4.0 - T_975_2 / math.sqrt(3))
    assert high == pytest.approx(4.0 + T_975_2 / math.sqrt(3))


def test_t_interval_edges() -> None:
    assert t_interval(0, 0, 0) == (None, None, None)
    assert t_interval(1, 5, 25) == (5.0, None, None)
    # no spread: the interval collapses onto the mean
    assert t_interval(4, 12, 36) == (3.0, 3.0, 3.0)


def test_hajek_mean_by_hand() -> None:
    # (1·2 + 3·4 + 2·5) / (1 + 3 + 2) = 24 / 6
    assert hajek_mean([2, 4, 5], [1, 3, 2]) == pytest.approx(4.0)
    assert hajek_mean([], []) is None


def test_summarize_cells_matches_the_scalar_formulas() -> None:
    values = [2.0, 5.0, 4.0, 4.0]
    weights = [1.0, 2.0, 0.5, 4.0]
    cells = pd.DataFrame(
        {
            "key": ["a", "b", "c"],
            "n": [4, 1, 0],
            "total": [sum(values), 3.0, 0.0],
            "total_sq": [sum(v * v for v in values), 9.0, 0.0],
            "weighted_total": [sum(w * v for w, v in zip(weights, values, strict=True)), 6.0, 0.0],
            "weight_total": [sum(weights), 2.0, 0.0],
        }
    )
    out = summarize_cells(cells)
    first = out.iloc[0]
    mean, low, high = t_interval(4, sum(values), sum(v * v for v in values))
    assert (first["mean"], first["ci_low"], first["ci_high"]) == pytest.approx((mean, low, high))
    # s² = ((4 + 25 + 16 + 16) − 15²/4) / 3 = 4.75/3 → half-width = t(0.975, 3)·√(4.75/3/4)
    assert first["ci_high"] - first["mean"] == pytest.approx(T_975_3 * math.sqrt(4.75 / 3 / 4))
    assert first["weighted_mean"] == pytest.approx(hajek_mean(values, weights))
    single = out.iloc[1]
    assert single["mean"] == 3.0 and np.isnan(single["ci_low"]) and single["weighted_mean"] == 3.0
    assert np.isnan(out.iloc[2]["mean"]) and np.isnan(out.iloc[2]["weighted_mean"])
    assert list(out["key"]) == ["a", "b", "c"]
