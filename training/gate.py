"""The promotion gate: whether a candidate may replace the champion, and moving the champion alias.

:func:`decide` is a pure function over evaluation summaries and their paired comparison. It judges
facts first: the primary metric is fact accuracy (does the answer state the gold values), and every
check reads a paired bootstrap interval, never a point estimate. A candidate passes when

1. ``non_inferiority``: over all gate items, the lower bound of the CI of mean(candidate − champion)
   on the primary metric is above −δ;
2. ``department_drop``: in every department, the lower bound of that department's paired CI on the
   primary metric is above −δ_department (non-inferiority per department);
3. ``department_gap``: the CI of the change in the department gap (candidate gap − champion gap,
   stratified paired bootstrap) has its upper bound below δ_gap: the gap is not likely to have grown
   by more than δ_gap;
4. ``secondary_non_inferiority``: the same as 1 on a text metric (ROUGE-L by default), a guard
   against answers that state the value but lose the rest of the sentence;
5. ``wrong_value_increase``: the upper bound of the CI of mean(candidate − champion) on
   ``wrong_value`` (the answer misses the gold value and states another of its type) is below
   δ_wrong_value: the candidate is not likely to give more confidently wrong answers. Fact accuracy
   alone misses this when the champion states few values at all;
6. ``ungrounded_training_data``: at most ``ungrounded_share`` of the answers in the candidate's
   training data that state a date, amount, percentage or quantity of time state one that none of
   their source documents states (``training.grounding``). Judged on the data, not the model: a model
   that copies values from its context can learn from wrong values and still answer held-out
   questions as well as before, while every fact it was trained on is taught with a contradicted value.
   Checked for a first model too;
7. ``retrieval_department_drop`` and 8. ``retrieval_gap``: checks 2 and 3 on retrieval@1 (the
   document each system's own retriever — first stage plus its reranker — puts first), with the same
   margins: a candidate whose reranker moves one department's questions to other departments'
   documents is refused even when its answers hold up elsewhere.

The margins live in ``training/configs/lora.yaml`` (``gate:``) with why each has its size.

:func:`apply_decision` records the verdict on the ``model_versions`` row: a pass makes the candidate
champion (the previous one retired), or — with ``require_approval`` — a challenger awaiting a lead's
``promote``; a fail leaves a challenger with the failed conditions in ``gate_result``. The database
change is flushed before the registry alias moves, and the caller commits: a registry failure
raises and the caller rolls back, so the database never names a champion the registry does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import ConflictError, NotFoundError, ValidationError
from audit.knowledge.models import DatasetVersion
from audit.modelops.models import ModelVersion
from audit.org.models import User
from audit.permissions import require
from training.config import RecipeConfig
from training.evaluation import HEADLINE_METRICS, BootstrapResult, Comparison, EvaluationSummary, compare
from training.grounding import Grounding
from training.tracking import ModelRegistry

STATUS_PROMOTED = "promoted"
STATUS_AWAITING_APPROVAL = "awaiting_approval"
STATUS_REJECTED = "rejected"
WRONG_VALUE_METRIC = "wrong_value"
RETRIEVAL_METRIC = "retrieval_at_1"


@dataclass(frozen=True)
class GateCheck:
    name: str  # non_inferiority | department_drop | department_gap | secondary_non_inferiority |
    # wrong_value_increase | ungrounded_training_data | retrieval_department_drop | retrieval_gap | no_champion
    passed: bool
    value: float | None
    threshold: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "threshold": self.threshold,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class GateMargins:
    """The gate's settings (``gate:`` in the recipe config): metrics and non-inferiority margins."""

    metric: str = "fact_accuracy"
    delta: float = 0.05
    department_delta: float = 0.15
    gap_delta: float = 0.15
    secondary_metric: str = "rougeL"
    secondary_delta: float = 0.05
    wrong_value_delta: float = 0.05
    ungrounded_share: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "delta": self.delta,
            "department_delta": self.department_delta,
            "gap_delta": self.gap_delta,
            "secondary_metric": self.secondary_metric,
            "secondary_delta": self.secondary_delta,
            "wrong_value_delta": self.wrong_value_delta,
            "ungrounded_share": self.ungrounded_share,
        }


@dataclass(frozen=True)
class GateDecision:
    margins: GateMargins
    checks: tuple[GateCheck, ...]

    @property
    def metric(self) -> str:
        return self.margins.metric

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            **self.margins.to_dict(),
            "checks": [check.to_dict() for check in self.checks],
        }


