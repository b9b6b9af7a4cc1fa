"""The loop's yardstick: scoring a system's answers to held-out gold questions, per item and per
department, with bootstrap intervals, and the paired comparison of two systems. Pure functions: no
model, no database.

Each answer is judged on facts first (``audit/measures/facts.py``):

- ``fact_accuracy``: the answer states every one of the gold item's key values (normalised);
- ``wrong_value``: it misses a key value and states another value of that value's type instead (a
  date, amount, percentage or quantity of time: a confidently wrong answer; lower is better);
- ``citation_accuracy``: it cites the gold document's current version by external id;
- ``outdated_citation``: it cites a superseded document (lower is better);
- ``retrieval_at_1`` / ``retrieval_at_k``: the retriever the system serves with put the gold
  document first / among the k documents in the prompt;

and on text overlap second (ROUGE-1/2/L F-measure, SQuAD token F1, exact match), since ROUGE-L
cannot see a wrong value in the right sentence. Every item's judgement is a 0/1 or [0, 1] number, so
every aggregate is a mean of item rows, and every interval a bootstrap over items.

An :class:`EvaluationSummary` is what ``model_versions.evaluation`` stores (``to_dict``/``from_dict``),
per-item scores included, so a later candidate can be paired with the champion without generating
the champion's answers again (when the evaluation ``signature`` still matches).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fairlearn.metrics import MetricFrame

from audit.measures.facts import citation_correct, cited_document_ids, cites_outdated, fact_correct, wrong_value
from audit.measures.text_metrics import exact_match, rouge_scores, token_f1

TEXT_METRICS = ("rouge1", "rouge2", "rougeL", "f1", "exact_match")
FACT_METRICS = (
    "fact_accuracy",
    "wrong_value",
    "citation_accuracy",
    "outdated_citation",
    "retrieval_at_1",
    "retrieval_at_k",
)
ALL_METRICS = (*FACT_METRICS, *TEXT_METRICS)
# The figures a report leads with, in order (the gate's primary metric first).
HEADLINE_METRICS = ("fact_accuracy", "wrong_value", "citation_accuracy", "retrieval_at_1", "rougeL", "f1")


@dataclass(frozen=True)
class GoldTruth:
    """What a right answer to one gold question looks like, for the fact checks."""

    key_values: tuple[str, ...]
    gold_document_ids: frozenset[str]  # the current versions of the gold documents (external ids)
    superseded_ids: frozenset[str] = frozenset()  # every superseded document's external id


@dataclass(frozen=True)
class ScoredItem:
    """One gold question answered by one system."""

    item_id: str
    department: str
    prediction: str
    reference: str
    scores: dict[str, float]
    cited: tuple[str, ...] = ()
    retrieved: tuple[str, ...] = ()


def score_answer(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures, SQuAD token F1 and exact match of one answer against its reference."""
    return dict(_cached_scores(prediction, reference))


@functools.lru_cache(maxsize=8192)
def _cached_scores(prediction: str, reference: str) -> tuple[tuple[str, float], ...]:
    scores = {
        **rouge_scores(prediction, reference),
        "f1": token_f1(prediction, reference),
        "exact_match": exact_match(prediction, reference),
    }
    return tuple(scores.items())


def judge_answer(prediction: str, reference: str, truth: GoldTruth, retrieved: Sequence[str]) -> dict[str, float]:
    """Every metric of one answer: the fact checks (0.0 or 1.0) and the text overlap scores."""
    cited = cited_document_ids(prediction)
    return {
        "fact_accuracy": float(fact_correct(prediction, truth.key_values)),
        "wrong_value": float(wrong_value(prediction, truth.key_values)),
        "citation_accuracy": float(citation_correct(cited, gold_document_ids=truth.gold_document_ids)),
        "outdated_citation": float(cites_outdated(cited, superseded_ids=truth.superseded_ids)),
        "retrieval_at_1": float(bool(retrieved) and retrieved[0] in truth.gold_document_ids),
        "retrieval_at_k": float(bool(set(retrieved) & truth.gold_document_ids)),
        **score_answer(prediction, reference),
    }


