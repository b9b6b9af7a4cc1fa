"""The gate's item set: a gold item whose question or reference answer leaked into the training data,
an SME correction or an applied fix is left out and counted; items without key values are left out."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tests import factories
from training.config import load_config
from training.recipes.evaluate import GoldQuestion, clean_gate_items, prepare


def test_clean_gate_items_compares_normalised_questions_and_answers() -> None:
    gold = [
        GoldQuestion("1", "How long?", "Seven years.", "HR", ("D",), ("7 years",)),
        GoldQuestion("2", "How much?", "  EUR 5,000. ", "HR", ("D",), ("EUR 5,000",)),
        GoldQuestion("3", "Who owns it?", "The HR team.", "HR", ("D",), ("HR team",)),
        GoldQuestion("4", "When?", "Monday.", "HR", ("D",), ()),  # no key values: cannot be judged
    ]
    seen = {"how long?", "eur 5,000."}
    clean, leaked, incomplete = clean_gate_items(gold, seen)
    assert [g.item_id for g in clean] == ["3"] and (leaked, incomplete) == (2, 1)


def test_a_planted_answer_leak_is_caught_and_left_out_of_the_gate(session: Session) -> None:
    company = factories.training_company(session)
    cfg = load_config()
    version_id = company["dataset_version"].id
    before = prepare(session, cfg, trained_on=[version_id])
    assert len(before.gold) == len(company["gold"]) and before.excluded_as_leaked == 0

    # an SME writes, as the correction of some other question, one gold item's reference answer word
    # for word: the gate must no longer count that item (its answer is now training signal)
    leaked = company["gold"][0]
    legal = factories.department(session, "Legal")
    sme = factories.user(session, role="sme", departments=[legal])
    model = factories.model_version(session, "v0", alias="champion")
    ans = factories.answer(session, dept=legal, model=model, question="What did the memo say about the period?")
    factories.confirmed_review(
        session, ans=ans, sme=sme, root_cause="hallucination", corrected_answer=leaked.reference_answer.upper()
    )
    after = prepare(session, cfg, trained_on=[version_id])
    assert after.excluded_as_leaked == 1
    assert str(leaked.id) not in {g.item_id for g in after.gold}
    assert len(after.gold) == len(company["gold"]) - 1
    assert after.signature != before.signature  # a different item set never reuses a stored evaluation
