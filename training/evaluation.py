"""Scoring a model's answers to held-out gold questions: per-item scores, per-department summaries
(fairlearn ``MetricFrame``) and the paired bootstrap of candidate vs champion. Pure functions: no
model, no database.

An :class:`EvaluationSummary` is what ``model_versions.evaluation`` stores (``to_dict``/``from_dict``),
per-item scores included, so a later candidate can be paired with the champion without generating
the champion's answers again (when the evaluation ``signature`` still matches).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fairlearn.metrics import MetricFrame

from audit.measures.text_metrics import exact_match, rouge_scores, token_f1

TEXT_METRICS = ("rouge1", "rouge2", "rougeL", "f1", "exact_match")
ALL_METRICS = (*TEXT_METRICS, "retrieval_accuracy")


@dataclass(frozen=True)
class ScoredItem:
    """One gold question answered by one model."""

    item_id: str
    department: str
    prediction: str
    reference: str
    retrieval_hit: bool
    scores: dict[str, float]


def score_answer(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures, SQuAD token F1 and exact match of one answer against its reference."""
    return dict(_cached_scores(prediction, reference))


@functools.lru_cache(maxsize=8192)
def _cached_scores(prediction: str, reference: str) -> tuple[tuple[str, float], ...]:
    # MetricFrame calls each metric once overall and once per department: score each pair once
    scores = {
        **rouge_scores(prediction, reference),
        "f1": token_f1(prediction, reference),
        "exact_match": exact_match(prediction, reference),
    }
    return tuple(scores.items())


def score_items(
    *,
    item_ids: Sequence[str],
    departments: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[str],
    retrieval_hits: Sequence[bool],
) -> list[ScoredItem]:
    lengths = {len(item_ids), len(departments), len(predictions), len(references), len(retrieval_hits)}
    if len(lengths) != 1:
        raise ValueError(f"score_items: inputs of different lengths {sorted(lengths)}")
    return [
        ScoredItem(i, d, p, r, bool(h), score_answer(p, r))
        for i, d, p, r, h in zip(item_ids, departments, predictions, references, retrieval_hits, strict=True)
    ]


