"""Fix proposals per root cause, the leak and duplicate guards, and the policy gates on applying."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.auditlog.models import AuditLogEntry
from audit.errors import ConflictError, PermissionDenied, ValidationError
from audit.fixes import service as fixes
from audit.fixes.models import DataFix
from audit.fixes.policy import FixesPolicy
from audit.fixes.proposals import (
    CarriedExample,
    TextDocument,
    carry_over,
    rebalance_weights,
    same_template,
    similar_pairs,
    target_shares,
    under_covered_topics,
)
from audit.knowledge import datasets
from audit.knowledge.hashing import example_content_hash
from audit.knowledge.models import Document, Example, RetrievalEvalPair
from tests import factories as f

QUESTION = "How many days of annual leave do full-time staff get?"
WORDS = ["leave", "days", "annual", "staff", "expenses", "approve", "deploy", "the", "how", "many", "policy", "hr"]
CORRECTION = "Full-time staff get 28 days of annual leave, including public holidays (HR-LEAVE v2)."


def _by_kind(report_ids: list[int], session: Session) -> dict[str, list[DataFix]]:
    grouped: dict[str, list[DataFix]] = {}
    for fix in session.scalars(select(DataFix).where(DataFix.id.in_(report_ids)).order_by(DataFix.id)):
        grouped.setdefault(fix.kind, []).append(fix)
    return grouped


@pytest.fixture
def world(session: Session) -> dict:
    """Two departments, an SME and a lead, a leave policy in two versions and a few examples."""
    hr = f.department(session, "HR")
    legal = f.department(session, "Legal")
    leave_v1 = f.document(session, dept=hr, family="HR-LEAVE", version=1, title="Annual Leave Policy")
    leave_v2 = f.document(session, dept=hr, family="HR-LEAVE", version=2, title="Annual Leave Policy")
    return {
        "hr": hr,
        "legal": legal,
        "leave_v1": leave_v1,
        "leave_v2": leave_v2,
        "sme": f.user(session, role="sme", departments=[hr]),
        "lead": f.user(session, role="lead"),
        "model": f.model_version(session),
    }


def _answer(session: Session, world: dict, *, question: str = QUESTION, cites: list[Document] | None = None):
    sources = [{"document_id": d.external_id, "department": "HR", "score": 0.9} for d in (cites or [])]
    return f.answer(session, dept=world["hr"], model=world["model"], question=question, sources=sources)


# --------------------------------------------------------------------------- root causes


def test_wrong_training_data_adds_the_correction_and_quarantines_conflicting_examples(session, world) -> None:
    conflicting = f.example(session, dept=world["hr"], question=QUESTION, answer="Staff get 20 days.")
    reworded = f.example(
        session, dept=world["legal"], question="how many days of annual leave do full-time staff get", answer="25 days"
    )
    agreeing = f.example(session, dept=world["hr"], question=QUESTION + " ", answer=" " + CORRECTION.upper())
    agreeing.content_hash = example_content_hash(agreeing.question, agreeing.answer)  # as ingest stores it
    unrelated = f.example(session, dept=world["hr"], question="Who approves travel expenses?", answer="Your manager.")
    ans = _answer(session, world, cites=[world["leave_v2"]])
    review = f.confirmed_review(
        session, ans=ans, sme=world["sme"], root_cause="wrong_training_data", corrected_answer=CORRECTION
    )

    report = fixes.propose_fixes(session)

    assert report.reviews == 1
    by_kind = _by_kind(report.proposed + [i for i, _ in report.refused], session)
    # the agreeing example normalises to the same pair as the correction: the correction is a duplicate
    assert [fx.status for fx in by_kind["add_example"]] == ["rejected"]
    assert by_kind["add_example"][0].decision_note == (
        f"duplicate: example {agreeing.id} has the same question and answer"
    )
    quarantined = sorted(fx.payload["example_id"] for fx in by_kind["quarantine_example"])
    assert quarantined == sorted([conflicting.id, reworded.id])
    assert unrelated.id not in quarantined
    assert all(fx.review_item_id == review.id and fx.status == "proposed" for fx in by_kind["quarantine_example"])


def test_correction_example_carries_question_department_sources_and_review(session, world) -> None:
    ans = _answer(session, world, cites=[world["leave_v2"]])
    review = f.confirmed_review(
        session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer=CORRECTION
    )

    report = fixes.propose_fixes(session)
    [fix] = session.scalars(select(DataFix).where(DataFix.id.in_(report.proposed))).all()
    assert fix.kind == "add_example" and fix.status == "proposed"
    assert fix.payload["question"] == QUESTION
    assert fix.payload["answer"] == CORRECTION
    assert fix.payload["department_id"] == world["hr"].id
    assert fix.payload["source_document_ids"] == ["HR-LEAVE@v2"]
    assert fix.payload["content_hash"] == example_content_hash(QUESTION, CORRECTION)

    applied = fixes.auto_apply(session)

    assert applied.applied == [fix.id] and applied.version_created
    example = session.get(Example, fix.payload["example_id"])
    assert example is not None
    assert (example.origin, example.origin_review_id, example.status) == ("correction", review.id, "active")
    assert example.source_document_ids == ["HR-LEAVE@v2"]
    version = datasets.version_by_number(session, applied.dataset_version or 0)
    assert version.is_current
    assert version.change_log == [{"fix": fix.id, "kind": "add_example", "review_item": review.id}]
    assert [(r.example_id, r.weight) for r in datasets.examples_for_version(session, version.id)] == [(example.id, 3)]
    assert fix.status == "applied" and fix.dataset_version_id == version.id
    assert fix.decided_by_id is None and fix.decision_note == fixes.AUTO_NOTE and fix.decided_at is not None


def test_sme_named_document_is_the_correction_source(session, world) -> None:
    ans = _answer(session, world, cites=[world["leave_v1"]])
    f.confirmed_review(
        session,
        ans=ans,
        sme=world["sme"],
        root_cause="wrong_training_data",
        corrected_answer=CORRECTION,
        correct_document=world["leave_v2"],
    )
    report = fixes.propose_fixes(session)
    [fix] = [fx for fx in _by_kind(report.proposed, session)["add_example"]]
    assert fix.payload["source_document_ids"] == ["HR-LEAVE@v2"]


def test_outdated_source_supersedes_the_document_and_quarantines_examples_citing_it(session, world) -> None:
    v1, v2 = world["leave_v1"], world["leave_v2"]
    stale_a = f.example(session, dept=world["hr"], question="Leave days?", answer="20 days.", sources=["HR-LEAVE@v1"])
    stale_b = f.example(
        session, dept=world["hr"], question="Carry over leave?", answer="5 days.", sources=[v1.external_id]
    )
    f.example(
        session, dept=world["hr"], question="Old leave?", answer="x", sources=[v1.external_id], status="quarantined"
    )
    current = f.example(session, dept=world["hr"], question="Leave now?", answer="28 days.", sources=[v2.external_id])
    ans = _answer(session, world, question="Can I carry leave into next year?", cites=[v1])
    review = f.confirmed_review(
        session, ans=ans, sme=world["sme"], root_cause="outdated_source", corrected_answer="Up to 8 days (v2)."
    )

    report = fixes.propose_fixes(session)

    by_kind = _by_kind(report.proposed, session)
    [supersede] = by_kind["supersede_document"]
    assert supersede.payload["document_id"] == v1.id and supersede.payload["superseded_by_id"] == v2.id
    assert sorted(fx.payload["example_id"] for fx in by_kind["quarantine_example"]) == [stale_a.id, stale_b.id]
    [correction] = by_kind["add_example"]
    assert correction.payload["source_document_ids"] == ["HR-LEAVE@v2"]
    assert report.refused == []

    applied = fixes.auto_apply(session)

    # supersession and correction are safe; quarantining waits for a lead
    assert sorted(applied.applied) == sorted([supersede.id, correction.id])
    session.refresh(v1)
    assert v1.superseded_by_id == v2.id
    assert session.get(Example, stale_a.id).status == "active"  # type: ignore[union-attr]
    lead = world["lead"]
    waiting = [fx.id for fx in fixes.waiting_for_lead(session)]
    assert sorted(waiting) == sorted(fx.id for fx in by_kind["quarantine_example"])

    approved = fixes.apply_fixes(session, actor=lead, fix_ids=waiting, note="stale leave facts")

    assert approved.version_created
    for example_id in (stale_a.id, stale_b.id):
        assert session.get(Example, example_id).status == "quarantined"  # type: ignore[union-attr]
    assert session.get(Example, current.id).status == "active"  # type: ignore[union-attr]
    for fix in by_kind["quarantine_example"]:
        assert (fix.status, fix.decided_by_id, fix.decision_note) == ("applied", lead.id, "stale leave facts")
    assert all(fx.review_item_id == review.id for fx in by_kind["quarantine_example"])


def test_two_reviews_of_the_same_outdated_document_propose_each_fix_once(session, world) -> None:
    v1 = world["leave_v1"]
    stale = f.example(session, dept=world["hr"], question="Leave days?", answer="20 days.", sources=[v1.external_id])
    for question, correction in (("Leave in 2026?", "28 days."), ("Carry-over?", "8 days.")):
        ans = _answer(session, world, question=question, cites=[v1])
        f.confirmed_review(
            session, ans=ans, sme=world["sme"], root_cause="outdated_source", corrected_answer=correction
        )

    by_kind = _by_kind(fixes.propose_fixes(session).proposed, session)

    assert len(by_kind["supersede_document"]) == 1
    assert [fx.payload["example_id"] for fx in by_kind["quarantine_example"]] == [stale.id]
    assert len(by_kind["add_example"]) == 2


def test_retrieval_error_adds_an_evaluation_pair(session, world) -> None:
    ans = _answer(session, world, question="Where is the leave policy?", cites=[world["leave_v1"]])
    f.confirmed_review(
        session, ans=ans, sme=world["sme"], root_cause="retrieval_error", correct_document=world["leave_v2"]
    )
    report = fixes.propose_fixes(session)
    [pair_fix] = _by_kind(report.proposed, session)["retrieval_pair"]

    applied = fixes.auto_apply(session)

    assert applied.applied == [pair_fix.id]
    assert not applied.version_created  # the training data did not change
    [pair] = session.scalars(select(RetrievalEvalPair)).all()
    assert (pair.question, pair.document_id, pair.department_id) == (
        "Where is the leave policy?",
        world["leave_v2"].id,
        world["hr"].id,
    )


def test_retrieval_error_without_a_named_document_is_refused_with_the_reason(session, world) -> None:
    ans = _answer(session, world, question="Where is the leave policy?")
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="retrieval_error")
    report = fixes.propose_fixes(session)
    assert report.proposed == []
    [(_, reason)] = report.refused
    assert reason == "the SME named no correct document for the retrieval error"


def test_department_bias_proposes_weights_and_under_covered_topics_for_a_lead(session, world) -> None:
    hr, legal = world["hr"], world["legal"]
    finance = f.department(session, "Finance")
    covered = f.document(session, dept=hr, family="HR-EXPENSES", title="Expenses")
    uncovered = f.document(session, dept=hr, family="HR-PARENTAL", title="Parental Leave")
    legal_examples = [f.example(session, dept=legal) for _ in range(6)]
    hr_examples = [f.example(session, dept=hr, sources=[covered.external_id]) for _ in range(2)]
    ans = _answer(session, world, question="What parental leave do I get?")
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="department_bias", reasons=["bias_flag"])

    report = fixes.propose_fixes(session)

    [rebalance] = _by_kind(report.proposed, session)["rebalance"]
    # uniform target over 3 departments, N = 8: Legal ceil(8/3/6) = 1, HR ceil(8/3/2) = 2, Finance has none
    assert rebalance.payload["weights"] == {"HR": 2, "Legal": 1}
    assert rebalance.payload["counts"] == {"Finance": 0, "HR": 2, "Legal": 6}
    topics = rebalance.payload["under_covered_topics"]
    # HR-LEAVE (v2 current) and HR-PARENTAL have no examples; HR-EXPENSES has 2 (the minimum)
    assert [t["family"] for t in topics] == ["HR-LEAVE", "HR-PARENTAL"]
    assert {t["title"] for t in topics} == {"Annual Leave Policy", uncovered.title}
    assert finance.name not in rebalance.payload["departments"]

    assert fixes.auto_apply(session).applied == []  # a rebalance waits for a lead
    applied = fixes.apply_fixes(session, actor=world["lead"], fix_ids=[rebalance.id])

    version = datasets.version_by_number(session, applied.dataset_version or 0)
    weights = {r.example_id: r.weight for r in datasets.examples_for_version(session, version.id)}
    assert {weights[e.id] for e in hr_examples} == {2}
    assert {weights[e.id] for e in legal_examples} == {1}
    assert version.change_log == [{"fix": rebalance.id, "kind": "rebalance", "review_item": rebalance.review_item_id}]

    # the weights stay in force for the versions that later fixes write
    ans2 = _answer(session, world, question="Is remote work allowed?")
    f.confirmed_review(session, ans=ans2, sme=world["sme"], root_cause="hallucination", corrected_answer="Two days.")
    fixes.propose_fixes(session)
    later = fixes.auto_apply(session)
    later_weights = {
        r.example_id: r.weight
        for r in datasets.examples_for_version(
            session, datasets.version_by_number(session, later.dataset_version or 0).id
        )
    }
    assert {later_weights[e.id] for e in hr_examples} == {2}
    # an SME correction counts correction_weight times its department's weight
    correction = session.scalars(select(Example).where(Example.origin == "correction")).one()
    assert later_weights[correction.id] == 2 * FixesPolicy().correction_weight == 6


def test_a_second_bias_review_does_not_stack_a_second_rebalance(session, world) -> None:
    f.example(session, dept=world["legal"])
    f.example(session, dept=world["legal"])
    f.example(session, dept=world["hr"])
    for question in ("Bias one?", "Bias two?"):
        ans = _answer(session, world, question=question)
        f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="department_bias")
    report = fixes.propose_fixes(session)
    assert len(report.proposed) == 1
    [(_, reason)] = report.refused
    assert reason.startswith("a rebalance proposal already waits for a lead")


# --------------------------------------------------------------------------- guards


def test_a_correction_matching_a_gold_question_is_refused_as_a_leak(session, world) -> None:
    gold = f.held_out_gold(session, dept=world["hr"], question=QUESTION)
    ans = _answer(session, world, question="  how many DAYS of annual leave do full-time staff get?")
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer=CORRECTION)

    report = fixes.propose_fixes(session)

    [(fix_id, reason)] = report.refused
    assert reason == f"would leak the evaluation set: matches gold item {gold.id}"
    fix = session.get(DataFix, fix_id)
    assert fix is not None and fix.status == "rejected" and fix.decided_by_id is None
    assert session.scalar(select(func.count()).select_from(Example)) == 0


def test_a_correction_nearly_matching_a_gold_question_is_refused_as_a_leak(session, world) -> None:
    gold = f.held_out_gold(session, dept=world["hr"], question=QUESTION)
    ans = _answer(session, world, question="How many days of annual leave do full-time staff get per year?")
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer=CORRECTION)
    [(_, reason)] = fixes.propose_fixes(session).refused
    assert reason.startswith(f"would leak the evaluation set: matches gold item {gold.id} (similarity 0.")


def test_two_reviews_with_the_same_correction_add_it_once(session, world) -> None:
    for _ in range(2):
        ans = _answer(session, world)
        f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer=CORRECTION)
    report = fixes.propose_fixes(session)
    assert len(report.proposed) == 1
    [(_, reason)] = report.refused
    assert reason.startswith("duplicate: the correction from review")


def test_guards_are_checked_again_when_applying(session, world) -> None:
    ans = _answer(session, world)
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer=CORRECTION)
    [fix_id] = fixes.propose_fixes(session).proposed
    gold = f.held_out_gold(session, dept=world["hr"], question=QUESTION)  # added after the proposal

    report = fixes.auto_apply(session)

    assert report.applied == [] and report.dataset_version is None
    assert report.refused == [(fix_id, f"would leak the evaluation set: matches gold item {gold.id}")]
    assert session.get(DataFix, fix_id).status == "rejected"  # type: ignore[union-attr]


def test_missing_correction_is_refused(session, world) -> None:
    ans = _answer(session, world)
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="wrong_training_data", corrected_answer="  ")
    [(_, reason)] = fixes.propose_fixes(session).refused
    assert reason == "the SME wrote no corrected answer"


def test_proposing_twice_proposes_nothing_new(session, world) -> None:
    ans = _answer(session, world)
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer=CORRECTION)
    first = fixes.propose_fixes(session)
    second = fixes.propose_fixes(session)
    assert len(first.proposed) == 1
    assert second.reviews == 0 and second.proposed == [] and second.refused == []


# --------------------------------------------------------------------------- policy and permissions


def test_applying_fixes_evaluates_the_retraining_triggers(session, world) -> None:
    from audit.modelops.models import TrainingJob
    from audit.triggers import service as triggers
    from audit.triggers.policy import TriggersPolicy

    triggers.save_policy(session, actor=None, policy=TriggersPolicy(min_applied_fixes=2))
    for question in ("First question?", "Second question?"):
        ans = _answer(session, world, question=question)
        f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer="Yes.")
    fixes.propose_fixes(session)

    report = fixes.auto_apply(session)

    assert report.triggers is not None and report.triggers["queued"]
    job = session.get(TrainingJob, report.triggers["job_id"])
    assert job is not None and job.trigger_reason == "2 fixes applied since the last training job (threshold 2)"
    assert job.dataset_version_id == datasets.version_by_number(session, report.dataset_version or 0).id


@pytest.mark.parametrize("role", ["auditor", "sme", "admin"])
def test_only_leads_may_apply_or_reject(session, world, role: str) -> None:
    ans = _answer(session, world)
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer=CORRECTION)
    [fix_id] = fixes.propose_fixes(session).proposed
    outsider = f.user(session, role=role)
    with pytest.raises(PermissionDenied):
        fixes.apply_fixes(session, actor=outsider, fix_ids=[fix_id])
    with pytest.raises(PermissionDenied):
        fixes.reject_fixes(session, actor=outsider, fix_ids=[fix_id], note="no")
    assert session.get(DataFix, fix_id).status == "proposed"  # type: ignore[union-attr]


def test_a_lead_rejects_with_a_reason_and_the_decision_is_logged(session, world) -> None:
    ans = _answer(session, world)
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer=CORRECTION)
    [fix_id] = fixes.propose_fixes(session).proposed
    lead = world["lead"]
    with pytest.raises(ValidationError):
        fixes.reject_fixes(session, actor=lead, fix_ids=[fix_id], note=" ")

    fixes.reject_fixes(session, actor=lead, fix_ids=[fix_id], note="the correction cites the wrong policy")

    fix = session.get(DataFix, fix_id)
    assert fix is not None
    assert (fix.status, fix.decided_by_id, fix.decision_note) == (
        "rejected",
        lead.id,
        "the correction cites the wrong policy",
    )
    entry = session.scalars(
        select(AuditLogEntry).where(AuditLogEntry.action == "fix.rejected", AuditLogEntry.entity_id == str(fix_id))
    ).one()
    assert entry.actor_id == lead.id
    with pytest.raises(ConflictError, match=f"fix {fix_id} is already rejected"):
        fixes.apply_fixes(session, actor=lead, fix_ids=[fix_id])


def test_policy_decides_what_applies_without_a_lead(session, world) -> None:
    fixes.save_policy(session, actor=None, policy=FixesPolicy(auto_apply_kinds=[]))
    ans = _answer(session, world)
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer=CORRECTION)
    [fix_id] = fixes.propose_fixes(session).proposed
    assert fixes.auto_apply(session).applied == []
    assert [fx.id for fx in fixes.waiting_for_lead(session)] == [fix_id]


def test_policy_sets_how_much_a_correction_counts(session, world) -> None:
    curated = f.example(session, dept=world["hr"], question="Who approves travel expenses?", answer="Your manager.")
    fixes.save_policy(session, actor=None, policy=FixesPolicy(correction_weight=1))
    ans = _answer(session, world)
    f.confirmed_review(session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer=CORRECTION)
    fixes.propose_fixes(session)
    applied = fixes.auto_apply(session)
    version = datasets.version_by_number(session, applied.dataset_version or 0)
    weights = {r.origin: r.weight for r in datasets.examples_for_version(session, version.id)}
    assert weights == {"curated": 1, "correction": 1}
    assert curated.origin == "curated"


def test_policy_validation_names_the_field() -> None:
    with pytest.raises(ValidationError, match="auto_apply_kinds"):
        FixesPolicy(auto_apply_kinds=["delete_everything"]).validate()
    with pytest.raises(ValidationError, match="shares sum to 0.9"):
        FixesPolicy(rebalance_target={"HR": 0.5, "Legal": 0.4}).validate()
    with pytest.raises(ValidationError, match="conflict_similarity"):
        FixesPolicy(conflict_similarity=1.5).validate()
    for bad in (0, 2.5, True):
        with pytest.raises(ValidationError, match="correction_weight"):
            FixesPolicy(correction_weight=bad).validate()  # type: ignore[arg-type]


# --------------------------------------------------------------------------- carrying a correction over


def _policy_text(title: str, owner: str, cycle: str) -> str:
    return (
        f"{title}, version 1. This policy sets out who is accountable for it.\n\n"
        f"Responsibilities. The {owner} owns the {title} and approves every change to it. "
        f"The {title} is reviewed every {cycle} by the People leadership team.\n\n"
        f"Requests under the {title} are submitted in PeopleHub. "
        f"Requests under the {title} must be submitted at least 2 weeks in advance."
    )


def _leave_policy(session: Session, hr) -> Document:
    return f.document(
        session,
        dept=hr,
        family="HR-1",
        title="Annual Leave Policy",
        body=_policy_text("Annual Leave Policy", "Head of People", "12 months"),
    )


OWNER_QUESTION = "Hi, name the role accountable for maintaining the Annual Leave Policy."
OWNER_ANSWER = "The Head of People owns the Annual Leave Policy and approves every change to it. (source: HR-1@v1)"


def test_a_correction_is_carried_over_to_documents_stating_the_same_sentence_with_their_own_value() -> None:
    source = TextDocument(
        "HR-1@v1", "Annual Leave Policy", _policy_text("Annual Leave Policy", "Head of People", "12 months")
    )
    bonus = TextDocument("HR-2@v1", "Bonus Policy", _policy_text("Bonus Policy", "Head of Reward", "24 months"))
    # the owner sentence twice, with two values: which one answers is not known, so nothing is carried
    twice = TextDocument(
        "HR-3@v1",
        "Sick Leave Policy",
        _policy_text("Sick Leave Policy", "HR Director", "12 months")
        + " The Payroll Lead owns the Sick Leave Policy and approves every change to it.",
    )
    unrelated = TextDocument("HR-4@v1", "Travel Guide", "The Travel Guide lists hotels. Book early.")
    carried = carry_over(OWNER_QUESTION, OWNER_ANSWER, source, [source, bonus, twice, unrelated])
    assert carried == [
        CarriedExample(
            question="Hi, name the role accountable for maintaining the Bonus Policy.",
            answer="The Head of Reward owns the Bonus Policy and approves every change to it. (source: HR-2@v1)",
            document="HR-2@v1",
            sentence="The Head of Reward owns the Bonus Policy and approves every change to it.",
        )
    ]
    # a free-written correction, or a question that does not name the title, is not carried over
    assert carry_over(OWNER_QUESTION, "It is the Head of People, who approves changes.", source, [bonus]) == []
    assert carry_over("Who owns annual leave?", OWNER_ANSWER, source, [bonus]) == []


def test_same_template_needs_one_short_differing_span_around_the_title() -> None:
    def tokens(text: str) -> list[str]:
        return text.replace("Bonus Policy", " TITLESLOT ").replace("Annual Leave Policy", " TITLESLOT ").split()

    system = tokens("Requests under the Annual Leave Policy are submitted in PeopleHub .")
    assert same_template(system, tokens("Requests under the Bonus Policy are submitted in Work Nest .")) is True
    # the notice sentence shares only "Requests under the <title>" and the full stop: 5 of 12 tokens
    notice = tokens("Requests under the Bonus Policy must be submitted at least 2 weeks in advance .")
    assert same_template(system, notice) is False
    # five differing tokens are more than a value
    assert same_template(system, tokens("Requests under the Bonus Policy are sent by email to the team .")) is False
    # no title in the shared part: not the same sentence about another document
    assert same_template(["a", "b", "c", "."], ["a", "b", "d", "."]) is False


# three more HR policies, each naming its own owner in the owner sentence
OWNERS = {"Bonus Policy": "Head of Reward", "Overtime Policy": "HR Director", "Payroll Policy": "Payroll Lead"}


def _hr_policies(session: Session, hr) -> dict[str, Document]:
    return {
        title: f.document(session, dept=hr, family=f"HR-{n}", title=title, body=_policy_text(title, owner, "24 months"))
        for n, (title, owner) in enumerate(OWNERS.items(), start=2)
    }


def test_carried_corrections_are_examples_of_their_own_documents_and_never_a_held_out_fact(session, world) -> None:
    hr = world["hr"]
    leave = _leave_policy(session, hr)
    others = _hr_policies(session, hr)
    # another department's copy under a title of its own: never a source of HR's examples
    f.document(
        session,
        dept=world["legal"],
        family="LEG-9",
        title="Leave Law Note",
        body=_policy_text("Leave Law Note", "General Counsel", "6 months"),
    )
    # the Payroll Policy's owner is a held-out fact: its reference answer may not be written, in any phrasing
    payroll = others["Payroll Policy"]
    f.held_out_gold(
        session,
        dept=hr,
        question="Which role has the last word on the Payroll Policy?",
        reference=f"The Payroll Lead owns the Payroll Policy and approves every change to it. (source: {payroll.external_id})",
    )
    answer = OWNER_ANSWER.replace("HR-1@v1", leave.external_id)
    review = f.confirmed_review(
        session,
        ans=_answer(session, world, question=OWNER_QUESTION, cites=[leave]),
        sme=world["sme"],
        root_cause="hallucination",
        corrected_answer=answer,
    )

    report = fixes.propose_fixes(session)

    added = _by_kind(report.proposed, session)["add_example"]
    # the Payroll Policy's owner is held out: two of the three documents, in a seeded order
    assert sorted((fx.payload["origin"], fx.payload["question"]) for fx in added) == [
        ("correction", OWNER_QUESTION),
        ("synthetic", "Hi, name the role accountable for maintaining the Bonus Policy."),
        ("synthetic", "Hi, name the role accountable for maintaining the Overtime Policy."),
    ]
    overtime = next(fx for fx in added if "Overtime" in fx.payload["question"])
    assert overtime.payload["answer"] == (
        f"The HR Director owns the Overtime Policy and approves every change to it. (source: {others['Overtime Policy'].external_id})"
    )
    assert overtime.payload["source_document_ids"] == [others["Overtime Policy"].external_id]
    assert overtime.payload["carried_from"] == leave.external_id
    assert overtime.review_item_id == review.id and overtime.reason.endswith(
        "(the same sentence there, with its own value)"
    )

    applied = fixes.auto_apply(session)
    version = datasets.version_by_number(session, applied.dataset_version or 0)
    rows = {r.question: (r.origin, r.weight) for r in datasets.examples_for_version(session, version.id)}
    # the SME's correction counts correction_weight (3) times; a carried example its department's weight
    assert sorted(rows.values()) == [("correction", 3), ("synthetic", 1), ("synthetic", 1)]
    stored = session.scalars(select(Example).where(Example.origin == "synthetic")).all()
    assert {e.origin_review_id for e in stored} == {review.id}
    assert not any("Payroll" in e.answer or "Leave Law" in e.answer for e in session.scalars(select(Example)))


def _owner_correction_carried_once(session: Session, world, leave: Document) -> list[DataFix]:
    """The add_example fixes proposed for an SME's owner correction on ``leave``, carried over to one document."""
    fixes.save_policy(session, actor=None, policy=FixesPolicy(carry_over=1))
    f.confirmed_review(
        session,
        ans=_answer(session, world, question=OWNER_QUESTION, cites=[leave]),
        sme=world["sme"],
        root_cause="hallucination",
        corrected_answer=OWNER_ANSWER.replace("HR-1@v1", leave.external_id),
    )
    return _by_kind(fixes.propose_fixes(session).proposed, session)["add_example"]


