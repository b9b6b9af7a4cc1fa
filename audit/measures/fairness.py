"""Between-department disparities with fairlearn's ``MetricFrame``, from per-department sums.

Every fairness metric here is a mean, i.e. a ratio of two additive sums (Σ value / count), so
``MetricFrame`` gives the exact by-group, overall, difference and ratio values when it is fed one
row per department carrying those sums (``sample_params``) instead of every rating: the database
does the grouping and ``MetricFrame`` sees a handful of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_GROUP_SIZE = 30

DIMENSION_METRICS = ("accuracy_mean", "completeness_mean", "relevance_mean", "coherence_mean")
METRICS = (*DIMENSION_METRICS, "bias_flag_rate", "sources_correct_rate")


def ratio_of_sums(y_true: np.ndarray, y_pred: np.ndarray, *, total: np.ndarray, count: np.ndarray) -> float:
    """Σ total / Σ count over the rows MetricFrame hands over (NaN when there is nothing to count).

    Over rows that are per-department sums this is the mean over the underlying ratings, exactly;
    ``y_true``/``y_pred`` are placeholders MetricFrame requires.
    """
    n = float(np.sum(count))
    return float(np.sum(total)) / n if n > 0 else float("nan")


@dataclass(frozen=True)
class Disparities:
    by_group: pd.DataFrame  # one row per group, a column per metric
    overall: pd.Series  # each metric over all groups together
    difference: pd.Series  # max − min over groups (MetricFrame.difference())
    ratio: pd.Series  # min / max over groups (MetricFrame.ratio())


def disparities(
    sums: pd.DataFrame, *, metrics: Sequence[str] = METRICS, groups: pd.Series | None = None
) -> Disparities:
    """MetricFrame over per-group sums.

    ``sums`` has one row per group, indexed by the group's name, with ``<metric>_total`` and
    ``<metric>_count`` for each metric: the metric's value for a set of groups is
    Σ total / Σ count. Groups without any count for a metric get NaN there and are skipped by the
    difference and the ratio (pandas' max/min skip NaN). ``groups`` restricts the frame to some
    groups (e.g. those large enough to be reliable).
    """
    # fairlearn brings scikit-learn, seconds to import: only a fairness computation pays for it
    from fairlearn.metrics import MetricFrame

    if groups is not None:
        sums = sums.loc[groups]
    frame = MetricFrame(
        metrics={name: ratio_of_sums for name in metrics},
        y_true=np.zeros(len(sums)),
        y_pred=np.zeros(len(sums)),
        sensitive_features=pd.Series(sums.index, name="department"),
        sample_params={
            name: {
                "total": sums[f"{name}_total"].to_numpy(dtype=float),
                "count": sums[f"{name}_count"].to_numpy(dtype=float),
            }
            for name in metrics
        },
    )
    by_group = frame.by_group
    assert isinstance(by_group, pd.DataFrame)
    overall, difference, ratio = frame.overall, frame.difference(), frame.ratio()
    assert isinstance(overall, pd.Series) and isinstance(difference, pd.Series) and isinstance(ratio, pd.Series)
    return Disparities(by_group=by_group, overall=overall, difference=difference, ratio=ratio)
