"""The promotion gate on crafted evaluation summaries, and the champion alias in the database and registry."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

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
from training.tracking import MlflowRegistry, MlflowTracker, TrackingUnavailable


def crafted(scores: dict[str, list[float]]) -> EvaluationSummary:
    """A summary whose rougeL and f1 per item are the given scores, per department in order."""
    items = {}
    for dept, values in scores.items():
        for i, value in enumerate(values):
            items[f"{dept}-{i}"] = {"rougeL": value, "f1": value, "department": dept}
    by_department = {dept: {"rougeL": float(np.mean(v)), "f1": float(np.mean(v))} for dept, v in scores.items()}
    means = [m["rougeL"] for m in by_department.values()]
    gap = max(means) - min(means)
    overall = float(np.mean([v for values in scores.values() for v in values]))
    return EvaluationSummary(
        signature="crafted",
        n=len(items),
        metrics={"rougeL": overall, "f1": overall},
        by_department=by_department,
        department_counts={d: len(v) for d, v in scores.items()},
        department_gap={"rougeL": gap, "f1": gap},
        items=items,
    )


def decide(candidate: EvaluationSummary, champion: EvaluationSummary, **kwargs) -> gate.GateDecision:
    comparison = compare(candidate, champion, resamples=2000, seed=3)
    return gate.decide(candidate=candidate, champion=champion, comparison=comparison, **kwargs)


# --------------------------------------------------------------------------- the pure decision


def test_candidate_better_everywhere_passes() -> None:
    champion = crafted({"Legal": [0.5] * 20, "HR": [0.4] * 20})
    candidate = crafted({"Legal": [0.55] * 20, "HR": [0.45] * 20})
    decision = decide(candidate, champion, delta=0.02, gap_tolerance=0.005)
    assert decision.passed
    assert [c.name for c in decision.checks] == ["non_inferiority", "department_drop", "department_gap"]
    non_inferiority = decision.checks[0]
    # every paired difference is exactly +0.05, so every resample's mean is +0.05
    assert non_inferiority.value == pytest.approx(0.05)
    assert decision.failed == []


def test_noisy_candidate_fails_non_inferiority_only() -> None:
    # each department: differences +0.30 and -0.33 alternating → mean -0.015 per department (a drop
    # within δ = 0.02), unchanged department gap, but a wide CI whose lower bound is far below -δ
    champion = crafted({"Legal": [0.5] * 20, "HR": [0.5] * 20})
    candidate_values = [0.8 if i % 2 == 0 else 0.17 for i in range(20)]
    candidate = crafted({"Legal": candidate_values, "HR": candidate_values})
    decision = decide(candidate, champion, delta=0.02, gap_tolerance=0.005)
    assert not decision.passed
    assert decision.failed == ["non_inferiority"]
    assert decision.checks[0].value < -0.02


def test_candidate_widening_the_department_gap_fails_fairness() -> None:
    # better on average and nowhere worse, but Legal gains while HR stands still: gap 0.1 → 0.3
    champion = crafted({"Legal": [0.6] * 30, "HR": [0.5] * 30})
    candidate = crafted({"Legal": [0.8] * 30, "HR": [0.5] * 30})
    decision = decide(candidate, champion, delta=0.02, gap_tolerance=0.005)
    assert decision.failed == ["department_gap"]
    gap_check = decision.checks[2]
    assert gap_check.value == pytest.approx(0.3)
    assert gap_check.threshold == pytest.approx(0.105)


def test_one_department_dropping_fails_even_when_the_gap_shrinks() -> None:
    # Legal -0.1, HR +0.1: overall mean difference 0 with a tight CI (400 items), gap 0.2 → 0.0
    champion = crafted({"Legal": [0.7] * 200, "HR": [0.5] * 200})
    candidate = crafted({"Legal": [0.6] * 200, "HR": [0.6] * 200})
    decision = decide(candidate, champion, delta=0.02, gap_tolerance=0.005)
    assert decision.failed == ["department_drop"]
    assert decision.checks[1].value == pytest.approx(-0.1)
    assert "Legal" in decision.checks[1].detail


def test_gap_growth_within_tolerance_passes() -> None:
    champion = crafted({"Legal": [0.6] * 30, "HR": [0.5] * 30})
    candidate = crafted({"Legal": [0.604] * 30, "HR": [0.5] * 30})
    assert decide(candidate, champion, delta=0.02, gap_tolerance=0.005).passed
    assert not decide(candidate, champion, delta=0.02, gap_tolerance=0.003).passed


def test_gate_metric_can_be_f1() -> None:
    champion = crafted({"Legal": [0.5] * 20})
    candidate = crafted({"Legal": [0.4] * 20})
    # rougeL and f1 are the same crafted numbers; the decision names the metric it used
    decision = decide(candidate, champion, metric="f1", delta=0.02)
    assert decision.metric == "f1" and "f1" in decision.checks[0].detail
    assert not decision.passed


def test_without_a_champion_the_candidate_passes() -> None:
    decision = gate.decide(candidate=crafted({"HR": [0.1] * 5}), champion=None, comparison=None)
    assert decision.passed and [c.name for c in decision.checks] == ["no_champion"]


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
    champion = crafted({"HR": [0.5] * 10})
    return decide(crafted({"HR": [0.2] * 10}), champion)


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
    assert new.gate_result["failed"] == ["non_inferiority", "department_drop"]
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
