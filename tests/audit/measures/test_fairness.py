"""Disparities from per-department sums equal fairlearn's MetricFrame run on the ratings themselves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame

from audit.measures.fairness import disparities

# one row per rating: asker department, accuracy (NaN = not rated), bias flag, sources verdict
RATINGS = pd.DataFrame(
    {
        "department": ["Legal", "Legal", "Legal", "HR", "HR", "Finance", "Finance", "Finance", "Finance"],
        "accuracy": [5, 4, np.nan, 2, 3, 4, 4, 5, 1],
        "bias_flag": [0, 0, 1, 1, 1, 0, 0, 0, 1],
        "sources": ["yes", "no", None, "yes", None, None, None, None, None],
    }
)


def sums_of(ratings: pd.DataFrame) -> pd.DataFrame:
    grouped = ratings.assign(sources_yes=(ratings["sources"] == "yes").astype(float)).groupby("department")
    return pd.DataFrame(
        {
            "accuracy_mean_total": grouped["accuracy"].sum(),
            "accuracy_mean_count": grouped["accuracy"].count(),
            "bias_flag_rate_total": grouped["bias_flag"].sum(),
            "bias_flag_rate_count": grouped["bias_flag"].count(),
            "sources_correct_rate_total": grouped["sources_yes"].sum().where(grouped["sources"].count() > 0, 0.0),
            "sources_correct_rate_count": grouped["sources"].count(),
        }
    )


def metric_frame_on_ratings(ratings: pd.DataFrame) -> MetricFrame:
    """The reference: MetricFrame over rating-level data with plain (NaN-skipping) means."""
    sources = ratings["sources"].map({"yes": 1.0, "no": 0.0})  # None -> NaN: not counted
    return MetricFrame(
        metrics={
            "accuracy_mean": lambda y_true, y_pred: np.nanmean(y_true),
            "bias_flag_rate": lambda y_true, y_pred: np.nanmean(y_pred),
        },
        y_true=ratings["accuracy"].to_numpy(dtype=float),
        y_pred=ratings["bias_flag"].to_numpy(dtype=float),
        sensitive_features=ratings["department"],
    ), MetricFrame(
        metrics={
            "sources_correct_rate": lambda y_true, y_pred: np.nanmean(y_true) if np.isfinite(y_true).any() else np.nan
        },
        y_true=sources.to_numpy(dtype=float),
        y_pred=sources.to_numpy(dtype=float),
        sensitive_features=ratings["department"],
    )


def test_disparities_equal_metric_frame_on_rating_level_data() -> None:
    metrics = ["accuracy_mean", "bias_flag_rate", "sources_correct_rate"]
    result = disparities(sums_of(RATINGS), metrics=metrics)
    reference, sources_reference = metric_frame_on_ratings(RATINGS)
    for name in ["accuracy_mean", "bias_flag_rate"]:
        for department in ["Finance", "HR", "Legal"]:
            assert result.by_group.loc[department, name] == pytest.approx(reference.by_group.loc[department, name])
        assert result.overall[name] == pytest.approx(reference.overall[name])
        assert result.difference[name] == pytest.approx(reference.difference()[name])
        assert result.ratio[name] == pytest.approx(reference.ratio()[name])
    # Finance never judged its sources: NaN there, skipped by difference and ratio, as in MetricFrame
    assert np.isnan(result.by_group.loc["Finance", "sources_correct_rate"])
    assert result.difference["sources_correct_rate"] == pytest.approx(
        sources_reference.difference()["sources_correct_rate"]
    )
    assert result.ratio["sources_correct_rate"] == pytest.approx(sources_reference.ratio()["sources_correct_rate"])


def test_disparities_by_hand() -> None:
    result = disparities(sums_of(RATINGS), metrics=["accuracy_mean", "bias_flag_rate"])
    # accuracy: Legal 9/2 = 4.5, HR 5/2 = 2.5, Finance 14/4 = 3.5
    assert result.difference["accuracy_mean"] == pytest.approx(4.5 - 2.5)
    assert result.ratio["accuracy_mean"] == pytest.approx(2.5 / 4.5)
    assert result.overall["accuracy_mean"] == pytest.approx(28 / 8)
    # flags: Legal 1/3, HR 2/2, Finance 1/4
    assert result.difference["bias_flag_rate"] == pytest.approx(1 - 0.25)


def test_disparities_over_a_subset_of_groups() -> None:
    result = disparities(sums_of(RATINGS), metrics=["accuracy_mean"], groups=pd.Index(["Legal", "Finance"]))
    assert sorted(result.by_group.index) == ["Finance", "Legal"]
    assert result.difference["accuracy_mean"] == pytest.approx(4.5 - 3.5)