def _ci(result: BootstrapResult) -> str:
    return f"{result.mean_difference:+.4f} ({result.confidence:.0%} CI [{result.ci_low:+.4f}, {result.ci_high:+.4f}])"


def _non_inferiority(name: str, metric: str, result: BootstrapResult, delta: float) -> GateCheck:
    return GateCheck(
        name,
        result.ci_low > -delta,
        result.ci_low,
        -delta,
        f"{metric}: candidate − champion {_ci(result)} over {result.n} items; the lower bound must exceed {-delta:+.4f}",
    )


def margins_from(cfg: RecipeConfig) -> GateMargins:
    gate = cfg.gate
    return GateMargins(
        metric=gate.metric,
        delta=gate.delta,
        department_delta=gate.department_delta,
        gap_delta=gate.gap_delta,
        secondary_metric=gate.secondary_metric,
        secondary_delta=gate.secondary_delta,
        wrong_value_delta=gate.wrong_value_delta,
        ungrounded_share=gate.ungrounded_share,
    )


def compare_for_gate(candidate: EvaluationSummary, champion: EvaluationSummary, cfg: RecipeConfig) -> Comparison:
    """The paired comparison the gate reads: the gate's metrics and the headline ones, with the
    recipe's bootstrap settings."""
    metrics = dict.fromkeys((cfg.gate.metric, cfg.gate.secondary_metric, *HEADLINE_METRICS))
    return compare(
        candidate,
        champion,
        metrics=[m for m in metrics if m in candidate.metrics and m in champion.metrics],
        resamples=cfg.evaluation.bootstrap_resamples,
        confidence=cfg.evaluation.confidence,
        seed=cfg.seed,
    )


def decide(
    *,
    candidate: EvaluationSummary,
    champion: EvaluationSummary | None,
    comparison: Comparison | None,
    margins: GateMargins | None = None,
    grounding: Grounding | None = None,
) -> GateDecision:
    """Apply the conditions (see the module docstring). Without a champion there is nothing to
    be worse than: the candidate passes a ``no_champion`` check, and is judged on its training data
    alone. ``grounding`` None: the training data was not read (not checked)."""
    margins = margins or GateMargins()
    grounded = _grounding_check(grounding, margins.ungrounded_share)
    if champion is None or comparison is None:
        check = GateCheck("no_champion", True, None, None, "no champion to compare with: the first model is promoted")
        return GateDecision(margins, (check, grounded))
    metric, secondary = margins.metric, margins.secondary_metric
    for needed in (metric, secondary):
        if needed not in comparison.metric_differences:
            raise ValueError(f"gate metric {needed!r} was not compared (have {sorted(comparison.metric_differences)})")

    non_inferiority = _non_inferiority("non_inferiority", metric, comparison.metric_differences[metric], margins.delta)

    department_drop, department_gap = _department_checks(
        comparison, candidate, champion, margins, metric, drop_name="department_drop", gap_name="department_gap"
    )
    secondary_check = _non_inferiority(
        "secondary_non_inferiority", secondary, comparison.metric_differences[secondary], margins.secondary_delta
    )
    wrong = comparison.metric_differences.get(WRONG_VALUE_METRIC)
    if wrong is None:  # a champion judged before wrong_value was measured: nothing to pair with
        wrong_check = GateCheck(
            "wrong_value_increase", True, None, None, "wrong_value was not measured for both: not checked"
        )
    else:
        wrong_check = GateCheck(
            "wrong_value_increase",
            wrong.ci_high < margins.wrong_value_delta,
            wrong.ci_high,
            margins.wrong_value_delta,
            f"{WRONG_VALUE_METRIC} (confidently wrong answers): candidate − champion {_ci(wrong)} over {wrong.n} "
            f"items; the upper bound must be below {margins.wrong_value_delta:+.4f}",
        )
    checks = [non_inferiority, department_drop, department_gap, secondary_check, wrong_check, grounded]
    if RETRIEVAL_METRIC in comparison.metric_differences:
        checks += _department_checks(
            comparison,
            candidate,
            champion,
            margins,
            RETRIEVAL_METRIC,
            drop_name="retrieval_department_drop",
            gap_name="retrieval_gap",
        )
    return GateDecision(margins, tuple(checks))


