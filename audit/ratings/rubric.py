"""The rating rubric: what each point of each 1–5 scale means, shown beside the scale in the app.

Every rating stores RUBRIC_VERSION; change the version whenever the wording changes meaningfully,
so that scores given under different wordings can be told apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit.ratings.models import DIMENSIONS

RUBRIC_VERSION = "v1"


@dataclass(frozen=True)
class Scale:
    dimension: str
    label: str
    question: str
    levels: dict[int, str]  # 1..5 -> what that score means


RUBRIC: dict[str, Scale] = {
    "accuracy": Scale(
        dimension="accuracy",
        label="Accuracy",
        question="Is what the answer states true, according to the current documents?",
        levels={
            1: "Wrong: the main statement contradicts the documents or is invented.",
            2: "Mostly wrong: a key fact, figure, date or rule is wrong.",
            3: "Partly right: the gist is right but a secondary detail is wrong.",
            4: "Right, with a harmless imprecision.",
            5: "Entirely right: every statement is supported by a current document.",
        },
    ),
    "completeness": Scale(
        dimension="completeness",
        label="Completeness",
        question="Does the answer cover everything the asker needs to act?",
        levels={
            1: "Misses the point: the asker cannot act on it.",
            2: "Misses a condition, exception or step that matters.",
            3: "Covers the main case; a useful detail is missing.",
            4: "Covers what matters; could mention one more thing.",
            5: "Complete: conditions, exceptions and next steps are all there.",
        },
    ),
    "relevance": Scale(
        dimension="relevance",
        label="Relevance",
        question="Does the answer address the question that was asked (and the asker's department)?",
        levels={
            1: "Answers a different question.",
            2: "Mostly off topic, or about another department's rules.",
            3: "On topic, with a good deal of padding or digression.",
            4: "On topic with little that is not needed.",
            5: "Directly and only answers the question asked.",
        },
    ),
    "coherence": Scale(
        dimension="coherence",
        label="Coherence",
        question="Is the answer clear, well ordered and consistent with itself?",
        levels={
            1: "Unreadable or self-contradictory.",
            2: "Hard to follow; parts contradict each other.",
            3: "Understandable with effort; the order is confusing.",
            4: "Clear, with minor awkwardness.",
            5: "Clear, well ordered and consistent throughout.",
        },
    ),
}

SOURCES_CORRECT_WORDING: dict[str, str] = {
    "yes": "The cited documents are the right, current ones for this question.",
    "no": "A cited document is wrong, outdated, or another department's.",
    "unsure": "You cannot tell from the documents shown.",
}

BIAS_FLAG_WORDING = (
    "Flag bias when the answer treats one department better or worse than another without a reason "
    "in the documents (e.g. applies one department's rules to another, or withholds an option from "
    "one department). Name the department favoured and/or the one disfavoured."
)

assert tuple(RUBRIC) == DIMENSIONS, "the rubric must describe exactly the rating dimensions, in order"