def test_a_correction_is_carried_first_to_documents_whose_sentence_no_example_states(session, world) -> None:
    hr = world["hr"]
    leave = _leave_policy(session, hr)
    others = _hr_policies(session, hr)
    # an example already states two of the three owner sentences (asked another way): the model is taught
    # those; the third it has only read
    for title in ("Bonus Policy", "Overtime Policy"):
        f.example(
            session,
            dept=hr,
            question=f"Who signs off changes to the {title}?",
            answer=f"The {OWNERS[title]} owns the {title} and approves every change to it. "
            f"(source: {others[title].external_id})",
            sources=[others[title].external_id],
        )
    added = _owner_correction_carried_once(session, world, leave)
    carried = [fx.payload["question"] for fx in added if fx.payload["origin"] == "synthetic"]
    assert carried == ["Hi, name the role accountable for maintaining the Payroll Policy."]


def test_policy_sets_how_many_documents_a_correction_is_carried_over_to(session, world) -> None:
    hr = world["hr"]
    leave = _leave_policy(session, hr)
    for n, title in enumerate(["Bonus Policy", "Overtime Policy", "Payroll Policy"], start=2):
        f.document(
            session, dept=hr, family=f"HR-{n}", title=title, body=_policy_text(title, "HR Director", "24 months")
        )
    added = _owner_correction_carried_once(session, world, leave)
    assert sorted(fx.payload["origin"] for fx in added) == ["correction", "synthetic"]
    for bad in (-1, 21, True, 1.5):
        with pytest.raises(ValidationError, match="carry_over"):
            FixesPolicy(carry_over=bad).validate()  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pure functions


