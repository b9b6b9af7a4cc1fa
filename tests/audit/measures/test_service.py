"""The reports on a small company built with the factories, on SQLite and PostgreSQL, against values
computed by hand or by the reference libraries on the same ratings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from scipy import stats
from sqlalchemy.orm import Session

from audit.answers.models import AnswerReference
from audit.errors import NotFoundError, PermissionDenied, ValidationError
from audit.measures import service
from audit.measures.agreement import quadratic_kappa
from audit.measures.quality import MIN_INTERVAL_ANSWERS, clustered_interval
from audit.measures.service import ReportFilters
from audit.measures.text_metrics import rouge_l, token_f1
from audit.review.models import ReviewDecision, ReviewItem
from tests import factories as f

DAY1, DAY2, DAY3 = dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 4)


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


@dataclass
class Company:
    answers: dict[str, Any]
    texts: dict[str, tuple[str, str, float]]  # answer -> (answer text, reference, mean human accuracy)


def rate(session: Session, ans: Any, auditor: Any, accuracy: int, hour: int, day: dt.date = DAY1, **extra: Any) -> Any:
    return f.rating(session, ans=ans, auditor=auditor, accuracy=accuracy, created_at=at(day, hour), **extra)


def review(session: Session, ans: Any, sme: Any, *, flagged: dt.datetime, decided: dt.datetime, **decision: Any) -> Any:
    item = ReviewItem(
        answer_id=ans.id, department_id=ans.asker_department_id, reasons=["low_score"], created_at=flagged
    )
    session.add(item)
    session.flush()
    session.add(ReviewDecision(review_item_id=item.id, sme_id=sme.id, created_at=decided, **decision))
    session.flush()
    return item


@pytest.fixture
def company(session: Session) -> Company:
    legal, hr = f.department(session, "Legal"), f.department(session, "HR")
    v1, v2 = f.model_version(session, "v1"), f.model_version(session, "v2")
    alice, bob, carol = (f.user(session, username=name) for name in ("alice", "bob", "carol"))
    sme = f.user(session, role="sme", username="sam")
    texts = {
        "a1": "Submit the travel form within 30 days with receipts.",
        "a2": "Ask your manager.",
        "a3": "Leave requests go to HR two weeks ahead.",
        "a6": "The Legal team decides all HR questions.",
    }
    a1 = f.answer(session, dept=legal, model=v1, text=texts["a1"])
    a1.cites_other_department = True
    a2 = f.answer(session, dept=legal, model=v1, text=texts["a2"])
    a3 = f.answer(session, dept=hr, model=v1, text=texts["a3"])
    a4 = f.answer(session, dept=hr, model=v2)
    a5 = f.answer(session, dept=legal, model=v1)
    a6 = f.answer(session, dept=hr, model=v1, text=texts["a6"])
    session.flush()

    # the day-1 sample: a1 (weight 2, two auditors), a3 (weight 3), a4 (weight 1.5)
    for ans, weight in ((a1, 2.0), (a3, 3.0), (a4, 1.5)):
        f.sample_item(session, ans=ans, weight=weight, created_at=at(DAY1, 9), sample_date=DAY1)
    assigned = {
        (ans.id, who.id): f.assignment(session, ans=ans, auditor=who, sample_date=DAY1, status="submitted").id
        for ans, who in ((a1, alice), (a1, bob), (a3, alice), (a4, bob))
    }

    def via(ans: Any, who: Any) -> dict[str, int]:
        return {"assignment_id": assigned[(ans.id, who.id)]}

    rate(session, a1, alice, 5, 12, completeness=4, relevance=5, coherence=5, sources_correct="yes", **via(a1, alice))
    rate(session, a1, bob, 4, 14, completeness=4, relevance=4, coherence=3, sources_correct="no", **via(a1, bob))
    old = rate(session, a2, alice, 1, 10, is_current=False)
    rate(session, a2, alice, 3, 11, supersedes_id=old.id)
    rate(session, a3, alice, 2, 12, completeness=3, relevance=3, coherence=3, sources_correct="yes", **via(a3, alice))
    rate(session, a3, carol, 4, 13, origin="import")  # imported: weighs as its answer's sample item
    rate(session, a4, bob, 3, 17, **via(a4, bob))
    rate(session, a6, bob, 5, 15, bias_flag=True, favoured_department_id=legal.id)
    rate(session, a5, alice, 1, 9, day=DAY2)

    # gold: a1 and a3 with expected scores; a2 with a reference answer only
    references = {"a1": "Travel forms are due within 30 days, receipts attached.", "a2": "Your manager approves it."}
    f.gold_answer(
        session, ans=a1, accuracy=3, completeness=4, relevance=None, coherence=None, reference=references["a1"]
    )
    f.gold_answer(
        session, ans=a3, accuracy=2, completeness=3, relevance=None, coherence=None, reference="Apply to HR early."
    )
    f.gold_answer(
        session, ans=a2, accuracy=None, completeness=None, relevance=None, coherence=None, reference=references["a2"]
    )

    # the loop after rating: a1 confirmed, fixed in dataset v3, trained into v4's model, promoted
    correction = "Submit the travel expense form within 30 days, with all receipts."
    item1 = review(
        session, a1, sme, flagged=at(DAY1, 16), decided=at(DAY1, 20),
        decision="confirm", root_cause="wrong_training_data", corrected_answer=correction,
    )  # fmt: skip
    review(session, a3, sme, flagged=at(DAY1, 18), decided=at(DAY2, 6), decision="dismiss")
    review(
        session, a6, sme, flagged=at(DAY1, 16), decided=at(DAY1, 17),
        decision="confirm", root_cause="department_bias", corrected_answer="HR answers HR questions.",
    )  # fmt: skip
    versions = {n: f.dataset_version(session, number=n) for n in (2, 3, 4)}
    f.data_fix(session, review=item1, status="proposed")
    f.data_fix(session, review=item1, decided_at=at(DAY2, 8), version=versions[3])
    v4_model = f.model_version(session, "v4")
    v4_model.promoted_at = at(DAY3, 8)
    for number, status, finished, model in (
        (2, "succeeded", at(DAY2, 10), None),  # trained before the fix's version: does not count
        (3, "failed", at(DAY2, 9), None),
        (4, "succeeded", at(DAY2, 20), v4_model),
    ):
        # queued first, then finished: a finished job's ``active`` must be NULL, not the column default
        job = f.training_job(session, dataset_version_id=versions[number].id)
        job.status, job.active, job.finished_at = status, None, finished
        job.model_version_id = model.id if model else None
        session.flush()
    return Company(
        answers={"a1": a1, "a2": a2, "a3": a3, "a4": a4, "a5": a5, "a6": a6},
        texts={
            "a1": (texts["a1"], correction, 4.5),
            "a2": (texts["a2"], references["a2"], 3.0),
            "a3": (texts["a3"], "Apply to HR early.", 3.0),
            "a6": (texts["a6"], "HR answers HR questions.", 5.0),
        },
    )


def quality_row(report: dict[str, Any], **key: Any) -> dict[str, Any]:
    matches = [r for r in report["rows"] if all(r[k] == v for k, v in key.items())]
    assert len(matches) == 1, (key, report["rows"])
    return matches[0]


# --- quality ---------------------------------------------------------------------------------------


def test_quality_means_intervals_and_weighted_means(session: Session, company: Company) -> None:
    report = service.quality(session, actor=None)
    assert report["confidence"] == 0.95 and report["min_answers_for_interval"] == MIN_INTERVAL_ANSWERS
    legal = quality_row(report, day="2026-11-02", model_version="v1", department="Legal", dimension="accuracy")
    # current ratings 5 (w 2), 4 (w 2) of a1 and 3 (never sampled, w 1) of a2; the superseded 1 is not counted
    assert (legal["n"], legal["answers"]) == (3, 2)
    assert legal["mean"] == pytest.approx(4.0)
    # two answers are too few for an interval: the report says so instead
    assert (legal["ci_low"], legal["ci_high"], legal["too_few_answers"]) == (None, None, True)
    assert legal["weighted_mean"] == pytest.approx((2 * 5 + 2 * 4 + 1 * 3) / 5)
    hr = quality_row(report, day="2026-11-02", model_version="v1", department="HR", dimension="accuracy")
    # 2 (w 3, assigned), 4 (imported, w 3 from the answer's sample item), 5 (never sampled, w 1)
    assert hr["mean"] == pytest.approx(11 / 3) and (hr["n"], hr["answers"]) == (3, 2)
    assert hr["weighted_mean"] == pytest.approx((3 * 2 + 3 * 4 + 1 * 5) / 7)
    coherence = quality_row(report, day="2026-11-02", model_version="v1", department="Legal", dimension="coherence")
    assert (coherence["n"], coherence["mean"]) == (3, pytest.approx(4.0))  # 5, 3 and the default 4
    single = quality_row(report, day="2026-11-02", model_version="v2", department="HR", dimension="accuracy")
    assert (single["n"], single["mean"], single["ci_low"], single["weighted_mean"]) == (1, 3.0, None, 3.0)
    assert {r["day"] for r in report["rows"]} == {"2026-11-02", "2026-11-03"}


def test_quality_intervals_are_over_answers(session: Session, company: Company) -> None:
    # five answers rated by one to three auditors: the hand-computed case of tests/audit/measures/test_quality.py
    clusters = [[5, 5], [4, 4, 4], [2], [3, 1], [4]]
    sales, v5 = f.department(session, "Sales"), f.model_version(session, "v5")
    auditors = [f.user(session) for _ in range(3)]
    for ratings in clusters:
        ans = f.answer(session, dept=sales, model=v5)
        for auditor, accuracy in zip(auditors, ratings, strict=False):
            rate(session, ans, auditor, accuracy, 10, day=DAY3)
    row = quality_row(service.quality(session, actor=None), model_version="v5", dimension="accuracy")
    assert (row["n"], row["answers"], row["too_few_answers"]) == (9, 5, False)
    expected = clustered_interval(clusters)
    assert (row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx(expected)
    assert 1 < row["ci_low"] < 32 / 9 < row["ci_high"] < 5


def test_quality_filters(session: Session, company: Company) -> None:
    day2 = service.quality(session, actor=None, filters=ReportFilters(date_from=DAY2, date_to=DAY2))
    assert {(r["day"], r["department"], r["n"]) for r in day2["rows"]} == {("2026-11-03", "Legal", 1)}
    v2 = service.quality(session, actor=None, filters=ReportFilters(model_version="v2"))
    assert {(r["model_version"], r["department"]) for r in v2["rows"]} == {("v2", "HR")}
    hr = service.quality(session, actor=None, filters=ReportFilters(department="HR", date_to=DAY1))
    assert {r["department"] for r in hr["rows"]} == {"HR"} and len({r["model_version"] for r in hr["rows"]}) == 2


# --- agreement -------------------------------------------------------------------------------------


def test_agreement_over_answers_rated_twice(session: Session, company: Company) -> None:
    report = service.agreement(session, actor=None)
    assert set(report) == {"group", "min_shared_items", "dimensions", "pairs"}
    accuracy = report["dimensions"]["accuracy"]
    # a1: alice 5, bob 4; a3: alice 2, carol 4 (a2 has one current rating: not pairable)
    reliability = [[5, 2], [4, np.nan], [np.nan, 4]]  # coders × units
    for level in ("ordinal", "interval"):
        expected = krippendorff.alpha(
            reliability_data=reliability, level_of_measurement=level, value_domain=[1, 2, 3, 4, 5]
        )
        assert accuracy[f"alpha_{level}"] == pytest.approx(expected)
    assert (accuracy["items"], accuracy["ratings"]) == (2, 4)
    assert report["pairs"] == []
    assert set(report["dimensions"]) == {"accuracy", "completeness", "relevance", "coherence"}


def test_agreement_by_rater_group(session: Session, company: Company) -> None:
    # a1: alice 5, bob 4 (app); a3: alice 2 (app), carol 4 (imported)
    both = service.agreement(session, actor=None, group=service.RaterGroup(auditors=("alice", "bob")))
    assert both["group"]["auditors"] == ["alice", "bob"]
    assert (both["dimensions"]["accuracy"]["items"], both["dimensions"]["accuracy"]["ratings"]) == (1, 2)
    app_only = service.agreement(session, actor=None, group=service.RaterGroup(origins=("app",)))
    assert app_only["dimensions"]["accuracy"]["items"] == 1  # a3's second rating is an import
    imported = service.agreement(session, actor=None, group=service.RaterGroup(origins=("import",)))
    assert imported["dimensions"]["accuracy"]["items"] == 0
    smes = service.agreement(session, actor=None, group=service.RaterGroup(role="sme"))
    assert smes["dimensions"]["accuracy"]["items"] == 0
    with pytest.raises(NotFoundError, match="no such user: nobody"):
        service.agreement(session, actor=None, group=service.RaterGroup(auditors=("alice", "nobody")))
    with pytest.raises(ValidationError, match="applies only to agreement"):
        service.report(session, actor=None, name="quality", group=service.RaterGroup(role="auditor"))


def test_agreement_pairs_need_the_shared_answers_asked_for(session: Session) -> None:
    dept, model = f.department(session, "Legal"), f.model_version(session)
    alice, bob = f.user(session, username="alice"), f.user(session, username="bob")
    for a, b in zip([1, 2, 3, 4, 5], [1, 3, 3, 5, 4], strict=True):
        ans = f.answer(session, dept=dept, model=model)
        f.rating(session, ans=ans, auditor=alice, accuracy=a)
        f.rating(session, ans=ans, auditor=bob, accuracy=b)
    assert service.agreement(session, actor=None)["pairs"] == []  # 5 shared answers < 20
    five = service.agreement(session, actor=None, group=service.RaterGroup(min_shared_items=5))
    accuracy = [p for p in five["pairs"] if p["dimension"] == "accuracy"]
    assert accuracy[0]["kappa"] == pytest.approx(quadratic_kappa([1, 2, 3, 4, 5], [1, 3, 3, 5, 4]))
    none = service.agreement(session, actor=None, group=service.RaterGroup(min_shared_items=1, pairs=False))
    assert none["pairs"] == [] and none["min_shared_items"] is None
    assert none["dimensions"]["accuracy"]["items"] == 5


def test_agreement_pairs_with_twenty_shared_answers(session: Session) -> None:
    dept, model = f.department(session, "Legal"), f.model_version(session)
    alice, bob = f.user(session, username="alice"), f.user(session, username="bob")
    first = [1, 2, 3, 4, 5] * 4 + [3]
    second = [1, 3, 3, 5, 4] * 4 + [2]
    for a, b in zip(first, second, strict=True):
        ans = f.answer(session, dept=dept, model=model)
        f.rating(session, ans=ans, auditor=alice, accuracy=a)
        f.rating(session, ans=ans, auditor=bob, accuracy=b)
    pairs = service.agreement(session, actor=None)["pairs"]
    accuracy = [p for p in pairs if p["dimension"] == "accuracy"]
    assert accuracy == [
        {
            "auditor_a": "alice",
            "auditor_b": "bob",
            "dimension": "accuracy",
            "kappa": pytest.approx(quadratic_kappa(first, second)),
            "items": 21,
        }
    ]
    # the other dimensions are the factory's constant 4 for both: kappa undefined
    assert {p["dimension"]: p["kappa"] for p in pairs if p["dimension"] != "accuracy"} == dict.fromkeys(
        ("completeness", "relevance", "coherence")
    )


# --- calibration -----------------------------------------------------------------------------------


def test_calibration_against_gold(session: Session, company: Company) -> None:
    rows = {(r["auditor"], r["dimension"]): r for r in service.calibration(session, actor=None)["rows"]}
    alice = rows[("alice", "accuracy")]  # a1: 5 − 3 = +2, a3: 2 − 2 = 0
    assert (alice["n"], alice["mean_error"], alice["mean_abs_error"], alice["within_one_share"]) == (2, 1.0, 1.0, 0.5)
    assert rows[("alice", "completeness")]["mean_abs_error"] == 0.0  # 4 − 4, 3 − 3
    pooled = rows[("alice", "all")]  # +2, 0, 0, 0
    assert (pooled["n"], pooled["mean_error"], pooled["within_one_share"]) == (4, 0.5, 0.75)
    assert rows[("bob", "accuracy")]["mean_error"] == 1.0
    carol = rows[("carol", "accuracy")]  # imported rating of a3: 4 − 2
    assert (carol["mean_error"], carol["within_one_share"]) == (2.0, 0.0)
    assert ("alice", "relevance") not in rows  # no expected relevance anywhere


# --- fairness --------------------------------------------------------------------------------------

# the current ratings as (asker department, accuracy, bias flag, sources verdict)
CURRENT = [
    ("Legal", 5, 0, "yes"), ("Legal", 4, 0, "no"), ("Legal", 3, 0, None), ("Legal", 1, 0, None),
    ("HR", 2, 0, "yes"), ("HR", 4, 0, None), ("HR", 3, 0, None), ("HR", 5, 1, None),
]  # fmt: skip


def test_fairness_matches_metric_frame_on_the_ratings(session: Session, company: Company) -> None:
    report = service.fairness(session, actor=None)
    frame = pd.DataFrame(CURRENT, columns=["department", "accuracy", "flag", "sources"])
    reference = MetricFrame(
        metrics={"accuracy_mean": lambda t, p: np.mean(t), "bias_flag_rate": lambda t, p: np.mean(p)},
        y_true=frame["accuracy"].astype(float),
        y_pred=frame["flag"].astype(float),
        sensitive_features=frame["department"],
    )
    for name in ("accuracy_mean", "bias_flag_rate"):
        for department in ("Legal", "HR"):
            assert report["by_department"][department][name] == pytest.approx(reference.by_group.loc[department, name])
        assert report[f"{name}_difference"] == pytest.approx(reference.difference()[name])
        assert report[f"{name}_ratio"] == pytest.approx(reference.ratio()[name])
    legal, hr = report["by_department"]["Legal"], report["by_department"]["HR"]
    assert (legal["sources_correct_rate"], hr["sources_correct_rate"]) == (0.5, 1.0)
    assert report["sources_correct_rate_difference"] == pytest.approx(0.5)
    assert (legal["ratings"], legal["reliable"], report["min_group_size"]) == (4, False, 30)
    # a1 (rated 5 and 4) cites another department; a2 (3) and a5 (1) do not
    assert (legal["answers"], legal["cites_other_share"]) == (3, pytest.approx(1 / 3))
    assert (legal["accuracy_when_citing_other"], legal["accuracy_when_citing_own"]) == (4.5, 2.0)
    assert (hr["cites_other_share"], hr["accuracy_when_citing_other"]) == (0.0, None)
    assert report["flag_matrix"] == {"HR": {"Legal": 1}}
    assert report["disfavoured_matrix"] == {}
    assert report["reliable_only"] == {"departments": []}


def test_fairness_reliable_groups(session: Session, company: Company) -> None:
    report = service.fairness(session, actor=None, min_group_size=4)
    assert all(d["reliable"] for d in report["by_department"].values())
    assert report["reliable_only"]["departments"] == ["HR", "Legal"]
    assert report["reliable_only"]["accuracy_mean_difference"] == pytest.approx(report["accuracy_mean_difference"])


def test_fairness_of_an_empty_window(session: Session, company: Company) -> None:
    report = service.fairness(session, actor=None, filters=ReportFilters(date_from=DAY3))
    assert report["by_department"] == {} and report["accuracy_mean_difference"] is None
    assert report["flag_matrix"] == {}


# --- funnel ----------------------------------------------------------------------------------------


def test_funnel_counts_and_waits(session: Session, company: Company) -> None:
    steps = {s["step"]: s for s in service.funnel(session, actor=None)["steps"]}
    assert [s["count"] for s in steps.values()] == [3, 3, 2, 2, 1, 1, 1, 1]
    assert list(steps) == ["sampled", "rated", "flagged", "reviewed", "confirmed", "fixed", "trained", "promoted"]
    # sampled at day 1 09:00; first ratings at 12:00, 12:00, 17:00
    assert steps["rated"]["median_hours"] == pytest.approx(3.0)
    # a1 flagged 16:00 (4 h after its 12:00 rating), a3 18:00 (6 h)
    assert steps["flagged"]["median_hours"] == pytest.approx(5.0)
    assert steps["reviewed"]["median_hours"] == pytest.approx((4 + 12) / 2)
    assert steps["confirmed"]["median_hours"] == pytest.approx(4.0)
    assert steps["fixed"]["median_hours"] == pytest.approx(12.0)  # day 1 20:00 -> day 2 08:00
    # the first succeeded job on dataset version >= 3 finished day 2 20:00; its model promoted day 3 08:00
    assert steps["trained"]["median_hours"] == pytest.approx(12.0)
    assert steps["promoted"]["median_hours"] == pytest.approx(12.0)
    assert steps["promoted"]["median_hours_from_sampled"] == pytest.approx(47.0)
    assert steps["sampled"]["median_hours"] is None and steps["rated"]["share_of_previous"] == 1.0


def test_funnel_of_an_empty_database(session: Session) -> None:
    steps = service.funnel(session, actor=None)["steps"]
    assert [s["count"] for s in steps] == [0] * 8
    assert all(s["median_hours"] is None for s in steps)


def test_funnel_window_is_on_sampling_time(session: Session, company: Company) -> None:
    steps = service.funnel(session, actor=None, filters=ReportFilters(date_from=DAY2))["steps"]
    assert steps[0]["count"] == 0
    hr = service.funnel(session, actor=None, filters=ReportFilters(department="HR"))["steps"]
    assert [s["count"] for s in hr[:4]] == [2, 2, 1, 1]  # a3 and a4; a3 reviewed, dismissed


# --- metrics vs humans -----------------------------------------------------------------------------


A1_GOLD = "Travel forms are due within 30 days, receipts attached."


def test_metrics_vs_humans(session: Session, company: Company) -> None:
    report = service.metrics_vs_humans(session, actor=None)
    assert (report["dimension"], report["answers"], report["scored"], report["sample"]) == ("accuracy", 4, 4, None)
    assert report["references"] == {"ingested": 0, "sme_correction": 2, "gold": 3}
    # a1 has an SME correction and a gold reference: its score is the better of the two
    answers = ("a1", "a2", "a3", "a6")
    texts = [company.texts[k][0] for k in answers]
    references = [[company.texts[k][1]] + ([A1_GOLD] if k == "a1" else []) for k in answers]
    humans = [company.texts[k][2] for k in answers]
    rouge = [max(rouge_l(t, r) for r in refs) for t, refs in zip(texts, references, strict=True)]
    f1 = [max(token_f1(t, r) for r in refs) for t, refs in zip(texts, references, strict=True)]
    for row, scores in zip(report["metrics"], (rouge, f1), strict=True):
        rho, tau = stats.spearmanr(scores, humans), stats.kendalltau(scores, humans)
        assert row["n"] == 4
        assert (row["spearman"], row["spearman_p"]) == (pytest.approx(rho.statistic), pytest.approx(rho.pvalue))
        assert (row["kendall"], row["kendall_p"]) == (pytest.approx(tau.statistic), pytest.approx(tau.pvalue))
    # every answer here is v1's: one system, too few for a correlation
    assert [s["n"] for s in report["systems"]] == [1, 1] and report["systems"][0]["spearman"] is None
    assert report["by_model_version"] == [
        {
            "model_version": "v1",
            "answers": 4,
            "human": pytest.approx(sum(humans) / 4),
            "rougeL": pytest.approx(sum(rouge) / 4),
            "token_f1": pytest.approx(sum(f1) / 4),
        }
    ]


def test_metrics_vs_humans_with_ingested_references_a_dimension_and_a_sample(
    session: Session, company: Company
) -> None:
    a2 = company.answers["a2"]
    before = service.metrics_vs_humans(session, actor=None)["by_model_version"][0]["rougeL"]
    session.add_all(
        [
            AnswerReference(answer_id=a2.id, reference="Something else.", reference_hash="x" * 64),
            AnswerReference(answer_id=a2.id, reference=company.texts["a2"][0], reference_hash="y" * 64),
        ]
    )
    session.flush()
    report = service.metrics_vs_humans(session, actor=None)
    assert report["references"]["ingested"] == 2
    # the ingested copy of a2's own text is now its best reference: a perfect score for a2
    a2_before = rouge_l(company.texts["a2"][0], company.texts["a2"][1])
    assert report["by_model_version"][0]["rougeL"] == pytest.approx(before + (1.0 - a2_before) / 4)
    whole = service.metrics_vs_humans(session, actor=None, options=service.MetricsOptions(sample=4))
    assert whole["sample"] is None and whole["scored"] == 4  # a sample as large as the window is the window
    sampled = service.metrics_vs_humans(session, actor=None, options=service.MetricsOptions(sample=3))
    assert (sampled["answers"], sampled["scored"], sampled["sample"]) == (4, 3, 3)
    completeness = service.metrics_vs_humans(session, actor=None, options=service.MetricsOptions("completeness"))
    assert completeness["dimension"] == "completeness" and completeness["answers"] == 4
    with pytest.raises(ValidationError, match="dimension: 'tone'"):
        service.metrics_vs_humans(session, actor=None, options=service.MetricsOptions("tone"))
    with pytest.raises(ValidationError, match="applies only to metrics-vs-humans"):
        service.report(session, actor=None, name="quality", metrics=service.MetricsOptions(sample=3))


# --- permissions and filters -----------------------------------------------------------------------


@pytest.mark.parametrize("name", service.REPORT_NAMES)
def test_reports_need_view_dashboards(session: Session, name: str) -> None:
    auditor, sme = f.user(session, role="auditor"), f.user(session, role="sme")
    inactive_lead = f.user(session, role="lead", active=False)
    for actor in (auditor, sme, inactive_lead):
        with pytest.raises(PermissionDenied):
            service.report(session, actor=actor, name=name)
    assert isinstance(service.report(session, actor=f.user(session, role="lead"), name=name), dict)


def test_bad_filters_are_refused_with_a_clear_message(session: Session, company: Company) -> None:
    with pytest.raises(NotFoundError, match="model version 'v9' not found"):
        service.quality(session, actor=None, filters=ReportFilters(model_version="v9"))
    with pytest.raises(NotFoundError, match="department 'Sales' not found"):
        service.fairness(session, actor=None, filters=ReportFilters(department="Sales"))
    with pytest.raises(ValidationError, match="first day 2026-11-03 is after the last day 2026-11-02"):
        service.agreement(session, actor=None, filters=ReportFilters(date_from=DAY2, date_to=DAY1))
    with pytest.raises(ValidationError, match="unknown report"):
        service.report(session, actor=None, name="vibes")


def test_answer_filters_reach_every_report(session: Session, company: Company) -> None:
    hr = ReportFilters(department="HR")
    calibration = {(r["auditor"], r["dimension"]) for r in service.calibration(session, actor=None, filters=hr)["rows"]}
    assert ("carol", "accuracy") in calibration and ("bob", "accuracy") not in calibration  # bob rated gold a1 (Legal)
    agreement = service.agreement(session, actor=None, filters=hr)["dimensions"]["accuracy"]
    assert (agreement["items"], agreement["ratings"]) == (1, 2)  # a3 only
    fairness = service.fairness(session, actor=None, filters=ReportFilters(model_version="v2"))
    assert set(fairness["by_department"]) == {"HR"} and fairness["by_department"]["HR"]["ratings"] == 1
    metrics = service.metrics_vs_humans(session, actor=None, filters=ReportFilters(department="Legal"))
    assert metrics["answers"] == 2 and metrics["references"] == {"ingested": 0, "sme_correction": 1, "gold": 2}
