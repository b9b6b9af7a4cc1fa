"""Text metrics against hand-computed values and against rouge-score itself."""

from __future__ import annotations

import random

import pytest
from rouge_score import rouge_scorer
from scipy import stats

from audit.measures.text_metrics import (
    correlation_with_humans,
    exact_match,
    normalize_answer,
    rouge_l,
    rouge_scores,
    token_f1,
)


def test_normalize_answer_lowers_and_strips_punctuation_articles_and_whitespace() -> None:
    assert normalize_answer("The  Cat's hat, an APPLE!\n") == "cats hat apple"
    assert normalize_answer("theory of a thesis") == "theory of thesis"  # only whole-word articles go


def test_exact_match_compares_normalised_text() -> None:
    assert exact_match("The cat!", "cat") == 1.0
    assert exact_match("a cat", "cats") == 0.0


def test_token_f1_by_hand() -> None:
    # normalised: [cat, sat, on, mat] vs [cat, is, on, mat] -> 3 common, P = R = 3/4
    assert token_f1("the cat sat on the mat", "the cat is on the mat") == pytest.approx(0.75)
    # repeated tokens count as a multiset: [a1 a1 b2] vs [a1 b2 b2] -> common {a1, b2} = 2, P = R = 2/3
    assert token_f1("a1 a1 b2", "a1 b2 b2") == pytest.approx(2 / 3)
    # P = 1/1, R = 1/4 -> F1 = 2·1·0.25 / 1.25 = 0.4
    assert token_f1("policy", "policy needs manager approval") == pytest.approx(0.4)
    assert token_f1("nothing shared", "entirely different") == 0.0


def test_token_f1_empty_sides() -> None:
    assert token_f1("", "") == 1.0
    assert token_f1("the", "a") == 1.0  # both normalise to nothing
    assert token_f1("", "something") == 0.0


def test_rouge_scores_by_hand() -> None:
    scores = rouge_scores("the cat sat on the mat", "the cat is on the mat")
    # unigrams: the×2, cat, on, mat shared = 5 of 6 each side
    assert scores["rouge1"] == pytest.approx(5 / 6)
    # bigrams: the-cat, on-the, the-mat shared = 3 of 5 each side
    assert scores["rouge2"] == pytest.approx(3 / 5)
    # longest common subsequence "the cat on the mat" = 5 of 6 each side
    assert scores["rougeL"] == pytest.approx(5 / 6)


def test_rouge_l_equals_rouge_score_on_many_pairs() -> None:
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rng = random.Random(3)
    vocabulary = ["the", "policy", "Leave", "days", "30", "manager's", "approve", "HR", "ändern", "x"]
    pairs = [("", ""), ("", "a b"), ("!!!", "a"), ("Über alles", "über alles")]
    for _ in range(500):
        pairs.append(
            tuple(  # type: ignore[arg-type]
                " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 70))) for _ in range(2)
            )
        )
    for prediction, reference in pairs:
        expected = scorer.score(reference, prediction)["rougeL"].fmeasure
        assert rouge_l(prediction, reference) == pytest.approx(expected, abs=1e-12), (prediction, reference)


def test_correlation_with_humans_perfect_ranking() -> None:
    reference = "alpha beta gamma delta"
    predictions = ["alpha", "alpha beta", "alpha beta gamma", "alpha beta gamma delta"]
    humans = [1.0, 2.0, 3.5, 5.0]
    results = {c.metric: c for c in correlation_with_humans(predictions, [reference] * 4, humans)}
    assert set(results) == {"rougeL", "token_f1"}
    for result in results.values():
        assert result.n == 4
        assert result.rho == pytest.approx(1.0)


def test_correlation_with_humans_matches_scipy() -> None:
    predictions = ["a b c", "a x", "q r s", "a b", "b c d e"]
    references = ["a b c d"] * 5
    humans = [4.0, 2.0, 1.0, 4.0, 3.0]
    token_scores = [token_f1(p, r) for p, r in zip(predictions, references, strict=True)]
    expected = stats.spearmanr(token_scores, humans)
    result = next(c for c in correlation_with_humans(predictions, references, humans) if c.metric == "token_f1")
    assert result.rho == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


def test_correlation_is_none_when_undefined() -> None:
    few = correlation_with_humans(["a", "b"], ["a", "a"], [1.0, 2.0])
    constant_humans = correlation_with_humans(["a", "b", "a b"], ["a b"] * 3, [3.0, 3.0, 3.0])
    for result in [*few, *constant_humans]:
        assert result.rho is None and result.p_value is None
    assert few[0].n == 2