def _department_checks(
    comparison: Comparison,
    candidate: EvaluationSummary,
    champion: EvaluationSummary,
    margins: GateMargins,
    metric: str,
    *,
    drop_name: str,
    gap_name: str,
) -> tuple[GateCheck, GateCheck]:
    """Per-department non-inferiority on ``metric`` (every department's paired CI lower bound above
    −department_delta) and the change of its department gap (CI upper bound below gap_delta)."""
    per_department = {
        dept: results[metric] for dept, results in comparison.department_differences.items() if metric in results
    }
    dropped = sorted(dept for dept, result in per_department.items() if result.ci_low <= -margins.department_delta)
    worst = min(per_department, key=lambda d: per_department[d].ci_low) if per_department else None
    worst_low = per_department[worst].ci_low if worst else 0.0
    drop = GateCheck(
        drop_name,
        not dropped,
        worst_low,
        -margins.department_delta,
        (
            f"{metric} may have dropped by more than {margins.department_delta} in: "
            + ", ".join(f"{d} {_ci(per_department[d])}" for d in dropped)
            if dropped
            else f"every department's {metric} CI lower bound is above {-margins.department_delta:+.4f} "
            f"(lowest: {worst} {_ci(per_department[worst]) if worst else ''})"
        ),
    )
    gap = comparison.gap_differences.get(metric)
    if gap is None:
        return drop, GateCheck(gap_name, True, None, None, "fewer than two departments: no gap to compare")
    return drop, GateCheck(
        gap_name,
        gap.ci_high < margins.gap_delta,
        gap.ci_high,
        margins.gap_delta,
        f"largest department gap in {metric}: {champion.department_gap.get(metric, math.nan):.4f} (champion) → "
        f"{candidate.department_gap.get(metric, math.nan):.4f} (candidate), change {_ci(gap)}; "
        f"the upper bound must be below {margins.gap_delta:+.4f}",
    )


def _grounding_check(grounding: Grounding | None, limit: float) -> GateCheck:
    if grounding is None:
        return GateCheck("ungrounded_training_data", True, None, None, "the training data was not read: not checked")
    named = "; ".join(f"example {i}: {', '.join(values)}" for i, values in grounding.examples)
    return GateCheck(
        "ungrounded_training_data",
        grounding.share <= limit,
        grounding.share,
        limit,
        f"training data (dataset version {grounding.dataset_version_number}): {grounding.ungrounded} of "
        f"{grounding.stating} answers that state a date, amount, percentage or time quantity state one that "
        f"none of their source documents states ({grounding.share:.1%}; at most {limit:.0%} allowed)"
        + (f", e.g. {named}" if named else ""),
    )


# --------------------------------------------------------------------------- the champion alias


def champion(session: Session) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.alias == "champion")).one_or_none()


def version_by_name(session: Session, name: str) -> ModelVersion:
    version = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).one_or_none()
    if version is None:
        raise NotFoundError(f"model version {name!r} does not exist (see `auditloop model list`)")
    return version


def _make_champion(session: Session, candidate: ModelVersion, registry: ModelRegistry) -> ModelVersion | None:
    """Retire the current champion and crown ``candidate``; the registry alias moves last."""
    current = session.scalars(
        select(ModelVersion).where(ModelVersion.alias == "champion").with_for_update()
    ).one_or_none()
    try:
        if current is not None and current.id != candidate.id:
            current.alias = "retired"
            session.flush()  # the one-champion index must see the old champion go first
        candidate.alias = "champion"
        candidate.promoted_at = utcnow()
        session.flush()
    except IntegrityError as exc:
        raise ConflictError("the champion changed while this promotion ran; look again and retry") from exc
    registry.set_champion(candidate.mlflow_run_id)
    return current if current is not None and current.id != candidate.id else None


def apply_decision(
    session: Session,
    *,
    candidate: ModelVersion,
    decision: GateDecision,
    require_approval: bool,
    registry: ModelRegistry,
) -> str:
    """Record the gate's verdict on ``candidate`` and move the alias when it passed. Returns the status."""
    if decision.passed and not require_approval:
        status = STATUS_PROMOTED
    elif decision.passed:
        status = STATUS_AWAITING_APPROVAL
    else:
        status = STATUS_REJECTED
    candidate.gate_result = {**decision.to_dict(), "status": status, "decided_at": utcnow().isoformat()}
    retired = None
    if status == STATUS_PROMOTED:
        retired = _make_champion(session, candidate, registry)
    else:
        candidate.alias = "challenger"
        session.flush()
    auditlog.record(
        session,
        actor=None,
        action="model.gate",
        entity_type="model_version",
        entity_id=candidate.name,
        details={"status": status, "failed": decision.failed, "retired": retired.name if retired else None},
    )
    return status


