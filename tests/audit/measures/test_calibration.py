"""Calibration ratios from error sums, by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from audit.measures.calibration import calibration_table


def test_calibration_table_by_hand() -> None:
    # alice: accuracy errors +2, 0, −1; coherence errors −3. bob: accuracy +1.
    sums = pd.DataFrame(
        [
            {"auditor": "bob", "dimension": "accuracy", "n": 1, "error_sum": 1, "abs_error_sum": 1, "within_one": 1},
            {
                "auditor": "alice",
                "dimension": "coherence",
                "n": 1,
                "error_sum": -3,
                "abs_error_sum": 3,
                "within_one": 0,
            },
            {"auditor": "alice", "dimension": "accuracy", "n": 3, "error_sum": 1, "abs_error_sum": 3, "within_one": 2},
            {"auditor": "bob", "dimension": "relevance", "n": 0, "error_sum": 0, "abs_error_sum": 0, "within_one": 0},
        ]
    )
    table = calibration_table(sums, dimensions=["accuracy", "completeness", "relevance", "coherence"])
    rows = {(r.auditor, r.dimension): r for r in table.itertuples()}
    assert [(r.auditor, r.dimension) for r in table.itertuples()] == [
        ("alice", "accuracy"),
        ("alice", "coherence"),
        ("alice", "all"),
        ("bob", "accuracy"),
        ("bob", "all"),
    ]
    alice = rows[("alice", "accuracy")]
    assert (alice.n, alice.mean_error, alice.mean_abs_error, alice.within_one_share) == pytest.approx(
        (3, 1 / 3, 1, 2 / 3)
    )
    pooled = rows[("alice", "all")]  # errors +2, 0, −1, −3
    assert (pooled.n, pooled.mean_error, pooled.mean_abs_error, pooled.within_one_share) == pytest.approx(
        (4, -2 / 4, 6 / 4, 2 / 4)
    )
    assert rows[("bob", "all")].mean_error == pytest.approx(1.0)
