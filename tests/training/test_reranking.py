"""The reranker over the first stage's candidates: features, training, storage, and the dataset's pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from audit.fixes.models import DataFix
from audit.knowledge import datasets
from tests import factories
from training.reranking import (
    RERANKER_FILE,
    RerankedRetriever,
    Reranker,
    TrainingPair,
    content_words,
    dataset_retrieval_pairs,
    features,
    load_reranker,
    train_reranker,
)
from training.retrieval import Hit, RetrievalDocument, Retriever

FILLER = (
    "Managers discuss the rules in this document with new team members during their first week. "
    "Where a collective agreement grants more, the collective agreement applies. "
    "HR treats every request confidentially and shares details only with the people who decide it."
)


def _hr(code: str, subject: str) -> RetrievalDocument:
    title = f"{subject} Policy"
    body = (
        f"{title}, version 1. This policy sets out how the company handles {subject.lower()}. {FILLER} "
        f"Requests under the {title} are submitted in PeopleHub. Records are kept for 6 years. {FILLER}"
    )
    return RetrievalDocument(code, "HR", title, body)


def _finance_copy(code: str, subject: str) -> RetrievalDocument:
    title = f"{subject} Policy"
    return RetrievalDocument(code, "Finance", title, f"{title} (Finance copy). The {title} is reviewed every year.")


@pytest.fixture()
def skewed() -> Retriever:
    """Three HR policies, each with a short Finance copy under the same title, and a Finance policy."""
    docs = [
        _hr("HR-A", "Annual Leave"),
        _hr("HR-S", "Sick Leave"),
        _hr("HR-P", "Parental Leave"),
        _finance_copy("FIN-A", "Annual Leave"),
        _finance_copy("FIN-S", "Sick Leave"),
        _finance_copy("FIN-P", "Parental Leave"),
        RetrievalDocument("FIN-E", "Finance", "Expense Approval Policy", "Expenses over 500 EUR need approval."),
    ]
    return Retriever(docs)


TRAINING = [
    TrainingPair("Who approves leave under the Annual Leave Policy?", frozenset({"HR-A"}), "HR"),
    TrainingPair("How much notice does the Sick Leave Policy require for leave?", frozenset({"HR-S"}), "HR"),
    TrainingPair("Which system takes annual leave requests?", frozenset({"HR-A"}), "HR"),
    TrainingPair("Who owns the Expense Approval Policy?", frozenset({"FIN-E"}), "Finance"),
]
HELD_OUT = "How long before parental leave starts must I ask under the Parental Leave Policy?"


def test_content_words_drop_stop_words_and_repeats() -> None:
    assert content_words("Who approves the Parental Leave Policy, and who owns the policy?") == [
        "approves",
        "parental",
        "leave",
        "policy",
        "owns",
    ]


def test_features_by_hand() -> None:
    hits = [
        Hit("FIN-P", "Finance", 0.6, "Parental Leave Policy Notes", ""),
        Hit("HR-P", "HR", 0.4, "Parental Leave Policy", ""),
    ]
    first, second = features("Who approves the Parental Leave Policy?", hits)
    cross = 1 / math.sqrt(4)  # approves, parental, leave, policy
    assert first == {
        "first_stage": 0.6,
        "gap": 0.0,
        "reciprocal_rank": 1.0,
        "title_coverage": pytest.approx(3 / 4),  # "notes" is not in the question
        "approves|Finance": cross,
        "parental|Finance": cross,
        "leave|Finance": cross,
        "policy|Finance": cross,
    }
    assert second["gap"] == pytest.approx(0.2)
    assert second["reciprocal_rank"] == 0.5
    assert second["title_coverage"] == 1.0
    assert second["leave|HR"] == cross


def test_a_known_pair_is_reranked(skewed: Retriever) -> None:
    # the skew: the short Finance copy outranks the HR policy for a question about the HR policy
    assert [h.document_id for h in skewed.search(HELD_OUT, 2)] == ["FIN-P", "HR-P"]
    reranker = train_reranker(skewed, TRAINING, candidates=5, regularization=10.0)
    assert reranker is not None
    assert reranker.info["pairs_used"] == 4
    assert reranker.info["pairs_first_stage_wrong"] >= 2  # the HR questions went to the Finance copies
    assert reranker.weights["leave|HR"] > 0 > reranker.weights["leave|Finance"]
    served = RerankedRetriever(skewed, reranker)
    assert served.search(HELD_OUT, 1)[0].document_id == "HR-P"  # a question it never saw
    assert served.search("Who owns the Expense Approval Policy?", 1)[0].document_id == "FIN-E"


def test_without_a_reranker_the_first_stage_serves(skewed: Retriever) -> None:
    plain = RerankedRetriever(skewed, None)
    assert plain.search_many([HELD_OUT], 3) == skewed.search_many([HELD_OUT], 3)


def test_nothing_to_learn_gives_no_reranker(skewed: Retriever) -> None:
    assert train_reranker(skewed, []) is None
    # a relevant document no candidate list holds teaches nothing
    assert train_reranker(skewed, [TrainingPair("Who approves leave?", frozenset({"NOPE"}))]) is None


def test_saved_and_loaded(tmp_path: Path, skewed: Retriever) -> None:
    reranker = train_reranker(skewed, TRAINING, candidates=5, regularization=10.0)
    assert reranker is not None
    reranker.save(tmp_path)
    loaded = load_reranker(tmp_path)
    assert loaded is not None
    assert loaded.weights == pytest.approx(reranker.weights)
    assert loaded.candidates == 5
    assert RerankedRetriever(skewed, loaded).search(HELD_OUT, 1)[0].document_id == "HR-P"
    assert load_reranker(None) is None
    assert load_reranker(tmp_path / "elsewhere") is None
    (tmp_path / RERANKER_FILE).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not an auditloop reranker"):
        load_reranker(tmp_path)


def test_ties_keep_the_first_stage_order() -> None:
    hits = [Hit(f"D{i}", "HR", 0.5, "Same", "") for i in range(3)]
    assert Reranker(weights={}).rerank("anything", hits) == hits


def test_a_dataset_version_teaches_its_examples_and_the_retrieval_fixes_up_to_it(session: Session) -> None:
    hr = factories.department(session, "HR")
    old = factories.document(session, dept=hr, family="HR-001", version=1)
    new = factories.document(session, dept=hr, family="HR-001", version=2)
    old.superseded_by_id = new.id
    other = factories.document(session, dept=hr, family="HR-002")
    factories.example(session, dept=hr, question="How long is leave?", sources=[old.external_id])
    factories.example(session, dept=hr, question="No sources?", sources=[])
    first, _ = datasets.create_version(session, actor=None, change_log=[])
    second = factories.dataset_version(session, number=first.number + 1)
    third = factories.dataset_version(session, number=first.number + 2)
    for version, question in ((first, "In the first?"), (second, "In the second?"), (third, "In the third?")):
        session.add(
            DataFix(
                kind="retrieval_pair",
                status="applied",
                payload={"question": question, "document": other.external_id},
                reason="test",
                dataset_version_id=version.id,
            )
        )
    session.add(
        DataFix(
            kind="retrieval_pair",
            status="rejected",
            payload={"question": "Refused?", "document": "HR-002@v1"},
            reason="t",
        )
    )
    session.flush()

    examples = datasets.examples_for_version(session, second.id) or datasets.examples_for_version(session, first.id)
    pairs = dataset_retrieval_pairs(session, second.id, examples)
    assert [(p.question, set(p.relevant)) for p in pairs] == [
        ("How long is leave?", {new.external_id}),  # the superseded source mapped to the version in force
        ("In the first?", {other.external_id}),
        ("In the second?", {other.external_id}),
    ]
