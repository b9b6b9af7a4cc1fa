"""The fix funnel: how many sampled answers reach each step of the loop and how long each step takes.

sampled → rated → flagged → reviewed → confirmed → fixed → trained → promoted, one row per
sampled answer with each step's time in hours since any fixed origin (NaN where it has not got
that far): hours subtract and take medians without a datetime object per value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# (step, its timestamp column, the column of the event it waits on). "confirmed" is the same event
# as "reviewed" (a decision that confirms), so its wait is measured from the flag, like "reviewed".
STEPS: tuple[tuple[str, str, str | None], ...] = (
    ("sampled", "sampled_at", None),
    ("rated", "rated_at", "sampled_at"),
    ("flagged", "flagged_at", "rated_at"),
    ("reviewed", "reviewed_at", "flagged_at"),
    ("confirmed", "confirmed_at", "flagged_at"),
    ("fixed", "fixed_at", "confirmed_at"),
    ("trained", "trained_at", "fixed_at"),
    ("promoted", "promoted_at", "trained_at"),
)


def first_models_with_fix(fix_dataset_numbers: pd.Series, jobs: pd.DataFrame) -> pd.DataFrame:
    """When each fix first reached a trained model and a promoted model.

    Dataset versions are numbered in order and each snapshots the examples active at the time, so
    a fix applied in version v is in every version numbered ≥ v. ``jobs`` holds the succeeded
    training jobs: ``dataset_number``, ``finished_at`` and the resulting model's ``promoted_at``
    (NaN if never promoted). For each fix: trained_at = min finished_at over jobs with
    dataset_number ≥ v, promoted_at = min promoted_at over the same jobs. Returns ``trained_at``
    and ``promoted_at`` aligned with ``fix_dataset_numbers`` (NaN where there is none).
    """
    result = pd.DataFrame({"trained_at": np.nan, "promoted_at": np.nan}, index=fix_dataset_numbers.index)
    known = fix_dataset_numbers.notna()
    if jobs.empty or not known.any():
        return result
    earliest = jobs.groupby("dataset_number")[["finished_at", "promoted_at"]].min().sort_index()
    # suffix minima: the earliest event over every version numbered ≥ each version; a missing event
    # is +inf while scanning (pandas' cummin would keep NaN in place rather than carry the minimum)
    suffix = earliest.fillna(np.inf).iloc[::-1].cummin().iloc[::-1].replace(np.inf, np.nan)
    position = np.searchsorted(earliest.index.to_numpy(dtype=float), fix_dataset_numbers[known].to_numpy(dtype=float))
    found = position < len(earliest)
    rows = fix_dataset_numbers[known].index[found]
    for column, source in (("trained_at", "finished_at"), ("promoted_at", "promoted_at")):
        result.loc[rows, column] = suffix[source].to_numpy(dtype=float)[position[found]]
    return result


@dataclass(frozen=True)
class FunnelHead:
    """The first two steps, counted by the database over every sampled answer: how many were
    sampled, how many of those got rated, and the median hours from sampling to the first rating
    (NaN when none was rated). With it, ``funnel`` needs events only for the answers that can go
    further (those with a review item), a few percent of a month's sampled answers."""

    sampled: int
    rated: int
    rated_median_hours: float


def funnel(events: pd.DataFrame, *, head: FunnelHead | None = None) -> pd.DataFrame:
    """Counts and median waits per step.

    ``events`` has one row per sampled answer and a column of hours per step (see ``STEPS``). An
    answer reaches a step when it reached the one before and has that step's time, so counts never
    grow down the funnel. Over the answers reaching a step: ``median_hours`` is the median of (its
    time − the awaited event's time), ``median_hours_from_sampled`` the median time since it was
    sampled; ``share_of_previous`` = count / previous count. NaN where nothing reached the step.

    With ``head``, the "sampled" and "rated" rows are the head's, and ``events`` may hold only the
    sampled answers that have a review item: no other answer reaches "flagged", so every later step
    comes out the same as over all sampled answers.
    """
    reached = pd.Series(True, index=events.index)
    rows = []
    previous_count = 0
    for step, column, awaited in STEPS:
        reached &= events[column].notna()
        if head is not None and step in ("sampled", "rated"):
            count = head.sampled if step == "sampled" else head.rated
            median = head.rated_median_hours if step == "rated" and count else np.nan
            median_from_sampled = median
        else:
            count = int(reached.sum())
            at = events.loc[reached, column]
            median = (at - events.loc[reached, awaited]).median() if awaited and count else np.nan
            median_from_sampled = (at - events.loc[reached, "sampled_at"]).median() if awaited and count else np.nan
        rows.append(
            {
                "step": step,
                "count": count,
                "share_of_previous": count / previous_count if previous_count else np.nan,
                "median_hours": median,
                "median_hours_from_sampled": median_from_sampled,
            }
        )
        previous_count = count
    return pd.DataFrame(rows)
