"""Auditor calibration against gold items: how far each auditor's scores sit from the expected ones.

For each rating of a gold answer, the error is e = rating − expected. Per auditor and dimension:
mean signed error (bias: > 0 rates too generously), mean absolute error, and the share of
ratings within ±1 of the expected score. The database supplies the sums; these finish the ratios.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

ALL_DIMENSIONS = "all"
SUM_COLUMNS = ("n", "error_sum", "abs_error_sum", "within_one")


def calibration_table(sums: pd.DataFrame, *, dimensions: Sequence[str]) -> pd.DataFrame:
    """From one row per auditor × dimension with ``n`` (ratings with both a score and an expected
    score), ``error_sum`` (Σe), ``abs_error_sum`` (Σ|e|) and ``within_one`` (#{|e| ≤ 1}), add
    ``mean_error`` = Σe/n, ``mean_abs_error`` = Σ|e|/n and ``within_one_share`` = #{|e| ≤ 1}/n,
    plus a pooled ``dimension == "all"`` row per auditor (the sums added over dimensions). Rows
    with n = 0 are dropped; rows come by auditor, then in the order of ``dimensions``, then "all".
    """
    sums = sums[sums["n"] > 0]
    pooled = sums.groupby("auditor", as_index=False)[list(SUM_COLUMNS)].sum().assign(dimension=ALL_DIMENSIONS)
    table = pd.concat([sums, pooled], ignore_index=True)
    n = table["n"].to_numpy(dtype=float)
    table["mean_error"] = table["error_sum"].to_numpy(dtype=float) / n
    table["mean_abs_error"] = table["abs_error_sum"].to_numpy(dtype=float) / n
    table["within_one_share"] = table["within_one"].to_numpy(dtype=float) / n
    table["n"] = table["n"].astype(np.int64)
    order = {name: i for i, name in enumerate([*dimensions, ALL_DIMENSIONS])}
    return (
        table.assign(_order=table["dimension"].map(order))
        .sort_values(["auditor", "_order"])
        .drop(columns=["_order"])
        .reset_index(drop=True)
    )
