"""Inter-rater agreement: Krippendorff's alpha per dimension and quadratic-weighted Cohen's kappa per
auditor pair, from a long frame of ratings (one row per answer × auditor)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import krippendorff
import numpy as np
import pandas as pd
from scipy import sparse

from audit.choices import MIN_SHARED_ITEMS

SCALE = (1, 2, 3, 4, 5)

Level = Literal["nominal", "ordinal", "interval", "ratio"]


@dataclass(frozen=True)
class DimensionAgreement:
    alpha_ordinal: float | None
    alpha_interval: float | None
    items: int  # units with at least two values
    ratings: int  # values in those units


@dataclass(frozen=True)
class PairAgreement:
    auditor_a: str
    auditor_b: str
    dimension: str
    kappa: float | None
    items: int


# --- Krippendorff's alpha ------------------------------------------------------------------------


def value_counts_from_matrix(units_by_coders: np.ndarray | pd.DataFrame, *, scale: Sequence[int] = SCALE) -> np.ndarray:
    """Units × values counts (how many coders gave unit u value v) of a units × coders matrix with
    NaN for missing: the input the ``krippendorff`` package reduces reliability data to."""
    matrix = np.asarray(units_by_coders, dtype=float)
    return np.stack([(matrix == v).sum(axis=1) for v in scale], axis=1)


def alpha(value_counts: np.ndarray, *, level: Level, scale: Sequence[int] = SCALE) -> float | None:
    """Krippendorff's alpha, α = 1 − D_o / D_e (observed over expected disagreement, from the
    coincidence matrix of pairable values), computed by the ``krippendorff`` package from units ×
    values counts (see :func:`value_counts_from_matrix` for a units × coders matrix).

    None where alpha is undefined: fewer than two pairable units (units with two or more values),
    or no variation at all among the pairable values (D_e = 0).
    """
    counts = np.asarray(value_counts, dtype=float)
    pairable = counts[counts.sum(axis=1) >= 2] if counts.size else counts.reshape(0, len(scale))
    if pairable.shape[0] < 2 or np.count_nonzero(pairable.sum(axis=0)) < 2:
        return None
    return float(krippendorff.alpha(value_counts=pairable, value_domain=list(scale), level_of_measurement=level))


# --- Cohen's kappa -------------------------------------------------------------------------------


def quadratic_kappa(first: Sequence[float], second: Sequence[float], *, scale: Sequence[int] = SCALE) -> float | None:
    """Cohen's kappa with quadratic weights for two raters' paired values, by scikit-learn.

    The labels are the whole scale, so the weights are distances on the scale even when some
    values never occur. None when undefined (both raters constant). The report scores many pairs
    at once with :func:`quadratic_kappa_from_confusion`; this is the reference it is tested against.
    """
    # scikit-learn costs seconds to import and the report itself uses the vectorised form below
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        # undefined kappa (both raters constant) warns; None says so instead
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        kappa = cohen_kappa_score(
            np.asarray(first, dtype=int), np.asarray(second, dtype=int), weights="quadratic", labels=list(scale)
        )
    return None if np.isnan(kappa) else float(kappa)


def quadratic_kappa_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Quadratic-weighted kappa for a stack of k×k confusion matrices (shape ``(pairs, k, k)``).

    κ_w = 1 − Σᵢⱼ wᵢⱼ·Oᵢⱼ / Σᵢⱼ wᵢⱼ·Eᵢⱼ with wᵢⱼ = (i − j)², O the observed counts and
    Eᵢⱼ = Oᵢ.·O.ⱼ / N the counts expected from the two raters' marginals: scikit-learn's
    ``cohen_kappa_score(..., weights="quadratic")`` exactly, vectorised, because a call per pair
    costs about a millisecond and a month of ratings has thousands of pairs. NaN where Σ w·E = 0.
    """
    observed = np.asarray(confusion, dtype=float)
    levels = np.arange(observed.shape[-1])
    weights = (levels[:, None] - levels[None, :]) ** 2
    n = observed.sum(axis=(1, 2))
    expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = expected / n[:, None, None]
        disagreement_expected = (weights * expected).sum(axis=(1, 2))
        kappa = 1.0 - (weights * observed).sum(axis=(1, 2)) / disagreement_expected
    return np.where(disagreement_expected > 0, kappa, np.nan)