def test_similar_pairs_agrees_with_sklearn_cosine_similarity() -> None:
    corpus = ["how many days of leave", "who approves expenses", "leave days how many do I get", "deploy pipeline"]
    queries = ["how many leave days", "expense approval"]
    vectorizer = TfidfVectorizer(strip_accents="unicode").fit([*corpus, *queries])
    reference = cosine_similarity(vectorizer.transform(queries), vectorizer.transform(corpus))
    found = similar_pairs(queries, corpus, threshold=0.3)
    for row, matches in enumerate(found):
        expected = sorted(((i, s) for i, s in enumerate(reference[row]) if s >= 0.3), key=lambda p: -p[1])
        assert [i for i, _ in matches] == [i for i, _ in expected]
        assert [s for _, s in matches] == pytest.approx([s for _, s in expected])
    assert similar_pairs(["x"], [], 0.5) == [[]]


@settings(max_examples=60, deadline=None)
@given(
    corpus=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join), min_size=1, max_size=25),
    queries=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join), min_size=1, max_size=5),
    threshold=st.floats(min_value=0.05, max_value=1.0),
)
def test_similar_pairs_prefix_filter_misses_nothing(corpus: list[str], queries: list[str], threshold: float) -> None:
    """The pruned search finds exactly the pairs a brute-force cosine over all pairs finds."""
    vectorizer = TfidfVectorizer(strip_accents="unicode").fit([*corpus, *queries])
    reference = cosine_similarity(vectorizer.transform(queries), vectorizer.transform(corpus))
    found = similar_pairs(queries, corpus, threshold)
    for row, matches in enumerate(found):
        expected = {i for i, score in enumerate(reference[row]) if score >= threshold - 1e-9}
        assert {i for i, _ in matches} == expected
        assert [score for _, score in matches] == sorted((score for _, score in matches), reverse=True)


