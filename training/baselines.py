"""No-model baselines for the loop's yardstick: what copying from the retrieved document scores.

A generator that cannot beat copying a sentence of the top retrieved document is not earning its
keep, so every loop report shows two extractive answers beside the models:

- ``first_sentence``: the top retrieved document's first sentence, as it stands;
- ``best_sentence``: the top retrieved document's sentence sharing the most word types with the
  question (ties: the earlier sentence), followed by the document's citation ``(source: ID)``.

Both see exactly what the generator sees first (the top hit of the same retriever). Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from training.retrieval import Hit

Baseline = Literal["first_sentence", "best_sentence"]
BASELINES: tuple[Baseline, ...] = ("first_sentence", "best_sentence")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about which sentence answers a question.
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "how",
        "in",
        "is",
        "it",
        "long",
        "many",
        "much",
        "of",
        "on",
        "or",
        "the",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "with",
        "our",
        "we",
        "you",
        "your",
        "is",
        "are",
        "was",
        "were",
        "this",
        "that",
        "these",
        "those",
        "there",
        "their",
        "it's",
    ]
)


def sentences(text: str) -> list[str]:
    """The text's sentences: split after ``.``, ``!`` or ``?`` followed by white space."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOPWORDS}


def best_sentence(question: str, text: str) -> str:
    """The sentence of ``text`` sharing the most content words with ``question`` (the first on a tie)."""
    candidates = sentences(text)
    if not candidates:
        return ""
    asked = _content_words(question)
    scores = [len(asked & _content_words(s)) for s in candidates]
    return candidates[scores.index(max(scores))]


def baseline_answer(kind: Baseline, question: str, hits: Sequence[Hit]) -> str:
    """The baseline's answer to ``question`` from the retrieved ``hits`` (best first); empty without hits."""
    if not hits:
        return ""
    top = hits[0]
    if kind == "first_sentence":
        found = sentences(top.text)
        return found[0] if found else ""
    return f"{best_sentence(question, top.text)} (source: {top.document_id})"
