"""Counterfactual copy drills for fine-tuning: keep a generator faithful to its context.

An example whose answer quotes a sentence of its top retrieved document can be fitted two ways:
by copying the value from the context, or by remembering it. Only copying carries over to facts
the model was never trained on, and fine-tuning on a company's examples (each fact with one value)
rewards remembering just as much. A drill is the example with one number of the quoted sentence
changed *in the document and in the answer alike*: it can only be fitted by copying.

    drills = copy_drills(question, answer, context, variants=2, rng=random.Random(7))

Rules: the answer's text before its citation ("(source: …)") must be a sentence that occurs word for
word in the top document (the quoted sentence); a drill changes one number in it — an integer or a
decimal, with or without thousands separators, not part of a document id, a date or a year — to
another (×¼ to ×4, never the same), formatted like the original (separators and decimals kept). The
number is changed only inside that sentence of the document, never elsewhere. Answers that quote
nothing, or quote no number, get no drills: names are left alone (another name could be a real
one). Deterministic for ``rng``.
"""

from __future__ import annotations

import calendar
import dataclasses
import random
import re
from collections.abc import Sequence
from typing import Any

_CITATION = re.compile(r"\s*[(\[]\s*sources?\s*:[^()\[\]]*[)\]]\s*$", re.IGNORECASE)
# a number not glued to letters, "@", "-" or "/" (document ids, versions, dates like 2025-03-01)
_NUMBER = re.compile(r"(?<![\w@/.,-])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?![\w@/-]|[.,]\d)")
# month names and abbreviations, as the fact normaliser reads them (audit/measures/facts.py)
_MONTHS = {name.lower() for name in (*calendar.month_name, *calendar.month_abbr) if name} | {"sept"}


def quoted_sentence(answer: str, document_text: str) -> str | None:
    """The answer's text before its citation, when it occurs word for word in ``document_text``."""
    sentence = _CITATION.sub("", " ".join(answer.split())).strip()
    if len(sentence) < 12 or sentence not in " ".join(document_text.split()):
        return None
    return sentence


def _numbers(sentence: str) -> list[re.Match[str]]:
    """The sentence's numbers that are not a day or a year of a written date."""
    found = []
    for match in _NUMBER.finditer(sentence):
        before = sentence[: match.start()].split()[-1:] or [""]
        after = sentence[match.end() :].split()[:1] or [""]
        if before[0].lower().strip(",.") in _MONTHS or after[0].lower().strip(",.") in _MONTHS:
            continue  # "1 March 2025", "March 1, 2025"
        if re.fullmatch(r"(19|20)\d\d", match.group()):
            continue  # a year
        found.append(match)
    return found


def _other_number(raw: str, rng: random.Random) -> str:
    grouped = "," in raw
    value = float(raw.replace(",", ""))
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    while True:
        factor = rng.choice((0.25, 0.5, 1.5, 2.0, 3.0, 4.0))
        other = round(value * factor, decimals) if value else float(rng.randint(1, 9))
        if decimals == 0:
            other = max(int(other), 1)
        if other != value:
            break
    return f"{other:,.{decimals}f}" if grouped else f"{other:.{decimals}f}"


def copy_drills(
    question: str, answer: str, context: Sequence[Any], *, variants: int, rng: random.Random
) -> list[tuple[str, str, list[Any]]]:
    """Up to ``variants`` (question, answer, context) drills of one example (see the module docstring).

    ``context`` are the retrieved hits (``training.retrieval.Hit``, best first); a drill's context is
    the same hits with the top one's text changed in the quoted sentence.
    """
    if variants <= 0 or not context:
        return []
    top = context[0]
    sentence = quoted_sentence(answer, top.text)
    if sentence is None:
        return []
    numbers = _numbers(sentence)
    if not numbers:
        return []
    document = " ".join(top.text.split())
    drills = []
    for _ in range(variants):
        match = rng.choice(numbers)
        changed = sentence[: match.start()] + _other_number(match.group(), rng) + sentence[match.end() :]
        new_top = dataclasses.replace(top, text=document.replace(sentence, changed))
        drills.append((question, " ".join(answer.split()).replace(sentence, changed), [new_top, *context[1:]]))
    return drills