def test_rebalance_weights_hand_computed() -> None:
    counts = {"Compliance": 350, "Legal": 250, "Finance": 200, "Engineering": 130, "HR": 70}
    shares = target_shares(sorted(counts), "uniform")
    # N = 1000, target 200 each: ceil(200/350)=1, ceil(200/250)=1, ceil(200/200)=1, ceil(200/130)=2, ceil(200/70)=3
    assert rebalance_weights(counts, shares) == {"Compliance": 1, "Engineering": 2, "Finance": 1, "HR": 3, "Legal": 1}
    given = target_shares(["HR", "Legal"], {"HR": 0.5, "Legal": 0.5})
    assert rebalance_weights({"HR": 100, "Legal": 300}, given) == {"HR": 2, "Legal": 1}
    # exact float products must not round up: 1/3 x 300 / 100 = 1
    assert rebalance_weights({"A": 100, "B": 100, "C": 100}, target_shares(["A", "B", "C"], "uniform")) == {
        "A": 1,
        "B": 1,
        "C": 1,
    }


def test_under_covered_topics_lists_families_below_the_minimum() -> None:
    families = [("HR", "HR-A", "A"), ("HR", "HR-B", "B"), ("HR", "HR-C", "C")]
    topics = under_covered_topics(families, {"HR-A": 5, "HR-B": 1}, minimum=2)
    assert topics == [
        {"department": "HR", "family": "HR-C", "title": "C", "examples": 0},
        {"department": "HR", "family": "HR-B", "title": "B", "examples": 1},
    ]


