"""Automatic text-overlap scores of an answer against a reference: SQuAD exact match and token F1, ROUGE.

Shared by the metrics-vs-humans report and by the training evaluation. ROUGE comes from the
``rouge-score`` package directly (``evaluate.load`` would fetch a metric script from a hub).
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # rouge-score brings nltk and scipy, a second to import: loaded on first use
    from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")

_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop ASCII punctuation, drop the articles a/an/the, and
    collapse whitespace (in that order, as the official SQuAD v1.1 evaluation script does)."""
    return " ".join(_squad_tokens(text))


def _squad_tokens(text: str) -> list[str]:
    """``normalize_answer(text).split()`` without joining the tokens only to split them again.

    ``str.translate`` deletes the punctuation in one pass in C: the script's generator over the
    characters, one Python step per character, was half the metrics-vs-humans report at 1M answers
    (5,200 answers of 700 characters).
    """
    return _ARTICLES.sub(" ", text.lower().translate(_DROP_PUNCTUATION)).split()


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 over normalised whitespace tokens.

    common = |multiset(pred) ∩ multiset(ref)|, precision = common / |pred|, recall = common / |ref|,
    F1 = 2·P·R / (P + R). When either side has no tokens the score is 1.0 if both are empty, else 0.0.
    """
    prediction_tokens = _squad_tokens(prediction)
    reference_tokens = _squad_tokens(reference)
    if not prediction_tokens or not reference_tokens:
        return float(prediction_tokens == reference_tokens)
    common = sum((Counter(prediction_tokens) & Counter(reference_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(prediction_tokens)
    recall = common / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


@functools.lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)


def rouge_scores(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures of ``prediction`` against ``reference``.

    rouge-score's default tokenizer lower-cases and keeps runs of ``[a-z0-9]`` only, so text in a
    non-Latin script scores 0.0; no stemming, as in ``evaluate``'s default.
    """
    scores = _scorer().score(reference, prediction)  # rouge-score takes (target, prediction)
    return {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure, equal to ``RougeScorer(["rougeL"])``'s (same tokenizer, same F-measure;
    the tests check equality), computed about fifteen times faster.

    rouge-score finds the longest common subsequence with a quadratic table in pure Python (about
    4 ms for two 90-token answers); this uses the bit-parallel LCS of Crochemore et al. (2001):
    with M[t] the bit set of the positions where token t occurs in the shorter sequence and V
    starting all ones, each token t of the longer one does U = V & M[t], V = (V + U) | (V − U),
    and the LCS length is the number of zero bits left in V. Then P = LCS/|prediction|,
    R = LCS/|reference|, F = 2PR/(P + R).
    """
    prediction_tokens = _rouge_tokens(prediction)
    reference_tokens = _rouge_tokens(reference)
    if not prediction_tokens or not reference_tokens:
        return 0.0
    lcs = _lcs_length(prediction_tokens, reference_tokens)
    precision, recall = lcs / len(prediction_tokens), lcs / len(reference_tokens)
    from rouge_score import scoring

    return float(scoring.fmeasure(precision, recall))


def _rouge_tokens(text: str) -> list[str]:
    """The tokens of rouge-score's ``DefaultTokenizer(use_stemmer=False)`` (the tests check equality).

    It lower-cases, replaces each run of characters outside ``[a-z0-9]`` by a space, splits on
    whitespace and then drops every token that is not ``[a-z0-9]+`` (only empty ones can be left):
    the maximal runs of ``[a-z0-9]`` in the lower-cased text, which one ``findall`` gives without
    a regular-expression match per token (a third of the time ROUGE-L took).
    """
    return _ROUGE_TOKEN.findall(text.lower())


def _lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    longer, shorter = (first, second) if len(first) >= len(second) else (second, first)
    positions: dict[str, int] = {}
    for index, token in enumerate(shorter):
        positions[token] = positions.get(token, 0) | (1 << index)
    all_ones = (1 << len(shorter)) - 1
    vector = all_ones
    for token in longer:
        matched = vector & positions.get(token, 0)
        vector = ((vector + matched) | (vector - matched)) & all_ones
    return len(shorter) - vector.bit_count()


# --- agreement of the automatic scores with people -----------------------------------------------

AUTOMATIC_METRICS = {"rougeL": rouge_l, "token_f1": token_f1}


@dataclass(frozen=True)
class RankAgreement:
    """How well an automatic score orders items (or systems) as people do."""

    metric: str
    n: int
    spearman: float | None  # Spearman's ρ; None when undefined (n < 3 or a constant side)
    spearman_p: float | None
    kendall: float | None  # Kendall's τ-b (ties corrected); None when undefined
    kendall_p: float | None


def rank_agreement(metric: str, scores: Sequence[float], humans: Sequence[float]) -> RankAgreement:
    """Spearman's ρ (``scipy.stats.spearmanr``) and Kendall's τ-b (``scipy.stats.kendalltau``: pairs
    ordered alike minus pairs ordered oppositely, over the geometric mean of the untied pairs on each
    side) between ``scores`` and ``humans``, each with its two-sided p-value; None below 3 items or
    when a side is constant."""
    from scipy import stats

    x = np.asarray(scores, dtype=float)
    y = np.asarray(humans, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return RankAgreement(metric, len(x), None, None, None, None)
    rho = stats.spearmanr(x, y)
    tau = stats.kendalltau(x, y)
    return RankAgreement(
        metric, len(x), float(rho.statistic), float(rho.pvalue), float(tau.statistic), float(tau.pvalue)
    )


def best_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
    """Each automatic metric of each prediction against the best of its references (the highest
    score over them, as multi-reference ROUGE takes it): one array per metric."""
    return {
        name: np.array(
            [max(metric(p, r) for r in refs) for p, refs in zip(predictions, references, strict=True)], dtype=float
        )
        for name, metric in AUTOMATIC_METRICS.items()
    }
