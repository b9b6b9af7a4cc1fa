"""Counterfactual copy drills for fine-tuning (training/drills.py)."""

from __future__ import annotations

import random

from audit.measures.facts import states_value
from training.drills import copy_drills, quoted_sentence
from training.retrieval import Hit

DOC = (
    "Purpose. Claims above EUR 25,000 need CFO approval within 10 business days. "
    "This policy took effect on 1 March 2025. Records are kept for 7 years (see FIN-2@v1)."
)
TOP = Hit("FIN-1@v2", "Finance", 0.9, "Expense Policy", DOC)
OTHER = Hit("HR-1@v1", "HR", 0.2, "Leave Policy", "Leave lasts 10 days.")
ANSWER = "Claims above EUR 25,000 need CFO approval within 10 business days. (source: FIN-1@v2)"


def test_a_drill_changes_one_number_in_the_document_and_the_answer_alike() -> None:
    drills = copy_drills("Which claims need the CFO?", ANSWER, [TOP, OTHER], variants=4, rng=random.Random(3))
    assert len(drills) == 4
    for question, answer, context in drills:
        assert question == "Which claims need the CFO?"
        sentence = answer.removesuffix(" (source: FIN-1@v2)")
        assert sentence != ANSWER.removesuffix(" (source: FIN-1@v2)")
        assert sentence in context[0].text  # the document states what the answer says
        # exactly one of the two numbers changed, and only inside the quoted sentence
        assert states_value(sentence, "EUR 25,000") != states_value(sentence, "10 business days")
        assert context[0].text.endswith(
            "This policy took effect on 1 March 2025. Records are kept for 7 years (see FIN-2@v1)."
        )
        assert context[0].document_id == "FIN-1@v2" and context[1] is OTHER  # the rest untouched
    # thousands separators kept: "EUR 25,000" becomes e.g. "EUR 50,000", never "EUR 50000"
    amounts = [a for _, a, _ in drills if "EUR 25,000" not in a]
    assert amounts and all(", " not in a.split("EUR ")[1][:8] and "," in a.split("EUR ")[1][:8] for a in amounts)


def test_no_drill_without_a_quoted_sentence_with_a_number() -> None:
    rng = random.Random(1)
    # not quoted from the top document
    assert copy_drills("q", "Claims need approval within 10 days. (source: FIN-1@v2)", [TOP], variants=2, rng=rng) == []
    # quoted, but only a date and a document id: no quantity to change
    dated = "This policy took effect on 1 March 2025. (source: FIN-1@v2)"
    assert quoted_sentence(dated, DOC) == "This policy took effect on 1 March 2025."
    assert copy_drills("q", dated, [TOP], variants=2, rng=rng) == []
    assert copy_drills("q", ANSWER, [], variants=2, rng=rng) == []
    assert copy_drills("q", ANSWER, [TOP], variants=0, rng=rng) == []


def test_drills_are_deterministic_for_the_generator() -> None:
    first = copy_drills("q", ANSWER, [TOP], variants=3, rng=random.Random(9))
    again = copy_drills("q", ANSWER, [TOP], variants=3, rng=random.Random(9))
    assert [a for _, a, _ in first] == [a for _, a, _ in again]