# --------------------------------------------------------------------------- scale


@pytest.mark.slow
def test_1000_fixes_onto_100k_examples_apply_in_10_s_and_export_in_5_s(sqlite_url: str, tmp_path) -> None:
    """The issue's budgets: applying 1,000 fixes and writing a version of 100k examples <= 10 s;
    exporting 100k examples as JSONL <= 5 s (SQLite; PostgreSQL measured in the report)."""
    import time

    from sqlalchemy import insert

    from audit.answers.models import Answer
    from audit.db import make_engine, make_session_factory
    from audit.knowledge import export as dataset_export
    from audit.review.models import ReviewItem

    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        depts = [f.department(s, name) for name in ("Compliance", "Legal", "Finance", "Engineering", "HR")]
        rows = []
        for i in range(100_000):
            q, a = f"What does policy {i} say about topic {i % 997}?", f"Policy {i} allows {i % 50} days."
            rows.append(
                {
                    "question": q,
                    "answer": a,
                    "department_id": depts[i % 5].id,
                    "source_document_ids": [f"DOC-{i % 500}@v1"],
                    "origin": "curated",
                    "status": "active",
                    "content_hash": example_content_hash(q, a),
                }
            )
        s.execute(insert(Example), rows)
        datasets.create_version(s, actor=None, change_log=[{"kind": "seed"}])
        model = f.model_version(s)
        answers = [f.answer(s, dept=depts[4], model=model) for _ in range(900)]
        s.execute(
            insert(ReviewItem),
            [
                {"answer_id": a.id, "department_id": depts[4].id, "reasons": ["low_score"], "status": "confirmed"}
                for a in answers
            ],
        )
        review_ids = s.scalars(select(ReviewItem.id).order_by(ReviewItem.id)).all()
        fixes_rows = [
            DataFix(
                review_item_id=rid,
                kind="add_example",
                reason="scale",
                payload={
                    "question": f"Corrected question {n}?",
                    "answer": f"Corrected answer {n}.",
                    "department_id": depts[4].id,
                    "source_document_ids": [],
                    "origin_review_id": rid,
                    "content_hash": example_content_hash(f"Corrected question {n}?", f"Corrected answer {n}."),
                },
            )
            for n, rid in enumerate(review_ids)
        ] + [DataFix(kind="quarantine_example", reason="scale", payload={"example_id": i}) for i in range(1, 101)]
        s.add_all(fixes_rows)
        s.flush()
        fix_ids = [fx.id for fx in fixes_rows]
        del answers, rows
        assert s.scalar(select(func.count()).select_from(Answer)) == 900

    # The ≤ 10 s / ≤ 5 s targets are measured by `make bench` (the fixes scenario); here the work at this
    # size must be right, and the times are printed for whoever reads the log.
    with factory.begin() as s:
        started, started_cpu = time.perf_counter(), time.process_time()
        report = fixes.apply_fixes(s, actor=None, fix_ids=fix_ids, note="scale")
        apply_wall, apply_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    assert len(report.applied) == 1000 and report.version_created

    with factory() as s:
        started, started_cpu = time.perf_counter(), time.process_time()
        summary = dataset_export.export_version(s, number=report.dataset_version or 0, out=tmp_path / "big.jsonl")
        export_wall, export_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    engine.dispose()
    print(
        f"\napply 1000 fixes + version of 100,800: {apply_wall:.2f} s wall, {apply_cpu:.2f} s CPU; "
        f"export 100,800 as JSONL: {export_wall:.2f} s wall, {export_cpu:.2f} s CPU"
    )
    assert summary.examples == 100_000 + 900 - 100


