"""The promotion gate on crafted evaluation summaries, and the champion alias in the database and registry."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.auditlog.models import AuditLogEntry
from audit.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from audit.modelops.models import ModelVersion
from tests import factories
from training import gate
from training.evaluation import EvaluationSummary, compare
from training.grounding import Grounding
from training.tracking import MlflowRegistry, MlflowTracker, TrackingUnavailable


def crafted(
    scores: dict[str, list[float]],
    rouge: dict[str, list[float]] | None = None,
    wrong: dict[str, list[float]] | None = None,
    retrieval: dict[str, list[float]] | None = None,
) -> EvaluationSummary:
    """A summary whose fact_accuracy per item is the given 0/1 (or any) scores, per department in
    order; rougeL is ``rouge`` where given, else the same scores; wrong_value is ``wrong`` where
    given, else 0; retrieval_at_1 only where ``retrieval`` is given."""
    summary = _crafted(scores, rouge, wrong)
    if retrieval is None:
        return summary
    for dept, values in retrieval.items():
        for i, value in enumerate(values):
            summary.items[f"{dept}-{i}"]["retrieval_at_1"] = value
        summary.by_department[dept]["retrieval_at_1"] = float(np.mean(values))
    summary.metrics["retrieval_at_1"] = float(np.mean([v for values in retrieval.values() for v in values]))
    means = [d["retrieval_at_1"] for d in summary.by_department.values()]
    summary.department_gap["retrieval_at_1"] = max(means) - min(means)
    return summary


def _crafted(
    scores: dict[str, list[float]],
    rouge: dict[str, list[float]] | None,
    wrong: dict[str, list[float]] | None,
) -> EvaluationSummary:
    items = {}
    rouge = rouge or scores
    wrong = wrong or {dept: [0.0] * len(values) for dept, values in scores.items()}
    for dept, values in scores.items():
        for i, value in enumerate(values):
            items[f"{dept}-{i}"] = {
                "fact_accuracy": value,
                "rougeL": rouge[dept][i],
                "wrong_value": wrong[dept][i],
                "department": dept,
            }
    by_department = {
        dept: {
            "fact_accuracy": float(np.mean(v)),
            "rougeL": float(np.mean(rouge[dept])),
            "wrong_value": float(np.mean(wrong[dept])),
        }
        for dept, v in scores.items()
    }
    gap = {
        m: max(d[m] for d in by_department.values()) - min(d[m] for d in by_department.values())
        for m in ("fact_accuracy", "rougeL", "wrong_value")
    }
    return EvaluationSummary(
        signature="crafted",
        n=len(items),
        metrics={
            "fact_accuracy": float(np.mean([v for values in scores.values() for v in values])),
            "rougeL": float(np.mean([v for values in rouge.values() for v in values])),
            "wrong_value": float(np.mean([v for values in wrong.values() for v in values])),
        },
        by_department=by_department,
        department_counts={d: len(v) for d, v in scores.items()},
        department_gap=gap,
        items=items,
    )


def decide(candidate: EvaluationSummary, champion: EvaluationSummary, **margins: Any) -> gate.GateDecision:
    metrics = ["fact_accuracy", "rougeL", "wrong_value"]
    if "retrieval_at_1" in candidate.metrics and "retrieval_at_1" in champion.metrics:
        metrics.append("retrieval_at_1")
    comparison = compare(candidate, champion, metrics=metrics, resamples=2000, seed=3)
    return gate.decide(
        candidate=candidate, champion=champion, comparison=comparison, margins=gate.GateMargins(**margins)
    )


def shares(right: int, n: int) -> list[float]:
    """n items of which the first ``right`` are right (1.0)."""
    return [1.0] * right + [0.0] * (n - right)


# --------------------------------------------------------------------------- the pure decision


def test_candidate_better_everywhere_passes() -> None:
    champion = crafted({"Legal": shares(15, 30), "HR": shares(10, 30)})
    candidate = crafted({"Legal": shares(18, 30), "HR": shares(13, 30)})
    decision = decide(candidate, champion)
    assert decision.passed
    assert [c.name for c in decision.checks] == [
        "non_inferiority",
        "department_drop",
        "department_gap",
        "secondary_non_inferiority",
        "wrong_value_increase",
        "ungrounded_training_data",
    ]
    non_inferiority = decision.checks[0]
    # every paired difference is 0 or +1 (3 of 30 per department): the lower bound is >= 0
    assert non_inferiority.value >= 0.0 and decision.failed == []
    assert decision.to_dict()["metric"] == "fact_accuracy"


def test_retrieval_is_judged_per_department_beside_the_facts() -> None:
    facts = {"Legal": shares(15, 30), "HR": shares(10, 30)}
    champion = crafted(facts, retrieval={"Legal": shares(29, 30), "HR": shares(12, 30)})
    # a reranker that fixes HR's retrieval and keeps Legal's passes all eight checks
    better = decide(crafted(facts, retrieval={"Legal": shares(29, 30), "HR": shares(28, 30)}), champion)
    assert better.passed and [c.name for c in better.checks][-2:] == ["retrieval_department_drop", "retrieval_gap"]
    # one that sends Legal's questions to other departments' documents is refused, answers unchanged
    worse = decide(crafted(facts, retrieval={"Legal": shares(12, 30), "HR": shares(28, 30)}), champion)
    assert "retrieval_department_drop" in worse.failed
    assert set(worse.failed) <= {"retrieval_department_drop", "retrieval_gap"}  # the fact checks pass
    assert "Legal" in worse.checks[-2].detail
    widened = decide(crafted(facts, retrieval={"Legal": shares(30, 30), "HR": shares(4, 30)}), champion)
    assert "retrieval_gap" in widened.failed


def test_a_wrong_value_in_the_right_sentence_fails_on_facts_though_rouge_holds() -> None:
    # the realistic failure: ROUGE-L unchanged, half the stated values now wrong
    rouge = {"Legal": [0.9] * 40, "HR": [0.9] * 40}
    champion = crafted({"Legal": shares(30, 40), "HR": shares(30, 40)}, rouge)
    candidate = crafted({"Legal": shares(10, 40), "HR": shares(10, 40)}, rouge)
    decision = decide(candidate, champion)
    assert "non_inferiority" in decision.failed and "department_drop" in decision.failed
    assert "secondary_non_inferiority" not in decision.failed


def test_more_confidently_wrong_answers_fail_though_fact_accuracy_holds() -> None:
    """The wrong-values corruption against a champion that states few values: fact accuracy is about
    the same (2 of 40 vs 1 of 40), but 20 of 40 answers now state another value instead of none."""
    rouge = {"Legal": [0.9] * 40}
    champion = crafted({"Legal": shares(2, 40)}, rouge, {"Legal": shares(2, 40)})
    candidate = crafted({"Legal": shares(1, 40)}, rouge, {"Legal": [0.0] + shares(20, 39)})
    decision = decide(candidate, champion, delta=0.1, department_delta=0.15)
    assert decision.failed == ["wrong_value_increase"]
    check = decision.checks[4]
    assert check.value > 0.05 and check.threshold == pytest.approx(0.05)
    # one more confidently wrong answer in 40 is within the margin's reach of noise: it passes
    slightly = crafted({"Legal": shares(2, 40)}, rouge, {"Legal": shares(3, 40)})
    assert "wrong_value_increase" not in decide(slightly, champion, wrong_value_delta=0.1).failed


def test_a_champion_judged_before_wrong_value_existed_skips_the_check() -> None:
    champion = crafted({"Legal": shares(10, 20)})
    candidate = crafted({"Legal": shares(10, 20)})
    comparison = compare(candidate, champion, metrics=("fact_accuracy", "rougeL"), resamples=200, seed=3)
    decision = gate.decide(candidate=candidate, champion=champion, comparison=comparison)
    assert decision.passed and decision.checks[4].name == "wrong_value_increase"
    assert decision.checks[4].value is None and "not measured" in decision.checks[4].detail


def test_a_department_dropping_by_noise_passes_but_a_real_drop_fails() -> None:
    # HR: one answer turns wrong and another right (net 0): the interval's lower bound is about -0.1,
    # within δ_department = 0.15 — a point estimate test with δ = 0.02 would have measured this noise
    champion = crafted({"Legal": shares(20, 30), "HR": shares(20, 30)})
    noisy = crafted({"Legal": shares(20, 30), "HR": [0.0] + shares(19, 28) + [1.0]})
    noisy_decision = decide(noisy, champion, department_delta=0.15)
    assert "department_drop" not in noisy_decision.failed
    assert -0.15 < noisy_decision.checks[1].value < 0.0
    # HR: 15 of 30 flip: the interval's lower bound is far below -0.15
    same_rouge = {"Legal": [0.9] * 30, "HR": [0.9] * 30}
    dropped = crafted({"Legal": shares(20, 30), "HR": shares(5, 30)}, same_rouge)
    decision = decide(
        dropped, crafted({"Legal": shares(20, 30), "HR": shares(20, 30)}, same_rouge), delta=0.5, gap_delta=0.9
    )
    assert decision.failed == ["department_drop"]
    assert decision.checks[1].value < -0.15 and "HR" in decision.checks[1].detail


def test_candidate_widening_the_department_gap_fails_fairness() -> None:
    # better overall and nowhere worse, but Legal gains everything while HR stands still: gap 0.1 → 0.5
    champion = crafted({"Legal": shares(15, 30), "HR": shares(12, 30)})
    candidate = crafted({"Legal": shares(27, 30), "HR": shares(12, 30)})
    decision = decide(candidate, champion)
    assert decision.failed == ["department_gap"]
    gap_check = decision.checks[2]
    assert gap_check.value > 0.15 and gap_check.threshold == pytest.approx(0.15)


def test_secondary_metric_guards_the_rest_of_the_answer() -> None:
    facts = {"Legal": shares(20, 30)}
    champion = crafted(facts, {"Legal": [0.8] * 30})
    candidate = crafted(facts, {"Legal": [0.5] * 30})  # same values stated, sentences lost
    assert decide(candidate, champion).failed == ["secondary_non_inferiority"]


def test_gate_metric_can_be_rouge() -> None:
    champion = crafted({"Legal": shares(10, 20)}, {"Legal": [0.5] * 20})
    candidate = crafted({"Legal": shares(10, 20)}, {"Legal": [0.4] * 20})
    decision = decide(candidate, champion, metric="rougeL", secondary_metric="fact_accuracy")
    assert decision.metric == "rougeL" and "rougeL" in decision.checks[0].detail
    assert decision.failed == ["non_inferiority"]  # -0.1 everywhere: within δ_department, not δ


def test_without_a_champion_the_candidate_passes() -> None:
    decision = gate.decide(candidate=crafted({"HR": [0.1] * 5}), champion=None, comparison=None)
    assert decision.passed and [c.name for c in decision.checks] == ["no_champion", "ungrounded_training_data"]
    assert decision.checks[1].value is None and "not checked" in decision.checks[1].detail


def test_training_data_that_contradicts_its_sources_fails_even_when_the_model_holds() -> None:
    """The wrong-values corruption against a model that copies values from its context: held-out
    figures as good as the champion's, but most training answers state a value their sources do not."""
    same = crafted({"Legal": shares(15, 30), "HR": shares(15, 30)})
    corrupted = Grounding(5, stating=695, ungrounded=638, examples=[(12, ["10 business-day"])])
    comparison = compare(same, same, metrics=("fact_accuracy", "rougeL", "wrong_value"), resamples=200, seed=3)
    decision = gate.decide(candidate=same, champion=same, comparison=comparison, grounding=corrupted)
    assert decision.failed == ["ungrounded_training_data"]
    check = decision.checks[-1]
    assert check.value == pytest.approx(638 / 695) and check.threshold == pytest.approx(0.05)
    assert "638 of 695 answers" in check.detail and "example 12: 10 business-day" in check.detail
    # the demo's curated data: its 10 planted conflicting examples of 695 (1.4%) pass
    clean = Grounding(3, stating=695, ungrounded=10)
    assert gate.decide(candidate=same, champion=same, comparison=comparison, grounding=clean).passed
    # and a first model is judged on its data too
    alone = gate.decide(candidate=same, champion=None, comparison=None, grounding=corrupted)
    assert alone.failed == ["ungrounded_training_data"]


