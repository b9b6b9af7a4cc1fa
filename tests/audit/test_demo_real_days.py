"""Days answered for real: the questions, and the truth an auditor rates a real answer by."""

from __future__ import annotations

import datetime as dt
import random
import statistics

from audit.demo.corpus import build_corpus, fact_kind, grounded_answer
from audit.demo.traffic import DemoQuestion, demo_questions, judge_real_answer, rate

CORPUS = build_corpus(7)


def _question(changed: bool = False) -> DemoQuestion:
    fact = next(f for f in CORPUS.facts if f.department == "HR" and (f.outdated_value is not None) == changed)
    return DemoQuestion("real-x-0001", "How long?", "HR", dt.datetime(2026, 3, 3, 9, tzinfo=dt.UTC), fact, "ref")


def _answer_stating(question: DemoQuestion, value: str, document_id: str) -> str:
    fact = question.fact
    kind = fact_kind(fact.department, fact.key)
    return grounded_answer(kind, title=fact.title, subject=fact.subject, value=value, document_id=document_id)


def _judge(question: DemoQuestion, text: str, top: tuple[str, str], seed: int = 0):  # type: ignore[no-untyped-def]
    return judge_real_answer(
        random.Random(seed),
        question,
        answer_text=text,
        sources=[{"document_id": top[0], "department": top[1], "score": 0.5}],
        confidence=-0.5,
        latency_ms=100,
    )


def test_questions_are_deterministic_dated_and_asked_like_the_history() -> None:
    first = demo_questions(CORPUS, first_day=dt.date(2026, 3, 2), days=3, label="real-before")
    again = demo_questions(CORPUS, first_day=dt.date(2026, 3, 2), days=3, label="real-before")
    other = demo_questions(CORPUS, first_day=dt.date(2026, 3, 5), days=3, label="real-after")
    assert first == again and first != other
    assert {q.created_at.date() for q in first} == {dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4)}
    # 2 March 2026 is a Monday: three weekdays of 120 ± 10 questions
    assert 330 <= len(first) <= 390
    assert len({q.external_id for q in first}) == len(first)
    assert first[0].external_id.startswith("real-before-20260302-")
    assert {q.asker for q in first} == set(CORPUS.departments)
    gold = {g.question for g in CORPUS.gold}
    assert not gold & {q.question for q in first}  # never a held-out gold question
    assert demo_questions(CORPUS, first_day=dt.date(2026, 3, 2), days=0, label="x") == []


def test_a_right_value_from_the_right_document_is_right() -> None:
    q = _question()
    judged = _judge(q, _answer_stating(q, q.fact.value, q.fact.document_id), (q.fact.document_id, "HR"))
    assert judged.correct and judged.error is None and judged.intruder_department is None
    assert judged.true_scores.accuracy >= 4


def test_a_planted_wrong_value_gets_a_low_accuracy_rating() -> None:
    q = _question()
    kind = fact_kind("HR", q.fact.key)
    wrong = next(v for v in kind.values if v != q.fact.value)
    text = _answer_stating(q, wrong, q.fact.document_id)
    judged = _judge(q, text, (q.fact.document_id, "HR"))
    assert not judged.correct and judged.error == "hallucination"
    assert judged.true_scores.accuracy <= 2
    ratings = [
        r for seed in range(30) for r in rate(random.Random(seed), _judge(q, text, (q.fact.document_id, "HR"), seed))
    ]
    assert statistics.mean(r.accuracy for r in ratings) <= 2.2  # noise and a lenient auditor move it little
    low = [r for r in ratings if r.accuracy <= 2]
    assert low and all(r.suggested_correction == "ref" for r in low)  # the correction the SME can use


def test_another_departments_document_on_top_is_a_retrieval_error_an_auditor_may_flag() -> None:
    q = _question()
    kind = fact_kind("HR", q.fact.key)
    wrong = next(v for v in kind.values if v != q.fact.value)
    judged = _judge(q, _answer_stating(q, wrong, "FIN-N01@v1"), ("FIN-N01@v1", "Finance"))
    assert judged.error == "retrieval_error"
    assert (judged.intruder_department, judged.intruder_on_top, judged.about_department) == ("Finance", True, "HR")
    flagged = [r for seed in range(40) for r in rate(random.Random(seed), judged) if r.bias_flag]
    assert flagged and {(r.favoured_department, r.disfavoured_department) for r in flagged} == {("Finance", "HR")}


def test_the_superseded_versions_value_is_an_outdated_source() -> None:
    q = _question(changed=True)
    assert q.fact.outdated_value is not None and q.fact.outdated_document_id is not None
    text = _answer_stating(q, q.fact.outdated_value, q.fact.document_id)
    assert _judge(q, text, (q.fact.document_id, "HR")).error == "outdated_source"
