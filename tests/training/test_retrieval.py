"""Retrieval over current documents, accuracy@k, and the prompt built from the hits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from audit.knowledge.models import RetrievalEvalPair
from audit.sampling.models import GoldItem
from tests import factories
from training.prompts import ANSWER_CUE, build_prompt, encode_example, format_training_example, select_passage
from training.retrieval import (
    Hit,
    RetrievalDocument,
    Retriever,
    current_documents,
    evaluation_pairs,
    retrieval_accuracy_at_k,
)


@dataclass(frozen=True)
class CorpusDoc:
    """Shaped like the demo corpus's documents."""

    external_id: str
    department: str
    title: str
    body: str
    superseded_by: str | None = None


HAND_CORPUS = [
    CorpusDoc(
        "FIN-1@v1",
        "Finance",
        "Expense Approval Policy",
        "Expenses above EUR 5,000 need CFO approval. Receipts are kept 7 years.",
    ),
    CorpusDoc(
        "HR-1@v1", "HR", "Parental Leave Policy", "Parents get 16 weeks of paid leave. Requests go through Workday."
    ),
    CorpusDoc(
        "ENG-1@v1",
        "Engineering",
        "Deploy Pipeline Runbook",
        "Deploys run through Shipyard. Rollbacks need the on-call engineer.",
    ),
    CorpusDoc(
        "LEG-1@v1", "Legal", "Data Retention Policy", "Contracts are retained for 10 years after expiry in LexVault."
    ),
    # the outdated version of the parental leave policy: must never be retrieved
    CorpusDoc(
        "HR-0@v0", "HR", "Parental Leave Policy", "Parents get 12 weeks of paid leave. Requests go by email.", "HR-1@v1"
    ),
]


def test_search_returns_the_matching_document_first() -> None:
    retriever = Retriever.from_documents(HAND_CORPUS)
    hits = retriever.search("How many weeks of parental leave do parents get?", k=2)
    assert hits[0].document_id == "HR-1@v1"
    assert hits[0].department == "HR"
    assert hits[0].title == "Parental Leave Policy"
    assert 0 < hits[0].score <= 1
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert retriever.search("Who must approve expenses above EUR 5,000?", k=1)[0].document_id == "FIN-1@v1"


def test_superseded_documents_are_not_indexed() -> None:
    retriever = Retriever.from_documents(HAND_CORPUS)
    assert len(retriever) == 4
    hits = retriever.search("parental leave weeks email", k=5)
    assert "HR-0@v0" not in {h.document_id for h in hits}


def test_documents_sharing_no_term_are_left_out() -> None:
    retriever = Retriever.from_documents(HAND_CORPUS)
    assert retriever.search("zebra xylophone", k=3) == []
    assert Retriever([]).search("anything", k=3) == []
    with pytest.raises(ValueError):
        retriever.search("expenses", k=0)


def test_accuracy_at_k_matches_the_hand_count() -> None:
    retriever = Retriever.from_documents(HAND_CORPUS)
    expected_rank = {
        q: [h.document_id for h in retriever.search(q, k=4)]
        for q in ("parental leave", "deploy rollback", "contracts retained years receipts", "receipts kept years")
    }
    # hand-built pairs: two whose document ranks first, one ranked second, one never retrieved
    pairs = [
        ("parental leave", "HR-1@v1"),
        ("deploy rollback", "ENG-1@v1"),
        ("contracts retained years receipts", {expected_rank["contracts retained years receipts"][1], "NOPE"}),
        ("receipts kept years", "HR-0@v0"),
    ]
    assert expected_rank["parental leave"][0] == "HR-1@v1"
    assert expected_rank["deploy rollback"][0] == "ENG-1@v1"
    assert len(expected_rank["contracts retained years receipts"]) >= 2
    assert retrieval_accuracy_at_k(retriever, pairs, k=1) == 2 / 4
    assert retrieval_accuracy_at_k(retriever, pairs, k=2) == 3 / 4
    assert retrieval_accuracy_at_k(retriever, pairs, k=4) == 3 / 4
    assert math.isnan(retrieval_accuracy_at_k(retriever, [], k=1))


def test_current_documents_reads_only_documents_not_superseded(session: Session) -> None:
    hr = factories.department(session, "HR")
    old = factories.document(session, dept=hr, family="LEAVE", version=1, title="Leave Policy", body="Twelve weeks.")
    new = factories.document(session, dept=hr, family="LEAVE", version=2, title="Leave Policy", body="Sixteen weeks.")
    old.superseded_by_id = new.id
    session.flush()
    docs = current_documents(session)
    assert [d.document_id for d in docs] == ["LEAVE@v2"]
    assert docs[0] == RetrievalDocument("LEAVE@v2", "HR", "Leave Policy", "Sixteen weeks.")