def _mean_of(metric: str):  # type: ignore[no-untyped-def]
    """A MetricFrame metric: the mean of ``metric`` over (reference, prediction) pairs."""

    def mean_metric(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
        values = [score_answer(str(p), str(t))[metric] for t, p in zip(y_true, y_pred, strict=True)]
        return float(np.mean(values)) if values else math.nan

    mean_metric.__name__ = f"mean_{metric}"
    return mean_metric


def _hit_rate(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Share of items whose retrieved documents included a reference document (y_true is all ones)."""
    return float(np.mean(np.asarray(y_pred) == np.asarray(y_true))) if len(y_pred) else math.nan


@dataclass
class EvaluationSummary:
    """A model's scores on the gold set. ``by_department[dept][metric]`` and ``items[id][metric]``."""

    signature: str
    n: int
    metrics: dict[str, float]
    by_department: dict[str, dict[str, float]]
    department_counts: dict[str, int]
    department_gap: dict[str, float]
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "n": self.n,
            "metrics": self.metrics,
            "by_department": self.by_department,
            "department_counts": self.department_counts,
            "department_gap": self.department_gap,
            "items": self.items,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationSummary:
        return cls(
            signature=str(data["signature"]),
            n=int(data["n"]),
            metrics={k: float(v) for k, v in data["metrics"].items()},
            by_department={d: {k: float(v) for k, v in m.items()} for d, m in data["by_department"].items()},
            department_counts={d: int(c) for d, c in data.get("department_counts", {}).items()},
            department_gap={k: float(v) for k, v in data["department_gap"].items()},
            items=dict(data.get("items", {})),
        )

    def item_scores(self, metric: str) -> dict[str, float]:
        return {item_id: float(values[metric]) for item_id, values in self.items.items()}


def summarize(items: Sequence[ScoredItem], *, signature: str) -> EvaluationSummary:
    """Overall and per-department means of every metric, computed by fairlearn ``MetricFrame``;
    ``department_gap[m]`` = max − min of the department means (``MetricFrame.difference()``)."""
    if not items:
        raise ValueError("summarize: no scored items (is the gold set empty?)")
    departments = np.array([it.department for it in items], dtype=object)
    text_frame = MetricFrame(
        metrics={metric: _mean_of(metric) for metric in TEXT_METRICS},
        y_true=np.array([it.reference for it in items], dtype=object),
        y_pred=np.array([it.prediction for it in items], dtype=object),
        sensitive_features=departments,
    )
    # MetricFrame hands every metric the same y_true/y_pred, so the retrieval hit rate gets its own
    # frame: y_true all ones, y_pred the hit indicator.
    retrieval_frame = MetricFrame(
        metrics={"retrieval_accuracy": _hit_rate},
        y_true=np.ones(len(items), dtype=int),
        y_pred=np.array([int(it.retrieval_hit) for it in items], dtype=int),
        sensitive_features=departments,
    )
    overall = {**text_frame.overall.to_dict(), **retrieval_frame.overall.to_dict()}
    by_group = text_frame.by_group.join(retrieval_frame.by_group)
    gaps = {**text_frame.difference(method="between_groups").to_dict(), **retrieval_frame.difference().to_dict()}
    counts: dict[str, int] = {}
    for it in items:
        counts[it.department] = counts.get(it.department, 0) + 1
    return EvaluationSummary(
        signature=signature,
        n=len(items),
        metrics={k: float(v) for k, v in overall.items()},
        by_department={
            str(dept): {metric: float(by_group.loc[dept, metric]) for metric in ALL_METRICS} for dept in by_group.index
        },
        department_counts=dict(sorted(counts.items())),
        department_gap={k: float(v) for k, v in gaps.items()},
        items={
            it.item_id: {
                **{k: float(v) for k, v in it.scores.items()},
                "retrieval_hit": it.retrieval_hit,
                "department": it.department,
                "prediction": it.prediction,
            }
            for it in items
        },
    )


# --------------------------------------------------------------------------- paired bootstrap


@dataclass(frozen=True)
class BootstrapResult:
    """Mean of the paired differences (candidate − champion) and its percentile bootstrap CI."""

    n: int
    mean_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean_difference": self.mean_difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "confidence": self.confidence,
            "resamples": self.resamples,
        }


def paired_bootstrap(
    candidate: Sequence[float],
    champion: Sequence[float],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile bootstrap CI of the mean paired difference.

    d_i = candidate_i − champion_i for the same item i. Each of ``resamples`` draws picks n items
    with replacement (the same indices for both models: the pairing is kept) and takes the mean of
    their d; the CI is the (α/2, 1 − α/2) quantiles of those means, α = 1 − confidence. Seeded, so
    the same inputs always give the same interval.
    """
    cand = np.asarray(candidate, dtype=float)
    champ = np.asarray(champion, dtype=float)
    if cand.shape != champ.shape or cand.ndim != 1:
        raise ValueError(f"paired_bootstrap: need two equal-length 1-D score lists, got {cand.shape} and {champ.shape}")
    if cand.size == 0:
        raise ValueError("paired_bootstrap: no paired items")
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("paired_bootstrap: resamples must be >= 1 and confidence in (0, 1)")
    differences = cand - champ
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, differences.size, size=(resamples, differences.size))
    means = differences[indices].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(
        n=int(differences.size),
        mean_difference=float(differences.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        resamples=resamples,
    )


@dataclass(frozen=True)
class Comparison:
    """Candidate vs champion on the items both were scored on."""

    metric_differences: dict[str, BootstrapResult]
    department_differences: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric_differences": {k: v.to_dict() for k, v in self.metric_differences.items()},
            "department_differences": self.department_differences,
        }


def compare(
    candidate: EvaluationSummary,
    champion: EvaluationSummary,
    *,
    metrics: Sequence[str] = ("rougeL", "f1"),
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Paired bootstrap per metric over the shared items, and per-department mean differences."""
    shared = sorted(set(candidate.items) & set(champion.items))
    if not shared:
        raise ValueError("compare: the candidate and the champion were scored on no common gold item")
    results = {}
    for metric in metrics:
        cand_scores = candidate.item_scores(metric)
        champ_scores = champion.item_scores(metric)
        results[metric] = paired_bootstrap(
            [cand_scores[i] for i in shared],
            [champ_scores[i] for i in shared],
            resamples=resamples,
            confidence=confidence,
            seed=seed,
        )
    department_differences = {
        dept: {m: candidate.by_department[dept][m] - champion.by_department[dept][m] for m in metrics}
        for dept in sorted(set(candidate.by_department) & set(champion.by_department))
    }
    return Comparison(results, department_differences)
