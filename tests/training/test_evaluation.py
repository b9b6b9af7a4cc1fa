"""Scoring, per-department summaries and the paired bootstrap, against hand-computed references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fairlearn.metrics import MetricFrame
from rouge_score import rouge_scorer

from training.evaluation import EvaluationSummary, compare, paired_bootstrap, score_answer, score_items, summarize


def test_score_answer_matches_hand_computed_f1_and_rouge_score() -> None:
    scores = score_answer("The cat sat.", "the cat sat down")
    # normalised tokens: prediction [cat, sat], reference [cat, sat, down]: P = 1, R = 2/3
    assert scores["f1"] == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert scores["exact_match"] == 0.0
    reference = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"]).score("the cat sat down", "The cat sat.")
    # rouge-score keeps articles: prediction [the, cat, sat] vs reference [the, cat, sat, down]
    assert scores["rougeL"] == pytest.approx(reference["rougeL"].fmeasure) == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert scores["rouge2"] == pytest.approx(reference["rouge2"].fmeasure)
    assert score_answer("A retention of 7 days", "retention of 7 days")["exact_match"] == 1.0


def _items():
    return score_items(
        item_ids=["1", "2", "3", "4", "5"],
        departments=["HR", "HR", "Legal", "Legal", "Legal"],
        predictions=["the cat sat", "dog", "x y z", "seven years", "nothing here"],
        references=["the cat sat", "the dog ran", "x y", "retention is seven years", "something else"],
        retrieval_hits=[True, False, True, True, False],
    )


def test_summary_by_department_matches_hand_means_and_metricframe() -> None:
    summary = summarize(_items(), signature="sig")
    f1 = {"1": 1.0, "2": 2 * 1 * 0.5 / 1.5, "3": 2 * (2 / 3) * 1 / (5 / 3), "4": 2 * 1 * 0.5 / 1.5, "5": 0.0}
    assert summary.by_department["HR"]["f1"] == pytest.approx((f1["1"] + f1["2"]) / 2)
    assert summary.by_department["Legal"]["f1"] == pytest.approx((f1["3"] + f1["4"] + f1["5"]) / 3)
    assert summary.metrics["f1"] == pytest.approx(sum(f1.values()) / 5)
    assert summary.by_department["HR"]["retrieval_accuracy"] == 0.5
    assert summary.by_department["Legal"]["retrieval_accuracy"] == pytest.approx(2 / 3)
    assert summary.department_gap["f1"] == pytest.approx(
        abs(summary.by_department["HR"]["f1"] - summary.by_department["Legal"]["f1"])
    )
    assert summary.department_counts == {"HR": 2, "Legal": 3}

    # the same numbers from MetricFrame fed per-item scores directly
    items = _items()
    frame = MetricFrame(
        metrics=lambda y_true, y_pred: float(np.mean(y_pred)),
        y_true=np.zeros(len(items)),
        y_pred=np.array([it.scores["rougeL"] for it in items]),
        sensitive_features=[it.department for it in items],
    )
    assert summary.by_department["Legal"]["rougeL"] == pytest.approx(frame.by_group["Legal"])
    assert summary.department_gap["rougeL"] == pytest.approx(frame.difference())


def test_summary_round_trips_through_its_stored_form() -> None:
    summary = summarize(_items(), signature="sig")
    again = EvaluationSummary.from_dict(summary.to_dict())
    assert again == summary
    assert again.item_scores("f1")["1"] == 1.0


def test_bootstrap_of_a_constant_difference_is_that_constant() -> None:
    rng = np.random.default_rng(1)
    champion = rng.uniform(0, 1, 50)
    result = paired_bootstrap(champion + 0.01, champion, resamples=500)
    # pairing: the scores vary wildly but every difference is 0.01, so the interval has no width
    assert result.mean_difference == pytest.approx(0.01)
    assert (result.ci_low, result.ci_high) == (pytest.approx(0.01), pytest.approx(0.01))


def test_bootstrap_quantiles_match_the_exact_resampling_distribution() -> None:
    # d = (0, 0, 3): a resample's mean is k where k ~ Binomial(3, 1/3) counts the draws of the 3.
    # P(k = 0) = 8/27 > 0.025 → the 2.5% quantile is 0; P(k = 3) = 1/27 > 0.025 → the 97.5% is 3.
    result = paired_bootstrap([0, 0, 3], [0, 0, 0], resamples=20000, seed=5)
    assert result.mean_difference == pytest.approx(1.0)
    assert (result.ci_low, result.ci_high) == (0.0, 3.0)
    # at 50% confidence the quartiles: P(k ≤ 0) = 0.296 ≥ 0.25 → 0; P(k ≤ 1) = 0.741 < 0.75 → 2
    narrow = paired_bootstrap([0, 0, 3], [0, 0, 0], resamples=20000, confidence=0.5, seed=5)
    assert (narrow.ci_low, narrow.ci_high) == (0.0, 2.0)


def test_bootstrap_interval_matches_the_normal_approximation_for_many_items() -> None:
    rng = np.random.default_rng(2)
    differences = rng.normal(0.05, 0.2, 400)
    result = paired_bootstrap(differences, np.zeros(400), resamples=4000, seed=0)
    # the bootstrap SE of a mean is sd·sqrt((n−1)/n)/sqrt(n); the 95% interval is ≈ mean ± 1.96·SE
    se = differences.std(ddof=0) / math.sqrt(400)
    assert result.ci_low == pytest.approx(differences.mean() - 1.96 * se, abs=0.1 * se * 1.96 + 1e-3)
    assert result.ci_high == pytest.approx(differences.mean() + 1.96 * se, abs=0.1 * se * 1.96 + 1e-3)


def test_bootstrap_is_seeded_and_checks_its_inputs() -> None:
    a, b = [0.1, 0.5, 0.9, 0.3], [0.2, 0.4, 0.1, 0.3]
    assert paired_bootstrap(a, b, seed=4) == paired_bootstrap(a, b, seed=4)
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap([1, 2], [1])
    with pytest.raises(ValueError, match="no paired items"):
        paired_bootstrap([], [])


def test_compare_pairs_items_by_id_and_reports_department_differences() -> None:
    champion = summarize(_items(), signature="sig")
    better = score_items(
        item_ids=["1", "2", "3", "4", "5"],
        departments=["HR", "HR", "Legal", "Legal", "Legal"],
        predictions=["the cat sat", "the dog ran", "x y z", "seven years", "nothing here"],
        references=["the cat sat", "the dog ran", "x y", "retention is seven years", "something else"],
        retrieval_hits=[True, False, True, True, False],
    )
    candidate = summarize(better, signature="sig")
    comparison = compare(candidate, champion, resamples=500)
    # only item 2 changed (HR): its f1 went from 2/3 to 1
    assert comparison.metric_differences["f1"].mean_difference == pytest.approx((1 - 2 / 3) / 5)
    assert comparison.department_differences["HR"]["f1"] == pytest.approx((1 - 2 / 3) / 2)
    assert comparison.department_differences["Legal"]["f1"] == pytest.approx(0.0)