def test_an_outdated_source_fix_takes_the_superseded_version_out_of_the_served_index(session: Session) -> None:
    """Version 1 of the leave policy was never marked superseded, so it is indexed and answers the
    carry-over question; an SME's ``outdated_source`` decision supersedes it once the fix is applied,
    and the index a model version serves from (``retriever_for_version`` over ``current_documents``)
    no longer holds it."""
    from audit.fixes import service as fixes
    from training.assistant import retriever_for_version

    hr = factories.department(session, "HR")
    old = factories.document(
        session,
        dept=hr,
        family="LEAVE",
        version=1,
        title="Annual Leave Policy",
        body="Staff may carry over 5 days of unused annual leave into the next year.",
    )
    factories.document(
        session,
        dept=hr,
        family="LEAVE",
        version=2,
        title="Annual Leave Policy",
        body="Staff get 28 days of annual leave. Up to 8 days may be moved to the following year.",
    )
    model = factories.model_version(session)
    question = "How many days of unused annual leave can staff carry over?"
    before = retriever_for_version(model, current_documents(session)).search(question, k=2)
    assert [h.document_id for h in before] == ["LEAVE@v1", "LEAVE@v2"]

    sources = [{"document_id": "LEAVE@v1", "department": "HR", "score": before[0].score}]
    ans = factories.answer(session, dept=hr, model=model, question=question, sources=sources)
    sme = factories.user(session, role="sme", departments=[hr])
    factories.confirmed_review(
        session, ans=ans, sme=sme, root_cause="outdated_source", corrected_answer="Up to 8 days (LEAVE@v2)."
    )
    fixes.propose_fixes(session)
    fixes.auto_apply(session)

    session.refresh(old)
    assert old.superseded_by_id is not None
    after = retriever_for_version(model, current_documents(session)).search(question, k=2)
    assert [h.document_id for h in after] == ["LEAVE@v2"]


def test_evaluation_pairs_map_outdated_references_to_the_current_version(session: Session) -> None:
    hr = factories.department(session, "HR")
    old = factories.document(session, dept=hr, family="SICK", version=1, title="Sick Leave Policy")
    new = factories.document(session, dept=hr, family="SICK", version=2, title="Sick Leave Policy")
    other = factories.document(session, dept=hr, family="PAY", title="Payroll Calendar")
    old.superseded_by_id = new.id
    session.add_all(
        [
            GoldItem(
                question="How long is sick leave?",
                question_hash=factories.sha("q1"),
                reference_answer="Ten days.",
                department_id=hr.id,
                reference_document_ids=["SICK@v1"],
            ),
            RetrievalEvalPair(
                question="When is payday?", question_hash=factories.sha("q2"), document_id=other.id, department_id=hr.id
            ),
        ]
    )
    session.flush()
    pairs = dict(evaluation_pairs(session))
    assert pairs == {
        "How long is sick leave?": frozenset({"SICK@v2"}),
        "When is payday?": frozenset({other.external_id}),
    }


def test_select_passage_keeps_the_sentence_that_answers() -> None:
    body = (
        "The Travel Policy applies to every employee. The Travel Policy is owned by the CFO. "
        "Under the Travel Policy, hotel bookings go through Navan. The Travel Policy is reviewed yearly. "
        "Under the Travel Policy, receipts are kept for 7 years."
    )
    passage = select_passage("How long are receipts kept under the Travel Policy?", body, max_chars=120)
    assert "receipts are kept for 7 years" in passage
    assert len(passage) <= 120
    assert select_passage("anything", "Short text.", max_chars=100) == "Short text."


def test_select_passage_puts_the_most_related_sentence_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights by hand: every sentence shares "travel" and "policy" with the question (log 2 each);
    the last also "receipts" (in 1 of 4 sentences: log 5), "kept" and "under" (in 2 of 4: log 3
    each), the second only "kept" and "under". So the last sentence leads, the second follows, and
    the two left tie and keep their document order."""
    import training.prompts

    body = (
        "The Travel Policy applies to every employee. Hotel bookings under the Travel Policy are kept in Navan. "
        "The Travel Policy is reviewed yearly. Under the Travel Policy, receipts are kept for 7 years."
    )
    question = "How long are receipts kept under the Travel Policy?"
    sentences = body.split(". ")
    assert (
        select_passage(question, body, max_chars=1000)
        == ". ".join([sentences[3].rstrip("."), sentences[1], sentences[0], sentences[2]]) + "."
    )
    monkeypatch.setattr(training.prompts, "PASSAGE_ORDER", "document")
    assert select_passage(question, body, max_chars=1000) == body


def test_prompt_lists_the_hits_then_the_question() -> None:
    hits = [
        Hit("HR-1@v1", "HR", 0.8, "Parental Leave Policy", "Parents get 16 weeks of paid leave."),
        Hit("FIN-1@v1", "Finance", 0.1, "Expense Policy", "Receipts are kept 7 years."),
    ]
    prompt = build_prompt("  How long is parental\nleave? ", hits)
    assert prompt == (
        "Context:\n"
        "[HR-1@v1] Parental Leave Policy (HR): Parents get 16 weeks of paid leave.\n"
        "[FIN-1@v1] Expense Policy (Finance): Receipts are kept 7 years.\n"
        "\n"
        "Question: How long is parental leave?\n"
        f"{ANSWER_CUE}"
    )
    prompt, completion = format_training_example("How long is parental leave?", "16 weeks.\n", hits)
    assert prompt.endswith(ANSWER_CUE) and completion == " 16 weeks."


def test_encode_example_masks_the_prompt_and_ends_with_eos(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)
    prompt, completion = "Question: How long?\nAnswer:", " 16 weeks."
    encoded = encode_example(tokenizer, prompt, completion, max_length=512)
    prompt_len = len(tokenizer(prompt)["input_ids"])
    assert encoded.labels[:prompt_len] == [-100] * prompt_len
    assert encoded.labels[prompt_len:] == encoded.input_ids[prompt_len:]
    assert encoded.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(encoded.input_ids[prompt_len:-1]) == completion
    # too long: the prompt loses its beginning, the completion stays whole
    short = encode_example(tokenizer, "word " * 400 + prompt, completion, max_length=64)
    assert len(short.input_ids) == 64
    assert short.input_ids[-len(encoded.input_ids) + prompt_len :] == encoded.input_ids[prompt_len:]
