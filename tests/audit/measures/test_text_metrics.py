"""Text metrics against hand-computed values and against rouge-score itself."""

from __future__ import annotations

import random
import re
import string

import pytest
from rouge_score import rouge_scorer, tokenizers
from scipy import stats

from audit.measures import text_metrics
from audit.measures.text_metrics import (
    best_scores,
    exact_match,
    normalize_answer,
    rank_agreement,
    rouge_l,
    rouge_scores,
    token_f1,
)


def test_normalize_answer_lowers_and_strips_punctuation_articles_and_whitespace() -> None:
    assert normalize_answer("The  Cat's hat, an APPLE!\n") == "cats hat apple"
    assert normalize_answer("theory of a thesis") == "theory of thesis"  # only whole-word articles go


TRICKY_TEXTS = [
    "",
    "   ",
    "!!!",
    "The  Cat's hat, an APPLE!\n",
    "Über alles – naïve café’s ÄNDERN; 30% of $5.00 (e.g. x_y-z)\tend.",
    "İstanbul ǅ ﬁle KELVIN\u212a 3.14_15 a/an/the-the",
    "ärger\nthe\r\nan a\u00a0the",
]


def test_normalize_answer_is_the_squad_scripts() -> None:
    def squad(text: str) -> str:  # the SQuAD v1.1 evaluation script's steps, character by character
        text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
        return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())

    for text in TRICKY_TEXTS:
        assert normalize_answer(text) == squad(text), text


def test_rouge_tokens_are_rouge_scores() -> None:
    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
    for text in TRICKY_TEXTS:
        assert text_metrics._rouge_tokens(text) == tokenizer.tokenize(text), text


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


def test_rank_agreement_of_a_perfect_ranking() -> None:
    reference = "alpha beta gamma delta"
    predictions = ["alpha", "alpha beta", "alpha beta gamma", "alpha beta gamma delta"]
    scores = best_scores(predictions, [[reference]] * 4)
    assert set(scores) == {"rougeL", "token_f1"}
    for name, values in scores.items():
        result = rank_agreement(name, values.tolist(), [1.0, 2.0, 3.5, 5.0])
        assert (result.n, result.spearman, result.kendall) == (4, pytest.approx(1.0), pytest.approx(1.0))


def test_rank_agreement_against_scipy_and_its_undefined_cases() -> None:
    scores, humans = [0.1, 0.4, 0.35, 0.8, 0.8], [1, 3, 2, 5, 4]
    result = rank_agreement("rougeL", scores, humans)
    tau = stats.kendalltau(scores, humans)
    assert (result.metric, result.n) == ("rougeL", 5)
    assert (result.kendall, result.kendall_p) == (pytest.approx(tau.statistic), pytest.approx(tau.pvalue))
    assert result.spearman == pytest.approx(stats.spearmanr(scores, humans).statistic)
    assert rank_agreement("x", [0.1, 0.2], [1, 2]).spearman is None  # fewer than 3
    assert rank_agreement("x", [0.5, 0.5, 0.5], [1, 2, 3]).kendall is None  # a constant side


def test_best_scores_take_the_best_reference() -> None:
    scores = best_scores(["the cat sat"], [["a dog ran", "the cat sat down"]])
    assert scores["rougeL"][0] == pytest.approx(rouge_l("the cat sat", "the cat sat down"))
    assert scores["token_f1"][0] == pytest.approx(token_f1("the cat sat", "the cat sat down"))
