"""Agreement against Krippendorff's published example, scikit-learn's kappa, and a hand-computed kappa."""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pytest

from audit.measures.agreement import (
    agreement,
    alpha,
    quadratic_kappa,
    quadratic_kappa_from_confusion,
    value_counts_from_matrix,
)

nan = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 coders × 12 units
# (rows coders). Published: nominal α = 0.743, ordinal α = 0.815, interval α = 0.849 — the
# krippendorff package's own tests assert 0.815 for ordinal on the same data.
PUBLISHED = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]


def published_units_by_coders() -> np.ndarray:
    return np.array(PUBLISHED, dtype=float).T


@pytest.mark.parametrize(("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_reproduces_krippendorffs_published_example(level: str, expected: float) -> None:
    counts = value_counts_from_matrix(published_units_by_coders())
    assert round(alpha(counts, level=level), 3) == expected  # type: ignore[arg-type]
    # and equals the package fed the reliability data directly
    assert alpha(counts, level=level) == pytest.approx(  # type: ignore[arg-type]
        krippendorff.alpha(reliability_data=PUBLISHED, level_of_measurement=level)
    )


def long_frame(units_by_coders: np.ndarray, dimension: str = "accuracy") -> pd.DataFrame:
    rows = [
        {"answer_id": unit, "auditor": f"coder{coder}", dimension: value}
        for unit, row in enumerate(units_by_coders)
        for coder, value in enumerate(row)
        if not np.isnan(value)
    ]
    return pd.DataFrame(rows)


def test_agreement_from_a_long_frame_matches_the_published_example() -> None:
    by_dimension, pairs = agreement(long_frame(published_units_by_coders()), dimensions=["accuracy"])
    result = by_dimension["accuracy"]
    assert round(result.alpha_ordinal, 3) == 0.815  # type: ignore[arg-type]
    assert round(result.alpha_interval, 3) == 0.849  # type: ignore[arg-type]
    # unit 12 has a single value: unpairable, left out; the other 11 units hold 40 values
    assert result.items == 11
    assert result.ratings == 40
    assert pairs == []  # no pair of coders shares 20 units


def test_alpha_is_none_when_undefined() -> None:
    one_unit = value_counts_from_matrix(np.array([[1.0, 2.0, nan]]))
    no_variation = value_counts_from_matrix(np.array([[3.0, 3.0], [3.0, 3.0], [3.0, nan]]))
    assert alpha(one_unit, level="ordinal") is None
    assert alpha(no_variation, level="interval") is None
    by_dimension, _ = agreement(
        pd.DataFrame({"answer_id": [1, 2], "auditor": ["a", "b"], "accuracy": [4.0, 5.0]}), dimensions=["accuracy"]
    )
    assert by_dimension["accuracy"].alpha_ordinal is None
    assert by_dimension["accuracy"].items == 0


def test_quadratic_kappa_by_hand() -> None:
    # A = 1 1 2 2 3 3, B = 1 2 2 3 3 3. Observed weighted disagreement Σw·O = 1 + 1 = 2 (two cells
    # one step apart). Marginals A = (2, 2, 2), B = (1, 2, 3): Σw·E = (2/6)·Σ_j B_j·Σ_i (i − j)²
    # = (1/3)·(1·5 + 2·2 + 3·5) = 8. κ = 1 − 2/8 = 0.75.
    first, second = [1, 1, 2, 2, 3, 3], [1, 2, 2, 3, 3, 3]
    assert quadratic_kappa(first, second) == pytest.approx(0.75)
    confusion = np.zeros((1, 5, 5))
    for a, b in zip(first, second, strict=True):
        confusion[0, a - 1, b - 1] += 1
    assert quadratic_kappa_from_confusion(confusion)[0] == pytest.approx(0.75)


def test_quadratic_kappa_uses_distances_on_the_whole_scale() -> None:
    # with only 1, 2 and 5 observed, 2→5 is three steps, not one
    assert quadratic_kappa([1, 2, 5, 5], [1, 5, 5, 2]) != pytest.approx(quadratic_kappa([1, 2, 3, 3], [1, 3, 3, 2]))


def test_quadratic_kappa_undefined_when_both_raters_constant() -> None:
    assert quadratic_kappa([3, 3, 3], [3, 3, 3]) is None
    assert np.isnan(quadratic_kappa_from_confusion(np.full((1, 5, 5), 0.0))[0])


def test_pairs_match_scikit_learn_pair_by_pair() -> None:
    rng = np.random.default_rng(11)
    units, coders = 120, 5
    truth = rng.integers(1, 6, units)
    matrix = np.clip(truth[:, None] + rng.integers(-1, 2, (units, coders)), 1, 5).astype(float)
    matrix[rng.random((units, coders)) < 0.45] = nan  # sparse overlap, some pairs share < 20 units
    frame = long_frame(matrix)
    frame["completeness"] = frame["accuracy"]
    by_dimension, pairs = agreement(frame, dimensions=["accuracy", "completeness"], min_shared_items=20)
    wide = frame.pivot(index="answer_id", columns="auditor", values="accuracy")
    expected = {}
    names = sorted(wide.columns)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = wide[[a, b]].dropna()
            if len(shared) >= 20:
                expected[(a, b)] = (quadratic_kappa(shared[a], shared[b]), len(shared))
    accuracy_pairs = {(p.auditor_a, p.auditor_b): (p.kappa, p.items) for p in pairs if p.dimension == "accuracy"}
    assert set(accuracy_pairs) == set(expected) and expected
    for key, (kappa, items) in expected.items():
        assert accuracy_pairs[key][1] == items
        assert accuracy_pairs[key][0] == pytest.approx(kappa, abs=1e-12)
    assert len(pairs) == 2 * len(expected)
    reference = krippendorff.alpha(
        reliability_data=matrix.T, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5]
    )
    assert by_dimension["accuracy"].alpha_ordinal == pytest.approx(reference)
