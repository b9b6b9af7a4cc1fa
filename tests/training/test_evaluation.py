"""The yardstick: judging answers on facts, citations and retrieval, per-department summaries with
intervals, and the paired bootstraps, against hand-computed references and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fairlearn.metrics import MetricFrame
from rouge_score import rouge_scorer
from scipy import stats

from training.evaluation import (
    EvaluationSummary,
    GoldTruth,
    bootstrap_interval,
    compare,
    item_rows,
    judge_answer,
    paired_bootstrap,
    paired_gap_bootstrap,
    restrict,
    score_answer,
    score_items,
    summarize,
)

TRUTH = GoldTruth(
    key_values=("7 years",), gold_document_ids=frozenset({"FIN-1@v2"}), superseded_ids=frozenset({"FIN-1@v1"})
)


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


RIGHT = "Records are kept for 7 years. (source: FIN-1@v2)"


def test_the_right_template_with_a_wrong_value_scores_high_rouge_but_no_fact() -> None:
    wrong = judge_answer("Records are kept for 10 years. (source: FIN-1@v2)", RIGHT, TRUTH, ["FIN-1@v2"])
    assert wrong["rougeL"] > 0.8  # what ROUGE-L cannot see
    assert wrong["fact_accuracy"] == 0.0 and wrong["citation_accuracy"] == 1.0
    assert wrong["wrong_value"] == 1.0  # 10 years where the document says 6: confidently wrong
    vague = judge_answer("Records are kept for a while. (source: FIN-1@v2)", RIGHT, TRUTH, ["FIN-1@v2"])
    assert vague["fact_accuracy"] == 0.0 and vague["wrong_value"] == 0.0  # wrong, but states no other value
    right = judge_answer(RIGHT, RIGHT, TRUTH, ["FIN-2@v1", "FIN-1@v2"])
    assert right["fact_accuracy"] == 1.0 and right["citation_accuracy"] == 1.0
    # retrieval is judged from the system's own ranking: the gold document second is @k, not @1
    assert right["retrieval_at_1"] == 0.0 and right["retrieval_at_k"] == 1.0
    outdated = judge_answer("Records are kept for 6 years. (source: FIN-1@v1)", RIGHT, TRUTH, ["FIN-1@v2"])
    assert right["wrong_value"] == 0.0
    assert outdated["outdated_citation"] == 1.0 and outdated["citation_accuracy"] == 0.0
    assert outdated["retrieval_at_1"] == 1.0


def _truths(n: int) -> list[GoldTruth]:
    return [GoldTruth(key_values=("seven",), gold_document_ids=frozenset({f"D{i}"})) for i in range(n)]


def _items():
    return score_items(
        item_ids=["1", "2", "3", "4", "5"],
        departments=["HR", "HR", "Legal", "Legal", "Legal"],
        predictions=["the cat sat", "dog", "x y z", "seven years", "nothing here"],
        references=["the cat sat", "the dog ran", "x y", "retention is seven years", "something else"],
        truths=_truths(5),
        retrieved=[["D0"], ["X"], ["D2"], ["D3"], ["X"]],
    )


def test_summary_by_department_matches_hand_means_and_metricframe() -> None:
    summary = summarize(_items(), signature="sig")
    f1 = {"1": 1.0, "2": 2 * 1 * 0.5 / 1.5, "3": 2 * (2 / 3) * 1 / (5 / 3), "4": 2 * 1 * 0.5 / 1.5, "5": 0.0}
    assert summary.by_department["HR"]["f1"] == pytest.approx((f1["1"] + f1["2"]) / 2)
    assert summary.by_department["Legal"]["f1"] == pytest.approx((f1["3"] + f1["4"] + f1["5"]) / 3)
    assert summary.metrics["f1"] == pytest.approx(sum(f1.values()) / 5)
    assert summary.by_department["HR"]["retrieval_at_1"] == 0.5
    assert summary.by_department["Legal"]["retrieval_at_1"] == pytest.approx(2 / 3)
    assert summary.by_department["Legal"]["fact_accuracy"] == pytest.approx(1 / 3)  # only "seven years"
    assert summary.by_department["HR"]["fact_accuracy"] == 0.0
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


def test_every_aggregate_is_the_mean_of_the_stored_item_rows() -> None:
    summary = summarize(_items(), signature="sig")
    rows = item_rows(summary)
    assert [r["gold_item_id"] for r in rows] == [1, 2, 3, 4, 5]
    legal = [r for r in rows if r["department"] == "Legal"]
    assert summary.by_department["Legal"]["fact_accuracy"] == pytest.approx(np.mean([r["fact_correct"] for r in legal]))
    assert summary.metrics["rougeL"] == pytest.approx(np.mean([r["rouge_l"] for r in rows]))
    assert summary.metrics["retrieval_at_1"] == pytest.approx(np.mean([r["retrieval_at_1"] for r in rows]))
    assert summary.metrics["wrong_value"] == pytest.approx(np.mean([r["wrong_value"] for r in rows]))
    # a summary stored before wrong_value was measured gives rows that say "unknown", not "no"
    older = summary.to_dict()
    for values in older["items"].values():
        del values["wrong_value"]
    assert {r["wrong_value"] for r in item_rows(EvaluationSummary.from_dict(older))} == {None}


def test_restrict_recomputes_on_the_kept_items() -> None:
    summary = summarize(_items(), signature="sig")
    legal = restrict(summary, {"3", "4", "5"})
    assert legal.n == 3 and list(legal.by_department) == ["Legal"]
    assert legal.metrics["f1"] == pytest.approx(summary.by_department["Legal"]["f1"])


def test_intervals_are_percentile_bootstraps_that_agree_with_scipy() -> None:
    rng = np.random.default_rng(3)
    values = (rng.random(60) < 0.3).astype(float)
    ours = bootstrap_interval(values, resamples=20000, seed=1)
    theirs = stats.bootstrap(
        (values,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95, random_state=1
    ).confidence_interval
    assert ours.estimate == pytest.approx(values.mean())
    assert ours.ci_low == pytest.approx(theirs.low, abs=0.02) and ours.ci_high == pytest.approx(theirs.high, abs=0.02)
    # a share's interval stays within [0, 1]; a constant has none
    assert 0.0 <= ours.ci_low <= ours.ci_high <= 1.0
    assert bootstrap_interval([1.0, 1.0, 1.0]).to_dict() == {"estimate": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    summary = summarize(_items(), signature="sig", resamples=500)
    assert set(summary.intervals) == {"HR", "Legal", "all"}
    assert summary.intervals["all"]["f1"]["estimate"] == pytest.approx(summary.metrics["f1"])


def test_gap_bootstrap_is_exact_for_constant_departments_and_sees_a_narrowing() -> None:
    # every item of a department scores the same: each resample's gap is the observed gap
    result = paired_gap_bootstrap({"A": [1.0] * 10, "B": [0.5] * 10}, {"A": [1.0] * 10, "B": [0.0] * 10})
    assert result.mean_difference == pytest.approx(-0.5)  # gap 1.0 → 0.5
    assert (result.ci_low, result.ci_high) == (pytest.approx(-0.5), pytest.approx(-0.5))
    with pytest.raises(ValueError, match="two departments"):
        paired_gap_bootstrap({"A": [1.0]}, {"A": [0.0]})


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
        truths=_truths(5),
        retrieved=[["D0"], ["X"], ["D2"], ["D3"], ["X"]],
    )
    candidate = summarize(better, signature="sig")
    comparison = compare(candidate, champion, metrics=("f1", "fact_accuracy"), resamples=500)
    # only item 2 changed (HR): its f1 went from 2/3 to 1
    assert comparison.metric_differences["f1"].mean_difference == pytest.approx((1 - 2 / 3) / 5)
    assert comparison.department_differences["HR"]["f1"].mean_difference == pytest.approx((1 - 2 / 3) / 2)
    assert comparison.department_differences["Legal"]["f1"].mean_difference == pytest.approx(0.0)
    assert comparison.department_differences["Legal"]["f1"].ci_low == pytest.approx(0.0)
    assert comparison.gap_differences["fact_accuracy"].mean_difference == pytest.approx(0.0)