# --- from a long frame of ratings ----------------------------------------------------------------


def agreement(
    ratings: pd.DataFrame,
    *,
    dimensions: Sequence[str],
    unit: str = "answer_id",
    coder: str = "auditor",
    min_shared_items: int = MIN_SHARED_ITEMS,
    scale: Sequence[int] = SCALE,
) -> tuple[dict[str, DimensionAgreement], list[PairAgreement]]:
    """Alpha (ordinal and interval) per dimension and kappa per coder pair, from one row per
    unit × coder with a column per dimension (NaN where that dimension was not rated).

    A unit counts for a dimension when at least two coders gave it a value (a lone value is
    unpairable). Pairs are coders, in sorted order, sharing ``min_shared_items`` units or more.
    """
    coder_names = np.array(sorted(ratings[coder].astype(str).unique()))
    all_coder_codes = np.searchsorted(coder_names, ratings[coder].astype(str).to_numpy())
    by_dimension: dict[str, DimensionAgreement] = {}
    pairs: list[PairAgreement] = []
    for dimension in dimensions:
        rated = ratings[dimension].notna().to_numpy()
        unit_codes, _ = pd.factorize(ratings[unit].to_numpy()[rated])
        pairable = np.bincount(unit_codes)[unit_codes] >= 2
        unit_codes, units = pd.factorize(unit_codes[pairable])
        coder_codes = all_coder_codes[rated][pairable]
        value_index = _scale_positions(ratings[dimension].to_numpy(dtype=float)[rated][pairable], scale)
        counts = np.zeros((len(units), len(scale)))
        np.add.at(counts, (unit_codes, value_index), 1)
        by_dimension[dimension] = DimensionAgreement(
            alpha_ordinal=alpha(counts, level="ordinal", scale=scale),
            alpha_interval=alpha(counts, level="interval", scale=scale),
            items=len(units),
            ratings=len(unit_codes),
        )
        pairs += _pairs(unit_codes, coder_codes, value_index, coder_names, dimension, min_shared_items, len(scale))
    return by_dimension, pairs


def _scale_positions(values: np.ndarray, scale: Sequence[int]) -> np.ndarray:
    """Index of each value on the scale (the database's CHECK constraints keep ratings on it)."""
    levels = np.asarray(scale, dtype=float)
    index = np.searchsorted(levels, values)
    off_scale = (index >= levels.size) | (levels[np.minimum(index, levels.size - 1)] != values)
    if off_scale.any():
        raise ValueError(f"rating value {values[off_scale][0]:g} is not on the scale {tuple(scale)}")
    return index


def _pairs(
    unit_codes: np.ndarray,
    coder_codes: np.ndarray,
    value_index: np.ndarray,
    coder_names: np.ndarray,
    dimension: str,
    min_shared_items: int,
    k: int,
) -> list[PairAgreement]:
    """Every pair's confusion matrix from one sparse product: with X the units × (coder, value)
    one-hot matrix, (XᵀX)[(a, i), (b, j)] counts the units coder a rated i and coder b rated j."""
    if unit_codes.size == 0:
        return []
    n_coders = len(coder_names)
    one_hot = sparse.csr_matrix(
        (np.ones(unit_codes.size), (unit_codes, coder_codes * k + value_index)),
        shape=(int(unit_codes.max()) + 1, n_coders * k),
    )
    counts = (one_hot.T @ one_hot).toarray().reshape(n_coders, k, n_coders, k)
    shared = counts.sum(axis=(1, 3))
    first_index, second_index = np.nonzero(np.triu(shared >= min_shared_items, k=1))
    if first_index.size == 0:
        return []
    kappas = quadratic_kappa_from_confusion(counts[first_index, :, second_index, :])
    return [
        PairAgreement(
            auditor_a=str(coder_names[i]),
            auditor_b=str(coder_names[j]),
            dimension=dimension,
            kappa=None if np.isnan(kappa) else float(kappa),
            items=int(shared[i, j]),
        )
        for i, j, kappa in zip(first_index.tolist(), second_index.tolist(), kappas.tolist(), strict=True)
    ]