def promote(
    session: Session, *, actor: User | None, name: str, registry: ModelRegistry, force: bool = False
) -> ModelVersion:
    """A lead approves ``name`` as champion. A candidate that failed the gate needs ``force``."""
    require(actor, "promote_model")
    candidate = version_by_name(session, name)
    if candidate.alias == "champion":
        raise ConflictError(f"model version {name!r} is already the champion")
    gate_passed = bool(candidate.gate_result.get("passed"))
    if not gate_passed and not force:
        failed = ", ".join(candidate.gate_result.get("failed", [])) or "not evaluated by the gate"
        raise ValidationError(
            f"model version {name!r} did not pass the gate ({failed}); promote with --force to override"
        )
    retired = _make_champion(session, candidate, registry)
    candidate.gate_result = {
        **candidate.gate_result,
        "status": STATUS_PROMOTED,
        "approved_by": actor.username if actor else "system",
        "approved_at": utcnow().isoformat(),
        "forced": not gate_passed,
    }
    session.flush()
    auditlog.record(
        session,
        actor=actor,
        action="model.promote",
        entity_type="model_version",
        entity_id=name,
        details={"retired": retired.name if retired else None, "forced": not gate_passed},
    )
    return candidate


def rollback(session: Session, *, actor: User | None, registry: ModelRegistry) -> tuple[ModelVersion, ModelVersion]:
    """Put the previous champion back: the current champion is retired and the retired version that
    became champion most recently before it is champion again. Returns (demoted, restored).

    ``promoted_at`` of the restored version is left as it was, so rolling back again goes one
    step further back instead of flipping between two versions.
    """
    require(actor, "promote_model")
    current = champion(session)
    if current is None:
        raise NotFoundError("there is no champion to roll back")
    # a version seeded or imported as champion has no promoted_at: it became champion when created
    became_champion = func.coalesce(ModelVersion.promoted_at, ModelVersion.created_at)
    current_since = current.promoted_at or current.created_at
    previous = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.alias == "retired", became_champion < current_since)
        .order_by(became_champion.desc(), ModelVersion.id.desc())
        .limit(1)
    ).first()
    if previous is None:
        raise NotFoundError(f"no earlier champion to roll back to (the champion {current.name!r} is the first)")
    try:
        current.alias = "retired"
        current.gate_result = {**current.gate_result, "rolled_back_at": utcnow().isoformat()}
        session.flush()
        previous.alias = "champion"
        session.flush()
    except IntegrityError as exc:
        raise ConflictError("the champion changed while the rollback ran; look again and retry") from exc
    registry.set_champion(previous.mlflow_run_id)
    auditlog.record(
        session,
        actor=actor,
        action="model.rollback",
        entity_type="model_version",
        entity_id=previous.name,
        details={"demoted": current.name, "restored": previous.name},
    )
    return current, previous


def version_summaries(session: Session) -> list[dict[str, Any]]:
    """Every model version, newest first, as plain rows for listings (CLI, dashboards)."""
    rows = session.execute(
        select(ModelVersion, DatasetVersion.number)
        .outerjoin(DatasetVersion, DatasetVersion.id == ModelVersion.dataset_version_id)
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
    ).all()
    summaries = []
    for version, dataset_number in rows:
        metrics = (version.evaluation or {}).get("metrics", {})
        summaries.append(
            {
                "name": version.name,
                "alias": version.alias,
                "gate": (version.gate_result or {}).get("status"),
                "failed_conditions": (version.gate_result or {}).get("failed", []),
                "dataset_version": dataset_number,
                "fact_accuracy": metrics.get("fact_accuracy"),
                "citation_accuracy": metrics.get("citation_accuracy"),
                "rougeL": metrics.get("rougeL"),
                "f1": metrics.get("f1"),
                "base_model": version.base_model,
                "adapter_uri": version.adapter_uri,
                "mlflow_run_id": version.mlflow_run_id,
                "created_at": version.created_at.isoformat(timespec="seconds"),
                "promoted_at": version.promoted_at.isoformat(timespec="seconds") if version.promoted_at else None,
            }
        )
    return summaries
