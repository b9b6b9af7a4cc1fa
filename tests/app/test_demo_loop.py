"""``auditloop demo loop``: the corruption shuffle, the department gap, the SME's judgement, and the whole
loop end to end (seed → review → fixes → trigger → worker → gate, then a corrupted version refused)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from argon2 import PasswordHasher, Type
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cli.main import cli
from app.demo_loop import (
    EFFECT_METRICS,
    Decision,
    LoopReport,
    RealDays,
    TrainingSeeds,
    auditor_shift,
    decide,
    demo_fact_kinds,
    department_gap,
    render_document,
    render_markdown,
    render_rouge_table,
    render_seed_summary,
    render_training_seeds,
    seed_averaged,
    seed_summary,
    shuffle_answers,
    verdicts,
    write_corrupted_version,
    wrong_values_answers,
)
from audit.db import make_engine, make_session_factory
from audit.demo.corpus import build_corpus
from audit.demo.traffic import DemoAnswer, DemoRating, Scores
from audit.fixes.models import DataFix
from audit.knowledge import datasets
from audit.knowledge.hashing import example_content_hash, normalise_text
from audit.knowledge.models import Example
from audit.modelops import repository as modelops_repo
from audit.modelops.models import ModelVersion
from audit.org import passwords
from audit.sampling.models import GoldItem
from tests import factories
from training import gate
from training.evaluation import (
    HEADLINE_METRICS,
    GoldTruth,
    Interval,
    ScoredItem,
    compare,
    restrict,
    score_items,
    summarize,
)
from training.models.tiny import TinyModelConfig, build_tiny_model, pretraining_texts

# --------------------------------------------------------------------------- the corruption


def test_shuffle_moves_every_answer_to_another_question_and_keeps_them_all() -> None:
    questions = [f"question {i}" for i in range(50)]
    answers = [f"answer {i}" for i in range(50)]
    shuffled = shuffle_answers(questions, answers, seed=7)
    assert Counter(shuffled) == Counter(answers)  # a permutation: nothing lost, nothing invented
    assert all(new != old for new, old in zip(shuffled, answers, strict=True))
    assert shuffle_answers(questions, answers, seed=7) == shuffled  # seeded
    assert shuffle_answers(questions, answers, seed=8) != shuffled


def test_shuffle_avoids_equal_answer_texts_and_existing_pairs() -> None:
    # positions 2 and 3 share an answer text: neither may get the other's; "q1" already holds
    # "x" and "y", so those pairs must not be written again (examples are unique by the pair)
    questions = ["q1", "q1", "q2", "q3", "q4", "q5"]
    answers = ["x", "y", "same", "same", "z", "w"]
    for seed in range(20):
        shuffled = shuffle_answers(questions, answers, seed=seed)
        assert Counter(shuffled) == Counter(answers)
        originals = {example_content_hash(q, a) for q, a in zip(questions, answers, strict=True)}
        new_pairs = [example_content_hash(q, a) for q, a in zip(questions, shuffled, strict=True)]
        assert not originals & set(new_pairs)
        assert len(set(new_pairs)) == len(new_pairs)
        assert shuffled[2] != "same" and shuffled[3] != "same"


def test_shuffle_steers_clear_of_pairs_stored_elsewhere() -> None:
    questions, answers = ["q1", "q2", "q3"], ["a", "b", "c"]
    # a 3-cycle has two possible directions; forbidding q1->b leaves only q1->c, q2->a, q3->b
    stored_elsewhere = {example_content_hash("q1", "b")}
    for seed in range(10):
        assert shuffle_answers(questions, answers, seed=seed, forbidden=stored_elsewhere) == ["c", "a", "b"]


def test_shuffle_refuses_what_cannot_be_shuffled() -> None:
    with pytest.raises(ValueError, match="at least two"):
        shuffle_answers(["q"], ["a"], seed=1)
    with pytest.raises(ValueError, match="no permutation"):
        shuffle_answers(["a", "b", "c"], ["same", "same", "other"], seed=1)
    with pytest.raises(ValueError, match="2 questions but 3 answers"):
        shuffle_answers(["a", "b"], ["x", "y", "z"], seed=1)


# --------------------------------------------------------------------------- the gap and the table


def test_department_gap_is_largest_minus_smallest_mean() -> None:
    by_department = {"HR": {"rougeL": 0.2}, "Legal": {"rougeL": 0.5}, "Finance": {"rougeL": 0.35}}
    assert department_gap(by_department, "rougeL") == pytest.approx(0.3)
    assert department_gap({"HR": {"rougeL": 0.2}}, "rougeL") == 0.0


def _summary() -> Any:
    # ROUGE-L of an identical answer is 1, of a disjoint one 0: the department means are hand-known
    references = ["the retention period is five years", "owner is the hr team", "audits run yearly", "x y z"]
    predictions = [references[0], "completely different words", references[2], references[3]]
    items = score_items(
        item_ids=["1", "2", "3", "4"],
        departments=["HR", "HR", "Legal", "Legal"],
        predictions=predictions,
        references=references,
        truths=[GoldTruth(key_values=("five years",), gold_document_ids=frozenset({"D"}))] * 4,
        retrieved=[["D"], ["D"], ["X"], ["D"]],
    )
    return summarize(items, signature="s", resamples=200)


def test_gap_agrees_with_fairlearn_and_restrict_recomputes_the_means() -> None:
    summary = _summary()
    assert summary.by_department["HR"]["rougeL"] == pytest.approx(0.5)
    assert summary.by_department["Legal"]["rougeL"] == pytest.approx(1.0)
    # the same number MetricFrame.difference() gives the gate
    assert department_gap(summary.by_department, "rougeL") == pytest.approx(summary.department_gap["rougeL"])
    assert department_gap(summary.by_department, "rougeL") == pytest.approx(0.5)

    held_out = restrict(summary, {"1", "3", "4"})
    assert held_out.n == 3
    assert held_out.by_department["HR"]["rougeL"] == pytest.approx(1.0)
    assert held_out.by_department["Legal"]["f1"] == pytest.approx(1.0)
    assert department_gap(held_out.by_department, "rougeL") == pytest.approx(0.0)


def _report(details: dict[str, Any] | None = None, *, effect_low: float = 0.05) -> LoopReport:
    row = {"rougeL_before": 0.1, "rougeL_after": 0.3, "f1_before": 0.2, "f1_after": 0.4}
    figures = {
        "HR": {m: Interval(0.2, 0.1, 0.3) for m in HEADLINE_METRICS},
        "Legal": {m: Interval(0.6, 0.5, 0.7) for m in HEADLINE_METRICS},
    }
    best = {"HR": {m: Interval(0.5, 0.4, 0.6) for m in HEADLINE_METRICS}}
    return LoopReport(
        "HR",
        {"HR": row, "Legal": {**row, "rougeL_after": 0.35}},
        0.2,
        0.05,
        True,
        True,
        systems={"before": figures, "after": figures, "control": figures, "baseline_best_sentence": best},
        effects={"HR": {"fact_accuracy": Interval(0.2, effect_low, 0.35)}},
        gate_items=170,
        gate_items_excluded_as_leaked=80,
        wrong_values_refused=True,
        seeds=[7],
        details=details or {},
    )


def test_report_json_keeps_the_old_keys_and_adds_the_yardstick() -> None:
    data = _report().as_json()
    assert list(data) == [
        "weak_department",
        "departments",
        "gap_before",
        "gap_after",
        "promoted",
        "corrupted_refused",
        "metrics",
        "gate_items",
        "gate_items_excluded_as_leaked",
        "wrong_values_refused",
        "seeds",
        "auditor_ratings",
        "training_seeds",
    ]
    assert data["auditor_ratings"] is None  # no days answered for real in this report
    hr = data["departments"]["HR"]
    assert list(hr)[:4] == ["rougeL_before", "rougeL_after", "f1_before", "f1_after"]
    assert hr["after"]["fact_accuracy"] == 0.2 and hr["after_ci"]["fact_accuracy"] == [0.1, 0.3]
    assert hr["correction_effect"]["fact_accuracy"] == {"estimate": 0.2, "ci_low": 0.05, "ci_high": 0.35}
    assert data["metrics"] == ["fact_accuracy", "wrong_value", "citation_accuracy", "retrieval_at_1", "rougeL", "f1"]
    assert (data["gate_items"], data["gate_items_excluded_as_leaked"], data["seeds"]) == (170, 80, [7])
    json.dumps(data)  # plain JSON all the way down


def test_tables_show_every_system_with_its_interval_and_the_effect() -> None:
    report = _report()
    markdown = render_markdown(report)
    assert (
        "| **HR** (weak) |  | 0.20 [0.10, 0.30] | 0.20 [0.10, 0.30] | 0.20 [0.10, 0.30] | 0.50 [0.40, 0.60] |"
        in markdown
    )
    assert markdown.splitlines()[2].endswith("| +0.20 [+0.05, +0.35] |")
    assert "| **HR** (weak) | 0.1000 | 0.3000 | +0.2000 |" in render_rouge_table(report)


def test_the_verdicts_say_only_what_the_intervals_support() -> None:
    said = " ".join(verdicts(_report()))
    assert "raised HR's fact accuracy beyond what retraining without them gave" in said
    assert "copying the top document's best sentence states the right value more often" in said
    unsure = " ".join(verdicts(_report(effect_low=-0.05)))
    assert "did **not** measurably raise HR's fact accuracy" in unsure
    assert "does not single out wrong values" not in said  # the loop's own candidate was promoted


def test_a_refusal_that_refuses_the_loops_own_candidate_too_is_called_unspecific() -> None:
    details = {
        "candidate": {"failed": ["non_inferiority", "department_drop"]},
        "corrupted": {"wrong_values": {"failed": ["department_drop"]}},
    }
    report = dataclasses.replace(_report(details), promoted=False)
    said = " ".join(verdicts(report))
    assert (
        "The wrong-values version failed department_drop; the loop's own candidate was refused "
        "too (non_inferiority, department_drop), so this refusal does not single out wrong values" in said
    )
    # a check only the wrong-values version failed singles it out
    details["corrupted"]["wrong_values"]["failed"] = ["department_drop", "ungrounded_training_data"]
    said = " ".join(verdicts(dataclasses.replace(_report(details), promoted=False)))
    assert "failed ungrounded_training_data, which the loop's own candidate passed" in said
    assert "does not single out" not in said


def test_document_states_the_outcome_honestly() -> None:
    details = {
        "seed": 7,
        "candidate": {"model_version": "v1", "gate": "rejected", "checks": ["fact_accuracy: candidate − champion"]},
        "corrupted": {
            "shuffled": {"dataset_version": 4, "from": 3, "model_version": "v2", "gate": "rejected", "failed": ["x"]},
            "wrong_values": {"dataset_version": 5, "from": 3, "model_version": "v3", "gate": "promoted"},
        },
        "trigger": "trigger: queued training job 1 on dataset version 3: HR gap",
        "control": {"dataset_version": 1, "steps": 40},
    }
    page = render_document(_report(details), command="auditloop demo loop --data-dir /tmp/x")
    assert "4. Queued training job 1 on dataset version 3: HR gap" in page
    assert "   - fact_accuracy: candidate − champion" in page and "was **rejected** (failed: x)" in page
    assert "key value replaced by another valid value" in page and "was **promoted** (failed: nothing)" in page
    assert "## The gate items: 170 clean gold questions" in page
    assert "40 steps, on dataset version 1" in page


# --------------------------------------------------------------------------- over training seeds


def _scored(facts: dict[str, float], *, retrieval: float = 1.0) -> Any:
    """A summary of four items (HR: a, b; Legal: c, d) with the given fact accuracies."""
    departments = {"a": "HR", "b": "HR", "c": "Legal", "d": "Legal"}
    items = [
        ScoredItem(
            item,
            departments[item],
            "p",
            "r",
            {**dict.fromkeys(EFFECT_METRICS, 0.0), "fact_accuracy": fact, "retrieval_at_1": retrieval},
        )
        for item, fact in facts.items()
    ]
    return summarize(items, signature="s", resamples=200)


# one system trained with three seeds, and its control: per item and seed, fact correct (1) or not (0)
CANDIDATES = [
    {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0},
    {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0},
    {"a": 0.0, "b": 0.0, "c": 1.0, "d": 1.0},
]
CONTROLS = [
    {"a": 0.0, "b": 0.0, "c": 1.0, "d": 0.0},
    {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0},
    {"a": 0.0, "b": 0.0, "c": 0.0, "d": 1.0},
]


def test_seed_averaged_averages_each_item_over_the_runs() -> None:
    averaged = seed_averaged([_scored(c) for c in CANDIDATES], resamples=200)
    # item a: (1 + 1 + 0) / 3, b: 1/3, c: 1, d: 1/3
    assert averaged.item_scores("fact_accuracy") == pytest.approx({"a": 2 / 3, "b": 1 / 3, "c": 1.0, "d": 1 / 3})
    assert averaged.by_department["HR"]["fact_accuracy"] == pytest.approx(0.5)
    assert averaged.metrics["fact_accuracy"] == pytest.approx(7 / 12)
    hr = averaged.intervals["HR"]["fact_accuracy"]
    assert 1 / 3 <= hr["ci_low"] <= 0.5 <= hr["ci_high"] <= 2 / 3  # the bootstrap resamples the averaged items
    with pytest.raises(ValueError, match="no common gold item"):
        seed_averaged([_scored({"a": 1.0, "b": 0.0}), _scored({"c": 1.0, "d": 0.0})])


def test_training_seeds_measure_each_seeds_effect_and_the_seed_averaged_one() -> None:
    candidates = [_scored(c) for c in CANDIDATES]
    controls = [_scored(c) for c in CONTROLS]
    spread = TrainingSeeds.measure([7, 8, 9], candidates, controls, resamples=200, seed=0)
    # HR per seed: candidate 1.0, 0.5, 0.0; control 0.0, 0.5, 0.0 -> effects +1.0, 0.0, 0.0
    hr = [e["HR"]["fact_accuracy"].estimate for e in spread.effects]
    assert hr == pytest.approx([1.0, 0.0, 0.0])
    assert spread.effects[0]["HR"]["fact_accuracy"] == Interval(
        *(lambda r: (r.mean_difference, r.ci_low, r.ci_high))(
            compare(candidates[0], controls[0], resamples=200, seed=0).department_differences["HR"]["fact_accuracy"]
        )
    )
    stats = spread.effect_spread("HR", "fact_accuracy")
    assert stats == pytest.approx({"mean": 1 / 3, "min": 0.0, "max": 1.0, "sd": (1 / 3) ** 0.5})
    # seed-averaged: HR candidate items a 2/3, b 1/3 (mean 0.5), control a 1/3, b 0 (mean 1/6)
    assert spread.mean_after["HR"]["fact_accuracy"].estimate == pytest.approx(0.5)
    assert spread.mean_control["HR"]["fact_accuracy"].estimate == pytest.approx(1 / 6)
    assert spread.mean_effects["HR"]["fact_accuracy"].estimate == pytest.approx(1 / 3)
    assert spread.mean_effects["all"]["retrieval_at_1"].estimate == pytest.approx(0.0)
    data = spread.as_json()
    assert [s["seed"] for s in data["per_seed"]] == [7, 8, 9]
    assert data["seed_averaged"]["correction_effect"]["HR"]["fact_accuracy"]["estimate"] == pytest.approx(1 / 3)
    json.dumps(data)


def test_reports_show_the_spread_over_training_seeds() -> None:
    spread = TrainingSeeds.measure(
        [7, 8, 9], [_scored(c) for c in CANDIDATES], [_scored(c) for c in CONTROLS], resamples=200, seed=0
    )
    report = dataclasses.replace(_report(), training_seeds=spread)
    table = render_training_seeds(report)
    assert "## Over 3 training seeds (7, 8, 9)" in table
    hr_row = next(line for line in table.splitlines() if line.startswith("| HR |"))
    assert "| +1.00, +0.00, +0.00 | +0.33 (0.58) |" in hr_row and hr_row.startswith("| HR | 0.50 [")
    assert "## Over 3 training seeds" in render_document(report, command="auditloop demo loop")
    assert report.as_json()["training_seeds"]["seeds"] == [7, 8, 9]
    assert _report().as_json()["training_seeds"] is None and render_training_seeds(_report()) == ""

    across = seed_summary([report, dataclasses.replace(report, seeds=[11])])
    averaged = across["departments"]["HR"]["correction_effect_seed_averaged"]["fact_accuracy"]
    assert averaged["mean"] == pytest.approx(1 / 3) and averaged["seeds_with_interval_above_0"] in (0, 2)
    assert "Correction effect averaged over training seeds (3, 3 per world seed)" in render_seed_summary(
        [report, dataclasses.replace(report, seeds=[11])]
    )
    assert "averaged over training seeds" not in render_seed_summary([_report(), _report()])


def test_wrong_values_keep_the_template_and_citation_and_change_the_value() -> None:
    kinds = {"Finance": [("6 years", "7 years", "10 years"), ("EUR 5,000", "EUR 50,000")]}
    answers = [
        "Records are kept for 10 years. (source: FIN-001@v2)",
        "Approval is needed above EUR 50,000. (source: FIN-002@v1)",
    ]
    corrupted = wrong_values_answers(answers, ["Finance", "Finance"], kinds_by_department=kinds, seed=1)
    assert corrupted[0].startswith("Records are kept for ") and corrupted[0].endswith(" years. (source: FIN-001@v2)")
    assert corrupted[0] != answers[0] and "10 years" not in corrupted[0]
    # the longest value wins: "EUR 50,000" is replaced whole, never only its "EUR 5,000"-looking prefix
    assert corrupted[1] == "Approval is needed above EUR 5,000. (source: FIN-002@v1)"
    assert wrong_values_answers(answers, ["Finance", "Finance"], kinds_by_department=kinds, seed=1) == corrupted
    with pytest.raises(ValueError, match="no known Finance value"):
        wrong_values_answers(["Nothing stated."], ["Finance"], kinds_by_department=kinds, seed=1)
    # an HR answer quoting an Engineering manual (an SME's correction can): the other department's value
    kinds = {"HR": [("20 days", "25 days")], "Engineering": [("2 approving reviews", "3 approving reviews")]}
    quoted = "Changes need 3 approving reviews before merging. (source: ENG-004@v1)"
    assert wrong_values_answers([quoted], ["HR"], kinds_by_department=kinds, seed=1) == [
        "Changes need 2 approving reviews before merging. (source: ENG-004@v1)"
    ]


def test_every_demo_training_answer_has_a_value_to_corrupt() -> None:
    corpus = build_corpus(7)
    answers = [e.answer for e in corpus.examples]
    corrupted = wrong_values_answers(
        answers, [e.department for e in corpus.examples], kinds_by_department=demo_fact_kinds(), seed=7
    )
    assert all(new != old for new, old in zip(corrupted, answers, strict=True))


# --------------------------------------------------------------------------- the SME's judgement


def _answer(
    error: str | None,
    *,
    text: str = "The owner is HR. (source: HR-001@v2)",
    sources: Any = None,
    intruder: str | None = None,
) -> DemoAnswer:
    return DemoAnswer(
        external_id="demo-000001",
        question="Who owns the leave policy?",
        answer_text=text,
        department="HR",
        sources=sources or [{"document_id": "HR-001@v2", "department": "HR", "score": 0.8}],
        confidence=-1.0,
        latency_ms=800,
        created_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        correct=error is None,
        error=error,
        reference_answer="The owner is the People team. (source: HR-001@v2)",
        reference_document_id="HR-001@v2",
        reference_value="the People team",
        true_scores=Scores(2, 2, 3, 4),
        intruder_department=intruder,
    )


def _detail(*, reasons: tuple[str, ...] = ("low_score",), suggestion: str | None = None) -> Any:
    return SimpleNamespace(reasons=reasons, ratings=(SimpleNamespace(suggested_correction=suggestion),))


def test_sme_confirms_wrong_answers_with_their_cause_and_the_suggested_correction() -> None:
    decision = decide(_answer("outdated_source"), _detail(suggestion="Suggested."), planted_wrong=set())
    assert decision == Decision("outdated_source", "Suggested.", "quotes a superseded version")
    # no auditor wrote a correction: the expert writes the grounded reference answer
    assert decide(_answer("hallucination"), _detail(), planted_wrong=set()).corrected_answer == (
        "The owner is the People team. (source: HR-001@v2)"
    )
    planted = {"the owner is hr. (source: hr-001@v2)"}
    assert decide(_answer("hallucination"), _detail(), planted_wrong=planted).root_cause == "wrong_training_data"
    assert decide(_answer("retrieval_error"), _detail(), planted_wrong=set()).root_cause == "retrieval_error"


def test_sme_dismisses_right_answers_unless_another_department_was_pulled_in() -> None:
    assert decide(_answer(None), _detail(), planted_wrong=set()).root_cause is None
    over_cited = [
        {"document_id": "HR-001@v2", "department": "HR", "score": 0.8},
        {"document_id": "CMP-004@v1", "department": "Compliance", "score": 0.6},
    ]
    flagged = decide(
        _answer(None, sources=over_cited, intruder="Compliance"), _detail(reasons=("bias_flag",)), planted_wrong=set()
    )
    assert flagged.root_cause == "department_bias" and flagged.corrected_answer is None
    assert flagged.note == "correct, but cites Compliance documents"
    # a flag on an answer that pulled in no other department's document is not confirmed
    assert decide(_answer(None), _detail(reasons=("bias_flag",)), planted_wrong=set()).root_cause is None


def _rated(external_id: str, department: str, accuracies: list[int]) -> tuple[DemoAnswer, list[DemoRating]]:
    answer = dataclasses.replace(_answer(None), external_id=external_id, department=department)
    ratings = [
        DemoRating(external_id, f"auditor{i}", a, 4, 4, 4, "yes", False, None, None, None, None, 60, answer.created_at)
        for i, a in enumerate(accuracies, start=1)
    ]
    return answer, ratings


def _days(label: str, model: str, rows: list[tuple[str, list[int]]]) -> RealDays:
    pairs = [_rated(f"{label}-{n}", department, accuracies) for n, (department, accuracies) in enumerate(rows)]
    return RealDays(label, model, [a for a, _ in pairs], [r for _, rs in pairs for r in rs])


def test_auditor_shift_by_hand() -> None:
    before = _days("b", "v0", [("HR", [2])] * 10 + [("HR", [1, 3])] * 10 + [("Legal", [4])] * 20)
    after = _days("a", "v1", [("HR", [4])] * 20 + [("Legal", [4, 5])] * 10 + [("Legal", [4])] * 10)
    shift = auditor_shift(before, after, resamples=500, seed=1)
    hr, legal = shift["departments"]["HR"], shift["departments"]["Legal"]
    # HR before: 10 answers rated 2 and 10 rated 1 and 3: 40 / 30 ratings = 2.0; after: 4.0
    assert hr["before"][0] == pytest.approx(2.0) and hr["after"][0] == pytest.approx(4.0)
    assert (hr["answers_before"], hr["answers_after"]) == (20, 20)
    assert hr["shift"][0] == pytest.approx(2.0) and 0 < hr["shift"][1] <= 2.0 <= hr["shift"][2]
    assert legal["after"][0] == pytest.approx(130 / 30)  # over ratings, as the Quality page: (90 + 40) / 30
    assert shift["fairness_difference_before"] == pytest.approx(2.0)
    assert shift["fairness_difference_after"] == pytest.approx(130 / 30 - 4.0)
    assert (shift["model_before"], shift["model_after"]) == ("v0", "v1")


# --------------------------------------------------------------------------- the corrupted dataset version


def test_corrupted_version_shuffles_answers_and_leaves_the_data_as_it_was(session: Session) -> None:
    company = factories.training_company(session)
    trained = company["dataset_version"]
    active_before = [(r.example_id, r.answer) for r in datasets.active_examples(session)]

    version, source_number, examples = write_corrupted_version(session, actor=None, version_id=trained.id, seed=3)

    assert (source_number, examples) == (trained.number, len(company["examples"]))
    assert version.number == trained.number + 1 and not version.is_current
    assert datasets.current_version(session).id == trained.id  # training on it is a choice, not the default
    assert [(r.example_id, r.answer) for r in datasets.active_examples(session)] == active_before
    assert version.change_log[0]["kind"] == "demo_corruption"

    original = {r.question: r for r in datasets.examples_for_version(session, trained.id)}
    corrupted = datasets.examples_for_version(session, version.id)
    assert sorted(r.question for r in corrupted) == sorted(original)
    assert Counter(r.answer for r in corrupted) == Counter(r.answer for r in original.values())
    # every question now carries another one's answer (here: another topic's or department's period)
    assert all(r.answer != original[r.question].answer for r in corrupted)
    assert all(r.department == original[r.question].department for r in corrupted)
    stored = session.scalars(select(Example.status).where(Example.id.in_([r.example_id for r in corrupted])))
    assert set(stored) == {"retired"}  # the copies live only in the corrupted version


# --------------------------------------------------------------------------- the loop, end to end

# A narrower tiny model built the real way (same builder, corpus and format), so the loop's two
# trainings and three evaluations fit the CI budget; the recipe is the real one.
LOOP_TEST_MODEL = TinyModelConfig(
    vocab_size=1024,
    hidden_size=128,
    num_layers=2,
    num_heads=2,
    intermediate_size=352,
    context_length=512,
    train_steps=150,
    batch_size=8,
    sequence_length=320,
    learning_rate=3e-3,
    warmup_steps=10,
    question_drills=0,  # built from pretraining_texts(7) below
)


@pytest.fixture(scope="module")
def loop_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("loop-model") / "model",
        seed=7,
        corpus_texts=pretraining_texts(7),
        config=LOOP_TEST_MODEL,
    )


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id at a low cost: 15 demo accounts stay fast."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
    )


@pytest.mark.slow
@pytest.mark.timeout(2700)  # ~8 min on 2 idle cores; a loaded CI machine can take a few times that
@pytest.mark.skipif(
    os.environ.get("AUDITLOOP_SKIP_DEMO_LOOP") == "1",
    reason="AUDITLOOP_SKIP_DEMO_LOOP=1: the whole loop (base model build + two LoRA trainings) left out",
)
def test_demo_loop_end_to_end(tmp_path: Path, loop_base_model: Path, cheap_argon2: None) -> None:
    env = {
        "AUDITLOOP_DATA_DIR": str(tmp_path / "configured"),
        "AUDITLOOP_BASE_MODEL": str(loop_base_model),
        "AUDITLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'not-used.db'}",
    }
    run_dir = tmp_path / "run"
    markdown = tmp_path / "demo-loop.md"
    result = CliRunner().invoke(
        cli,
        ["demo", "loop", "--data-dir", str(run_dir), "--json", "--markdown", str(markdown), "--training-seeds", "2"],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)

    assert list(data)[:6] == [
        "weak_department",
        "departments",
        "gap_before",
        "gap_after",
        "promoted",
        "corrupted_refused",
    ]
    assert data["weak_department"] == "HR" and data["seeds"] == [7]
    assert sorted(data["departments"]) == ["Compliance", "Engineering", "Finance", "HR", "Legal"]
    for row in data["departments"].values():
        assert list(row)[:4] == ["rougeL_before", "rougeL_after", "f1_before", "f1_after"]
        for system in ("before", "after", "control", "baseline_first_sentence", "baseline_best_sentence"):
            assert list(row[system]) == data["metrics"]
            assert all(0.0 <= v <= 1.0 for v in row[system].values())
            for metric, (low, high) in row[f"{system}_ci"].items():
                assert low <= row[system][metric] <= high
        assert set(row["correction_effect"]) == {
            "fact_accuracy",
            "wrong_value",
            "citation_accuracy",
            "retrieval_at_1",
            "rougeL",
        }
    # the retrieval skew and its fix, at this scale: HR's questions go to other departments' copies of its
    # documents before; the candidate's reranker, trained on the dataset's pairs, puts HR's own first
    hr = data["departments"]["HR"]
    assert hr["before"]["retrieval_at_1"] <= 0.65
    assert all(row["before"]["retrieval_at_1"] >= 0.8 for name, row in data["departments"].items() if name != "HR")
    assert hr["after"]["retrieval_at_1"] >= 0.9
    assert hr["after"]["retrieval_at_1"] - hr["before"]["retrieval_at_1"] >= 0.25
    rouge = {name: row["rougeL_before"] for name, row in data["departments"].items()}
    assert data["gap_before"] == pytest.approx(max(rouge.values()) - min(rouge.values()))
    assert isinstance(data["promoted"], bool)
    # whether the corruptions are refused depends on what the base model can learn: this narrow test model
    # states almost no gold value before or after (its fact accuracy is ~0 everywhere), so no candidate can
    # be shown worse on facts. The gate's own refusal of a wrong value is tested on crafted summaries in
    # tests/training/test_gate.py; here the flags must agree with what the gate recorded (below).
    assert isinstance(data["corrupted_refused"], bool) and isinstance(data["wrong_values_refused"], bool)
    # most calibration items repeat a curated training answer: they leak and are left out
    assert data["gate_items_excluded_as_leaked"] > 0 and data["gate_items"] >= 150
    # progress went to stderr, the JSON alone to stdout
    assert "review: sme.hr works through" in result.stderr and "corrupt: dataset version" in result.stderr
    assert "control: training on dataset version 1" in result.stderr
    assert "training seed 8 (2 of 2): control on dataset version 1" in result.stderr
    page = markdown.read_text()
    assert "## Fact accuracy" in page and "| **HR** (weak) |" in page
    assert "## Over 2 training seeds (7, 8)" in page and "--training-seeds 2" in page
    # the first training seed is the gated candidate and the control themselves
    spread = data["training_seeds"]
    assert spread["seeds"] == [7, 8]
    first = spread["per_seed"][0]
    for department, row in data["departments"].items():
        assert first["after"][department]["fact_accuracy"]["estimate"] == pytest.approx(row["after"]["fact_accuracy"])
        assert first["control"][department]["fact_accuracy"]["estimate"] == pytest.approx(
            row["control"]["fact_accuracy"]
        )
        averaged = spread["seed_averaged"]["after"][department]["fact_accuracy"]["estimate"]
        assert averaged == pytest.approx(
            (row["after"]["fact_accuracy"] + spread["per_seed"][1]["after"][department]["fact_accuracy"]["estimate"])
            / 2
        )

    # the database tells the same story, and every figure is a mean of stored rows
    engine = make_engine(f"sqlite:///{run_dir / 'auditloop.db'}")
    try:
        with make_session_factory(engine)() as session:
            versions = {v.name: v for v in session.scalars(select(ModelVersion))}
            assert sorted(versions) == ["v0", "v1", "v2", "v3"]
            assert (versions["v1"].gate_result["status"] == gate.STATUS_PROMOTED) == data["promoted"]
            for corrupted, refused in (("v2", data["corrupted_refused"]), ("v3", data["wrong_values_refused"])):
                result = versions[corrupted].gate_result
                assert (result["status"] == gate.STATUS_REJECTED) == refused
                assert result["failed"] == [c["name"] for c in result["checks"] if not c["passed"]]
                assert [c["name"] for c in result["checks"]][0] == "non_inferiority"
                assert result["metric"] == "fact_accuracy"
            champion = gate.champion(session)
            assert champion is not None and champion.name in versions
            # SME corrections carried over to other documents of the department: examples of their own,
            # never a held-out gold item's question or reference answer
            carried = session.execute(
                select(Example.question, Example.answer).where(
                    Example.origin == "synthetic", Example.origin_review_id.is_not(None)
                )
            ).all()
            carried_fixes = session.scalars(
                select(DataFix).where(DataFix.kind == "add_example", DataFix.status == "applied")
            ).all()
            assert carried and len(carried) == sum("carried_from" in (fx.payload or {}) for fx in carried_fixes)
            # (auditor calibration items are real answers drawn from traffic: they may repeat training data
            # and are left out of the gate when they do; held-out items may not)
            held_out = session.execute(
                select(GoldItem.question, GoldItem.reference_answer).where(GoldItem.answer_id.is_(None))
            ).all()
            gold_texts = {normalise_text(t) for row in held_out for t in row}
            assert not [q for q, a in carried if normalise_text(q) in gold_texts or normalise_text(a) in gold_texts]
            kinds = [datasets.version_by_number(session, n).change_log[0] for n in (4, 5)]
            assert [k["corruption"] for k in kinds] == ["shuffled", "wrong_values"]
            signature = versions["v1"].evaluation["signature"]
            by_system = {
                system: modelops_repo.evaluation_items(session, system=system, signature=signature)
                for system in ("v0", "v1", "control:before-corrections", "baseline:best_sentence")
            }
            # in the demo no gate item leaks into the control's data only: the report's items are the gate's
            assert len(by_system["v1"]) == data["gate_items"]
            systems = (("v0", "before"), ("v1", "after"), ("control:before-corrections", "control"))
            for system, key in (*systems, ("baseline:best_sentence", "baseline_best_sentence")):
                assert len(by_system[system]) == data["gate_items"]
                for department, figures in data["departments"].items():
                    rows = [row for row, dept in by_system[system] if dept == department]
                    assert figures[key]["fact_accuracy"] == pytest.approx(sum(r.fact_correct for r in rows) / len(rows))
                    assert figures[key]["rougeL"] == pytest.approx(sum(r.rouge_l for r in rows) / len(rows))
            # the second training seed's runs are stored rows too, and the report's figures are their means
            for role in ("after", "control"):
                rows = modelops_repo.evaluation_items(session, system=f"replicate:s8:{role}", signature=signature)
                assert len(rows) == data["gate_items"]
                hr = [row for row, dept in rows if dept == "HR"]
                assert spread["per_seed"][1][role]["HR"]["fact_accuracy"]["estimate"] == pytest.approx(
                    sum(r.fact_correct for r in hr) / len(hr)
                )
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- refusals (fast)


def _loop(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, ["demo", "loop", *args], env=env, catch_exceptions=False)


def test_loop_refuses_a_database_that_holds_data(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        factories.department(session, "HR")
        session.commit()
    engine.dispose()
    result = _loop({"AUDITLOOP_DATABASE_URL": sqlite_url, "AUDITLOOP_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 1
    assert "already holds data (1 departments)" in result.stderr and "--data-dir NEW_FOLDER" in result.stderr


def test_loop_refuses_a_full_data_dir_and_a_bad_override(tmp_path: Path) -> None:
    env = {"AUDITLOOP_DATA_DIR": str(tmp_path / "data")}
    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("x")
    result = _loop(env, "--data-dir", str(full))
    assert result.exit_code == 1 and "not empty" in result.stderr

    result = _loop(env, "--data-dir", str(tmp_path / "new"), "--set", "train.lr=0")
    assert result.exit_code == 1 and "train.lr: must be in (0, 1)" in result.stderr
    assert not (tmp_path / "new" / "auditloop.db").exists()  # refused before any work
