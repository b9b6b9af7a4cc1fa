"""Funnel counts and median waits, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audit.measures.funnel import FunnelHead, first_models_with_fix, funnel

nan = np.nan


def test_first_models_with_fix() -> None:
    jobs = pd.DataFrame(
        {
            "dataset_number": [2.0, 3.0, 3.0],
            "finished_at": [10.0, 20.0, 18.0],
            "promoted_at": [12.0, nan, nan],
        }
    )
    fixes = pd.Series([1.0, 2.0, 3.0, 4.0, nan], index=[10, 11, 12, 13, 14])
    result = first_models_with_fix(fixes, jobs)
    # v1 and v2 reach the version-2 job first; v3 only the version-3 jobs (earliest 18), never promoted
    assert result.loc[10].tolist() == [10.0, 12.0]
    assert result.loc[11].tolist() == [10.0, 12.0]
    assert result.loc[12, "trained_at"] == 18.0 and np.isnan(result.loc[12, "promoted_at"])
    assert result.loc[[13, 14]].isna().all().all()


def test_a_later_promotion_counts_for_an_earlier_unpromoted_version() -> None:
    jobs = pd.DataFrame({"dataset_number": [2.0, 5.0], "finished_at": [10.0, 30.0], "promoted_at": [nan, 31.0]})
    result = first_models_with_fix(pd.Series([1.0, 2.0]), jobs)
    assert result["trained_at"].tolist() == [10.0, 10.0]
    assert result["promoted_at"].tolist() == [31.0, 31.0]


def test_first_models_with_fix_without_jobs() -> None:
    empty_jobs = pd.DataFrame({"dataset_number": [], "finished_at": [], "promoted_at": []})
    result = first_models_with_fix(pd.Series([1.0]), empty_jobs)
    assert result.isna().all().all() and len(result) == 1


def test_funnel_counts_and_medians_by_hand() -> None:
    # hours since any origin; answer 3 is flagged without a rating: it stops at "rated"
    events = pd.DataFrame(
        {
            "sampled_at": [0.0, 0.0, 10.0, 5.0],
            "rated_at": [2.0, 4.0, nan, 6.0],
            "flagged_at": [3.0, 10.0, 11.0, nan],
            "reviewed_at": [5.0, 30.0, 12.0, nan],
            "confirmed_at": [5.0, nan, 12.0, nan],
            "fixed_at": [9.0, nan, nan, nan],
            "trained_at": [20.0, nan, nan, nan],
            "promoted_at": [nan, nan, nan, nan],
        }
    )
    steps = funnel(events).set_index("step")
    assert steps["count"].tolist() == [4, 3, 2, 2, 1, 1, 1, 0]
    assert steps.loc["rated", "median_hours"] == pytest.approx(np.median([2, 4, 1]))
    assert steps.loc["rated", "share_of_previous"] == pytest.approx(3 / 4)
    assert steps.loc["flagged", "median_hours"] == pytest.approx(np.median([1, 6]))
    assert steps.loc["flagged", "median_hours_from_sampled"] == pytest.approx(np.median([3, 10]))
    assert steps.loc["reviewed", "median_hours"] == pytest.approx(np.median([2, 20]))
    # confirmed waits from the flag, like reviewed: 5 − 3
    assert steps.loc["confirmed", "median_hours"] == pytest.approx(2.0)
    assert steps.loc["fixed", "median_hours"] == pytest.approx(4.0)
    assert steps.loc["trained", "median_hours_from_sampled"] == pytest.approx(20.0)
    assert np.isnan(steps.loc["promoted", "median_hours"]) and steps.loc["promoted", "share_of_previous"] == 0
    assert np.isnan(steps.loc["sampled", "median_hours"])


def test_funnel_of_nothing() -> None:
    columns = [
        "sampled_at",
        "rated_at",
        "flagged_at",
        "reviewed_at",
        "confirmed_at",
        "fixed_at",
        "trained_at",
        "promoted_at",
    ]
    steps = funnel(pd.DataFrame({c: pd.Series(dtype=float) for c in columns}))
    assert steps["count"].tolist() == [0] * 8
    assert steps["median_hours"].isna().all() and steps["share_of_previous"].isna().all()


def _random_events(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Sampled answers with random later steps, each reached with some chance, in hours."""
    sampled = rng.uniform(0, 100, n)
    events = {"sampled_at": sampled}
    previous = sampled
    for column, chance in (
        ("rated_at", 0.8),
        ("flagged_at", 0.2),
        ("reviewed_at", 0.8),
        ("confirmed_at", 0.5),
        ("fixed_at", 0.7),
        ("trained_at", 0.6),
        ("promoted_at", 0.5),
    ):
        previous = np.where(rng.random(n) < chance, previous + rng.exponential(10, n), nan)
        events[column] = previous
    # a flag without a rating happens (a review item opened another way): it must stop at "rated"
    events["flagged_at"][: n // 20] = sampled[: n // 20] + 1.0
    return pd.DataFrame(events)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_head_and_the_flagged_answers_give_the_whole_funnel(seed: int) -> None:
    events = _random_events(np.random.default_rng(seed), 2_001 + seed)
    rated = events["rated_at"].notna()
    head = FunnelHead(
        sampled=len(events),
        rated=int(rated.sum()),
        rated_median_hours=float((events["rated_at"] - events["sampled_at"])[rated].median()),
    )
    # only the answers with a review item (a flag) are handed over with the head
    flagged = events[events["flagged_at"].notna()].reset_index(drop=True)
    assert len(flagged) < len(events) / 2
    pd.testing.assert_frame_equal(funnel(flagged, head=head), funnel(events))


def test_a_head_with_nothing_rated() -> None:
    columns = ["sampled_at", "rated_at", "flagged_at", "reviewed_at", "confirmed_at", "fixed_at"]
    columns += ["trained_at", "promoted_at"]
    nothing = pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    steps = funnel(nothing, head=FunnelHead(sampled=5, rated=0, rated_median_hours=nan)).set_index("step")
    assert steps["count"].tolist() == [5, 0, 0, 0, 0, 0, 0, 0]
    assert steps.loc["rated", "share_of_previous"] == 0.0 and np.isnan(steps.loc["rated", "median_hours"])