# --------------------------------------------------------------------------- the alias in the database


class RecordingRegistry:
    """Stands in for the MLflow registry where a test is about the database side only."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.champion: str | None = "unset"

    def set_champion(self, run_id: str | None) -> None:
        if self.fail:
            raise TrackingUnavailable("MLflow (test) failed to move the champion alias: connection refused")
        self.champion = run_id

    def champion_run_id(self) -> str | None:
        return None if self.champion == "unset" else self.champion


def _version(session: Session, name: str, *, alias: str | None = None, run_id: str | None = None) -> ModelVersion:
    version = factories.model_version(session, name, alias=alias)
    version.mlflow_run_id = run_id
    session.flush()
    return version


def _passing() -> gate.GateDecision:
    return gate.decide(candidate=crafted({"HR": [0.5]}), champion=None, comparison=None)


def _failing() -> gate.GateDecision:
    champion = crafted({"HR": shares(8, 10)})
    return decide(crafted({"HR": shares(1, 10)}), champion)


def test_a_passing_candidate_becomes_champion_and_the_old_one_retires(session: Session) -> None:
    old = _version(session, "v0", alias="champion")
    new = _version(session, "v1", run_id="run-1")
    registry = RecordingRegistry()
    status = gate.apply_decision(session, candidate=new, decision=_passing(), require_approval=False, registry=registry)
    assert status == gate.STATUS_PROMOTED
    assert (old.alias, new.alias) == ("retired", "champion")
    assert new.promoted_at is not None
    assert new.gate_result["status"] == "promoted" and new.gate_result["passed"] is True
    assert registry.champion == "run-1"
    assert gate.champion(session).name == "v1"


def test_a_failing_candidate_stays_challenger_with_the_failed_conditions(session: Session) -> None:
    _version(session, "v0", alias="champion")
    new = _version(session, "v1", run_id="run-1")
    registry = RecordingRegistry()
    status = gate.apply_decision(session, candidate=new, decision=_failing(), require_approval=False, registry=registry)
    assert status == gate.STATUS_REJECTED
    assert new.alias == "challenger"
    assert new.gate_result["failed"] == ["non_inferiority", "department_drop", "secondary_non_inferiority"]
    assert registry.champion == "unset"
    assert gate.champion(session).name == "v0"


def test_approval_required_then_a_lead_promotes(session: Session) -> None:
    _version(session, "v0", alias="champion")
    new = _version(session, "v1", run_id="run-1")
    registry = RecordingRegistry()
    status = gate.apply_decision(session, candidate=new, decision=_passing(), require_approval=True, registry=registry)
    assert status == gate.STATUS_AWAITING_APPROVAL and new.alias == "challenger"

    auditor = factories.user(session, role="auditor")
    with pytest.raises(PermissionDenied):
        gate.promote(session, actor=auditor, name="v1", registry=registry)
    lead = factories.user(session, role="lead")
    gate.promote(session, actor=lead, name="v1", registry=registry)
    assert gate.champion(session).name == "v1"
    assert new.gate_result["approved_by"] == lead.username
    assert registry.champion == "run-1"
    entry = session.scalars(select(AuditLogEntry).where(AuditLogEntry.action == "model.promote")).one()
    assert entry.actor_name == lead.username and entry.details["retired"] == "v0"


def test_promoting_a_gate_failure_needs_force(session: Session) -> None:
    _version(session, "v0", alias="champion")
    new = _version(session, "v1")
    registry = RecordingRegistry()
    gate.apply_decision(session, candidate=new, decision=_failing(), require_approval=False, registry=registry)
    with pytest.raises(ValidationError, match="did not pass the gate"):
        gate.promote(session, actor=None, name="v1", registry=registry)
    gate.promote(session, actor=None, name="v1", registry=registry, force=True)
    assert new.alias == "champion" and new.gate_result["forced"] is True
    with pytest.raises(ConflictError, match="already the champion"):
        gate.promote(session, actor=None, name="v1", registry=registry)
    with pytest.raises(NotFoundError):
        gate.promote(session, actor=None, name="nope", registry=registry)


def test_rollback_walks_back_one_champion_at_a_time(session: Session) -> None:
    registry = RecordingRegistry()
    v0 = _version(session, "v0", alias="champion")  # seeded champion: never "promoted"
    v0.created_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for name in ("v1", "v2"):
        version = _version(session, name, run_id=f"run-{name}")
        gate.apply_decision(session, candidate=version, decision=_passing(), require_approval=False, registry=registry)
    assert gate.champion(session).name == "v2"

    demoted, restored = gate.rollback(session, actor=None, registry=registry)
    assert (demoted.name, restored.name) == ("v2", "v1") and registry.champion == "run-v1"
    demoted, restored = gate.rollback(session, actor=None, registry=registry)
    assert (demoted.name, restored.name) == ("v1", "v0") and registry.champion is None
    with pytest.raises(NotFoundError, match="no earlier champion"):
        gate.rollback(session, actor=None, registry=registry)
    with pytest.raises(PermissionDenied):
        gate.rollback(session, actor=factories.user(session, role="sme"), registry=registry)


def test_a_registry_failure_leaves_the_champion_unchanged(session: Session) -> None:
    _version(session, "v0", alias="champion")
    new = _version(session, "v1", run_id="run-1")
    with pytest.raises(TrackingUnavailable), session.begin_nested():
        gate.apply_decision(
            session, candidate=new, decision=_passing(), require_approval=False, registry=RecordingRegistry(fail=True)
        )
    session.expire_all()
    assert gate.champion(session).name == "v0"
    assert session.scalars(select(ModelVersion).where(ModelVersion.name == "v1")).one().alias is None


# --------------------------------------------------------------------------- the real MLflow registry


@pytest.fixture(scope="module")
def registered_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """A local MLflow store with two runs, each with its adapter registered as a model version."""
    root = tmp_path_factory.mktemp("registry")
    uri = factories.mlflow_store(root / "mlruns")
    adapter = root / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    tracker = MlflowTracker(uri, "gate-test")
    run_ids = []
    for name in ("v1", "v2"):
        tracker.start_run(name, {})
        tracker.log_artifacts(adapter, "adapter")
        tracker.register_model("adapter", "assistant")
        run_ids.append(str(tracker.run_id))
        tracker.end_run()
    return uri, run_ids


def test_mlflow_registry_alias_follows_promotion_and_rollback(
    registered_runs: tuple[str, list[str]], session: Session
) -> None:
    uri, run_ids = registered_runs
    registry = MlflowRegistry(uri, "assistant")
    registry.set_champion(None)  # the store is shared by both database backends' runs of this test
    assert registry.champion_run_id() is None

    _version(session, "v0", alias="champion")
    for name, run_id in zip(("v1", "v2"), run_ids, strict=True):
        version = _version(session, name, run_id=run_id)
        gate.apply_decision(session, candidate=version, decision=_passing(), require_approval=False, registry=registry)
    assert registry.champion_run_id() == run_ids[1]
    gate.rollback(session, actor=None, registry=registry)
    assert registry.champion_run_id() == run_ids[0]
    gate.rollback(session, actor=None, registry=registry)  # back to v0, which has no registered version
    assert registry.champion_run_id() is None


# --------------------------------------------------------------------------- the CLI


def test_model_cli_lists_promotes_and_rolls_back(sqlite_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from app.cli.main import cli
    from audit.db import make_engine, make_session_factory

    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        _version(session, "v0", alias="champion")
        candidate = _version(session, "v1")
        gate.apply_decision(
            session, candidate=candidate, decision=_passing(), require_approval=True, registry=RecordingRegistry()
        )
        factories.user(session, role="lead", username="lead1")
        factories.user(session, role="auditor", username="aud1")
        session.commit()
    engine.dispose()
    env = {
        "AUDITLOOP_DATABASE_URL": sqlite_url,
        "AUDITLOOP_DATA_DIR": str(tmp_path / "data"),
        "AUDITLOOP_MLFLOW_TRACKING_URI": factories.mlflow_store(tmp_path / "mlruns"),
    }
    runner = CliRunner()

    listed = runner.invoke(cli, ["model", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = {r["name"]: r for r in json.loads(listed.output)}
    assert rows["v1"]["alias"] == "challenger" and rows["v1"]["gate"] == "awaiting_approval"

    refused = runner.invoke(cli, ["model", "promote", "v1", "--by", "aud1"], env=env)
    assert refused.exit_code == 1 and "aud1 (auditor) may not promote model" in refused.output
    promoted = runner.invoke(cli, ["model", "promote", "v1", "--by", "lead1"], env=env)
    assert promoted.exit_code == 0 and "v1 is now the champion" in promoted.output
    rolled = runner.invoke(cli, ["model", "rollback"], env=env)
    assert rolled.exit_code == 0 and "v0 is the champion again" in rolled.output
    again = runner.invoke(cli, ["model", "rollback"], env=env)
    assert (
        again.exit_code == 1
        and again.output.strip() == "Error: no earlier champion to roll back to (the champion 'v0' is the first)"
    )
    bad = runner.invoke(cli, ["worker", "--once", "--set", "lora.r=0"], env=env)
    assert bad.exit_code == 1 and "lora.r: must be >= 1" in bad.output