def score_items(
    *,
    item_ids: Sequence[str],
    departments: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[str],
    truths: Sequence[GoldTruth],
    retrieved: Sequence[Sequence[str]],
) -> list[ScoredItem]:
    """Judge each answer (see :func:`judge_answer`); ``retrieved[i]`` are the document ids the
    system's own retriever put into item i's prompt, best first."""
    columns = (item_ids, departments, predictions, references, truths, retrieved)
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise ValueError(f"score_items: inputs of different lengths {sorted(lengths)}")
    return [
        ScoredItem(
            item_id=i,
            department=d,
            prediction=p,
            reference=r,
            scores=judge_answer(p, r, t, list(h)),
            cited=tuple(cited_document_ids(p)),
            retrieved=tuple(h),
        )
        for i, d, p, r, t, h in zip(*columns, strict=True)
    ]


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Interval:
    """A mean and its percentile bootstrap interval."""

    estimate: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high}


def bootstrap_interval(
    values: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` (items drawn with replacement).

    Each of ``resamples`` draws picks n values with replacement and takes their mean; the interval
    is the (α/2, 1 − α/2) quantiles of those means, α = 1 − confidence. For 0/1 values (a share of
    items) it stays within [0, 1]. Seeded: the same inputs give the same interval.
    """
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError("bootstrap_interval: need a non-empty 1-D list of values")
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("bootstrap_interval: resamples must be >= 1 and confidence in (0, 1)")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(data.mean()), float(low), float(high))


# --------------------------------------------------------------------------- the summary


def _mean_of(metric: str, table: Sequence[Mapping[str, float]]):  # type: ignore[no-untyped-def]
    """A MetricFrame metric: the mean of ``metric`` over the items whose row numbers it is given
    (y_true and y_pred are both the row numbers, so every metric sees its own column)."""

    def mean_metric(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
        values = [table[int(row)][metric] for row in y_pred]
        return float(np.mean(values)) if values else math.nan

    mean_metric.__name__ = f"mean_{metric}"
    return mean_metric


@dataclass
class EvaluationSummary:
    """A system's scores on the gold set: ``metrics[m]``, ``by_department[dept][m]``,
    ``intervals[dept or "all"][m]`` (estimate, ci_low, ci_high) and ``items[id][m]``."""

    signature: str
    n: int
    metrics: dict[str, float]
    by_department: dict[str, dict[str, float]]
    department_counts: dict[str, int]
    department_gap: dict[str, float]
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    intervals: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "n": self.n,
            "metrics": self.metrics,
            "by_department": self.by_department,
            "department_counts": self.department_counts,
            "department_gap": self.department_gap,
            "intervals": self.intervals,
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
            intervals=dict(data.get("intervals", {})),
        )

    def item_scores(self, metric: str) -> dict[str, float]:
        return {item_id: float(values[metric]) for item_id, values in self.items.items()}

    def scored_items(self) -> list[ScoredItem]:
        """The stored items back as :class:`ScoredItem` (for restricting a summary to a subset)."""
        return [
            ScoredItem(
                item_id=item_id,
                department=str(values["department"]),
                prediction=str(values["prediction"]),
                reference=str(values.get("reference", "")),
                scores={m: float(values[m]) for m in ALL_METRICS if m in values},
                cited=tuple(values.get("cited", ())),
                retrieved=tuple(values.get("retrieved", ())),
            )
            for item_id, values in self.items.items()
        ]


def summarize(
    items: Sequence[ScoredItem],
    *,
    signature: str,
    metrics: Sequence[str] = ALL_METRICS,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> EvaluationSummary:
    """Overall and per-department means of every metric, computed by fairlearn ``MetricFrame``;
    ``department_gap[m]`` = max − min of the department means (``MetricFrame.difference()``); a
    percentile bootstrap interval over items for every mean (:func:`bootstrap_interval`)."""
    if not items:
        raise ValueError("summarize: no scored items (is the gold set empty?)")
    metrics = [m for m in metrics if all(m in it.scores for it in items)]
    table = [it.scores for it in items]
    rows = np.arange(len(items))
    departments = np.array([it.department for it in items], dtype=object)
    frame = MetricFrame(
        metrics={metric: _mean_of(metric, table) for metric in metrics},
        y_true=rows,
        y_pred=rows,
        sensitive_features=departments,
    )
    overall = frame.overall.to_dict()
    by_group = frame.by_group
    gaps = frame.difference(method="between_groups").to_dict()
    counts: dict[str, int] = {}
    members: dict[str, list[int]] = {}
    for row, it in enumerate(items):
        counts[it.department] = counts.get(it.department, 0) + 1
        members.setdefault(it.department, []).append(row)
    members["all"] = list(range(len(items)))
    intervals = {
        group: {
            m: bootstrap_interval(
                [table[r][m] for r in rows_of], resamples=resamples, confidence=confidence, seed=seed
            ).to_dict()
            for m in metrics
        }
        for group, rows_of in sorted(members.items())
    }
    return EvaluationSummary(
        signature=signature,
        n=len(items),
        metrics={k: float(v) for k, v in overall.items()},
        by_department={
            str(dept): {metric: float(by_group.loc[dept, metric]) for metric in metrics} for dept in by_group.index
        },
        department_counts=dict(sorted(counts.items())),
        department_gap={k: float(v) for k, v in gaps.items()},
        items={
            it.item_id: {
                **{k: float(v) for k, v in it.scores.items()},
                "department": it.department,
                "prediction": it.prediction,
                "reference": it.reference,
                "cited": list(it.cited),
                "retrieved": list(it.retrieved),
            }
            for it in items
        },
        intervals=intervals,
    )


def restrict(summary: EvaluationSummary, item_ids: Collection[str], **kwargs: Any) -> EvaluationSummary:
    """The summary over the items in ``item_ids`` only, recomputed by :func:`summarize`."""
    kept = [it for it in summary.scored_items() if it.item_id in item_ids]
    if not kept:
        raise ValueError("restrict: none of the given gold items was scored")
    return summarize(kept, signature=summary.signature, **kwargs)


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BootstrapResult:
        return cls(
            n=int(data["n"]),
            mean_difference=float(data["mean_difference"]),
            ci_low=float(data["ci_low"]),
            ci_high=float(data["ci_high"]),
            confidence=float(data["confidence"]),
            resamples=int(data["resamples"]),
        )


def _check_bootstrap_args(resamples: int, confidence: float) -> None:
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("bootstrap: resamples must be >= 1 and confidence in (0, 1)")


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
    _check_bootstrap_args(resamples, confidence)
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


def paired_gap_bootstrap(
    candidate: Mapping[str, Sequence[float]],
    champion: Mapping[str, Sequence[float]],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile bootstrap CI of the change in the department gap, candidate gap − champion gap,
    where a gap is the largest minus the smallest department mean.

    Stratified and paired: each resample draws every department's items with replacement from that
    department (the same indices for both systems) and computes both gaps on the draw. A negative
    difference is a narrower gap.
    """
    departments = sorted(set(candidate) & set(champion))
    if len(departments) < 2:
        raise ValueError("paired_gap_bootstrap: need at least two departments scored by both systems")
    _check_bootstrap_args(resamples, confidence)
    rng = np.random.default_rng(seed)
    cand_means, champ_means, observed_cand, observed_champ = [], [], [], []
    for dept in departments:
        cand = np.asarray(candidate[dept], dtype=float)
        champ = np.asarray(champion[dept], dtype=float)
        if cand.shape != champ.shape or cand.size == 0:
            raise ValueError(f"paired_gap_bootstrap: {dept}: need two equal-length, non-empty score lists")
        indices = rng.integers(0, cand.size, size=(resamples, cand.size))
        cand_means.append(cand[indices].mean(axis=1))
        champ_means.append(champ[indices].mean(axis=1))
        observed_cand.append(cand.mean())
        observed_champ.append(champ.mean())
    cand_gap = np.ptp(np.vstack(cand_means), axis=0)
    champ_gap = np.ptp(np.vstack(champ_means), axis=0)
    alpha = 1.0 - confidence
    low, high = np.quantile(cand_gap - champ_gap, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(
        n=sum(len(candidate[d]) for d in departments),
        mean_difference=float(np.ptp(observed_cand) - np.ptp(observed_champ)),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        resamples=resamples,
    )


@dataclass(frozen=True)
class Comparison:
    """Candidate vs champion on the items both were scored on: per metric, overall and per
    department, and the change of the department gap (all paired bootstraps)."""

    metric_differences: dict[str, BootstrapResult]
    department_differences: dict[str, dict[str, BootstrapResult]]
    gap_differences: dict[str, BootstrapResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric_differences": {k: v.to_dict() for k, v in self.metric_differences.items()},
            "department_differences": {
                dept: {m: r.to_dict() for m, r in by_metric.items()}
                for dept, by_metric in self.department_differences.items()
            },
            "gap_differences": {k: v.to_dict() for k, v in self.gap_differences.items()},
        }


def compare(
    candidate: EvaluationSummary,
    champion: EvaluationSummary,
    *,
    metrics: Sequence[str] = ("fact_accuracy", "rougeL"),
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Paired bootstraps of candidate − champion over the shared items: per metric overall, per
    department (each department's shared items), and for the department gap."""
    shared = sorted(set(candidate.items) & set(champion.items))
    if not shared:
        raise ValueError("compare: the candidate and the champion were scored on no common gold item")
    paired = functools.partial(paired_bootstrap, resamples=resamples, confidence=confidence, seed=seed)
    department_of = {i: str(candidate.items[i]["department"]) for i in shared}
    departments = sorted(set(department_of.values()))
    overall: dict[str, BootstrapResult] = {}
    by_department: dict[str, dict[str, BootstrapResult]] = {d: {} for d in departments}
    gaps: dict[str, BootstrapResult] = {}
    for metric in metrics:
        cand_scores = candidate.item_scores(metric)
        champ_scores = champion.item_scores(metric)
        overall[metric] = paired([cand_scores[i] for i in shared], [champ_scores[i] for i in shared])
        per_dept_cand: dict[str, list[float]] = {d: [] for d in departments}
        per_dept_champ: dict[str, list[float]] = {d: [] for d in departments}
        for i in shared:
            per_dept_cand[department_of[i]].append(cand_scores[i])
            per_dept_champ[department_of[i]].append(champ_scores[i])
        for dept in departments:
            by_department[dept][metric] = paired(per_dept_cand[dept], per_dept_champ[dept])
        if len(departments) >= 2:
            gaps[metric] = paired_gap_bootstrap(
                per_dept_cand, per_dept_champ, resamples=resamples, confidence=confidence, seed=seed
            )
    return Comparison(overall, by_department, gaps)


# --------------------------------------------------------------------------- stored rows

# evaluation_items column → the summary's item metric (0/1 for the checks)
ROW_METRICS = {
    "fact_correct": "fact_accuracy",
    "wrong_value": "wrong_value",
    "citation_correct": "citation_accuracy",
    "cites_outdated": "outdated_citation",
    "retrieval_at_1": "retrieval_at_1",
    "retrieval_at_k": "retrieval_at_k",
    "rouge_l": "rougeL",
    "f1": "f1",
}
BOOLEAN_ROWS = ("fact_correct", "wrong_value", "citation_correct", "cites_outdated", "retrieval_at_1", "retrieval_at_k")


def item_rows(summary: EvaluationSummary) -> list[dict[str, Any]]:
    """The summary's items as ``evaluation_items`` rows (item ids are gold item ids)."""
    rows = []
    for item_id, values in summary.items.items():
        row: dict[str, Any] = {
            "gold_item_id": int(item_id),
            "department": values["department"],
            "prediction": values["prediction"],
            "cited_document_ids": list(values.get("cited", [])),
            "retrieved_document_ids": list(values.get("retrieved", [])),
        }
        for column, metric in ROW_METRICS.items():
            if metric not in values:  # judged before the metric existed (wrong_value): unknown, not false
                row[column] = None
                continue
            value = float(values[metric])
            row[column] = bool(value) if column in BOOLEAN_ROWS else value
        rows.append(row)
    return rows