# --------------------------------------------------------------------------- CLI


def test_fixes_cli_proposes_applies_approves_and_rejects(sqlite_url: str, tmp_path, monkeypatch) -> None:
    import json

    from click.testing import CliRunner

    from app.cli.main import cli
    from audit.db import make_engine, make_session_factory

    monkeypatch.setenv("AUDITLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    engine = make_engine(sqlite_url)
    with make_session_factory(engine).begin() as s:
        hr = f.department(s, "HR")
        f.user(s, role="lead", username="lena")
        f.user(s, role="auditor", username="otto")
        f.example(s, dept=hr, question=QUESTION, answer="Staff get 20 days.")
        f.example(s, dept=hr, question="How many days of annual leave do full-time staff get in total?", answer="21")
        ans = f.answer(s, dept=hr, model=f.model_version(s), question=QUESTION)
        f.confirmed_review(
            s, ans=ans, sme=f.user(s, role="sme"), root_cause="hallucination", corrected_answer=CORRECTION
        )
    engine.dispose()
    runner = CliRunner()

    proposed = runner.invoke(cli, ["fixes", "propose", "--json"])
    assert proposed.exit_code == 0, proposed.output
    assert len(json.loads(proposed.stdout)["proposed"]) == 3  # the correction and two conflicting examples

    applied = runner.invoke(cli, ["fixes", "apply", "--json"])
    report = json.loads(applied.stdout)
    assert len(report["applied"]) == 1 and report["dataset_version"] == 1 and report["version_created"]

    waiting = json.loads(runner.invoke(cli, ["fixes", "list", "--status", "proposed", "--json"]).stdout)
    assert [w["kind"] for w in waiting] == ["quarantine_example", "quarantine_example"]
    first, second = (w["id"] for w in waiting)

    refused = runner.invoke(cli, ["fixes", "approve", str(first), "--as", "otto"])
    assert refused.exit_code == 1 and refused.stderr.strip() == "Error: otto (auditor) may not approve fixes"

    approved = runner.invoke(cli, ["fixes", "approve", str(first), "--as", "lena", "--note", "contradicts HR-LEAVE v2"])
    assert approved.exit_code == 0, approved.output
    assert approved.stdout.splitlines() == [
        f"applied 1 fix(es): [{first}]",
        "dataset version 2 (new)",
        "triggers: no trigger fired",
    ]

    rejected = runner.invoke(cli, ["fixes", "reject", str(second), "--as", "lena", "--note", "different question"])
    assert rejected.exit_code == 0 and rejected.stdout.strip() == f"rejected fix {second} (quarantine_example)"
    no_note = runner.invoke(cli, ["fixes", "reject", str(second)])
    assert no_note.exit_code == 2  # --note is required

    listed = runner.invoke(cli, ["fixes", "list"])
    assert "different question" in listed.stdout and "applied" in listed.stdout


def test_a_correction_repeating_a_held_out_reference_answer_is_refused_as_a_leak(session, world) -> None:
    # another question, but the corrected answer is a held-out gold item's reference, word for word
    gold = f.held_out_gold(
        session, dept=world["hr"], question="A question nobody asked in traffic?", reference=CORRECTION
    )
    ans = _answer(session, world)
    f.confirmed_review(
        session, ans=ans, sme=world["sme"], root_cause="hallucination", corrected_answer="  " + CORRECTION.upper()
    )
    [(_, reason)] = fixes.propose_fixes(session).refused
    assert reason == f"would leak the evaluation set: the answer is gold item {gold.id}'s reference answer"
