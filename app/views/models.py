"""Lead: model versions (champion, challengers, retired) with their gate results, training runs, and
the two decisions a lead takes here — queue a retraining job, approve a promotion."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import services
from app.components import csv_export
from app.components.confirm import confirmed
from app.components.feedback import flash, show_errors, show_flash
from app.components.guard import require_page
from audit.permissions import can
from training import gate, jobs
from training.config import TrackingConfig

user = require_page("view_dashboards")
st.title("Models")
show_flash()

with services.read_only() as session:
    versions = gate.version_summaries(session)
    recent = jobs.recent_jobs(session, limit=50)

versions_frame = pd.DataFrame(
    [
        {
            "model version": v["name"],
            "alias": v["alias"] or "",
            "gate": v["gate"] or "",
            "failed checks": ", ".join(v["failed_conditions"]),
            "dataset version": v["dataset_version"],
            "fact accuracy": v["fact_accuracy"],
            "citation accuracy": v["citation_accuracy"],
            "ROUGE-L": v["rougeL"],
            "token F1": v["f1"],
            "created": v["created_at"],
            "promoted": v["promoted_at"],
            "MLflow run": v["mlflow_run_id"] or "",
        }
        for v in versions
    ],
    columns=[
        "model version",
        "alias",
        "gate",
        "failed checks",
        "dataset version",
        "ROUGE-L",
        "token F1",
        "created",
        "promoted",
        "MLflow run",
    ],
)
champion = next((v for v in versions if v["alias"] == "champion"), None)
challengers = [v for v in versions if v["alias"] == "challenger"]
left, right = st.columns(2)
left.metric("Champion", champion["name"] if champion else "none", border=True)
right.metric("Challengers", len(challengers), border=True)
st.subheader("Model versions")
csv_export.table(versions_frame, file_name="model-versions.csv", key="model_versions")

st.subheader("Training runs")
jobs_frame = pd.DataFrame(
    [
        {
            "job": j.id,
            "status": j.status,
            "reason": j.trigger_reason,
            "dataset version id": j.dataset_version_id,
            "attempts": f"{j.attempts}/{j.max_attempts}",
            "worker": j.worker_id or "",
            "created": j.created_at,
            "finished": j.finished_at,
            "model version id": j.model_version_id,
            "error": (j.error or "")[:300],
        }
        for j in recent
    ],
    columns=[
        "job",
        "status",
        "reason",
        "dataset version id",
        "attempts",
        "worker",
        "created",
        "finished",
        "model version id",
        "error",
    ],
)
csv_export.table(jobs_frame, file_name="training-jobs.csv", key="training_jobs")

if can(user, "queue_training"):
    st.subheader("Queue a retraining job")
    reason = st.text_input("Why", key="models.reason", max_chars=500, placeholder="e.g. HR corrections applied")
    if confirmed(
        "Queue retraining",
        key="models.queue",
        question="Queue a LoRA retraining job on the current dataset version? Only one job runs at a time.",
        primary=True,
        disabled_because=None if reason.strip() else "Say why first: the reason is kept with the job.",
    ):
        with show_errors() as outcome, services.unit_of_work() as uow:
            job = jobs.enqueue(uow.session, actor=uow.actor, reason=reason)
            job_id = job.id
        if outcome.ok:
            flash(f"Training job {job_id} queued.")
            st.rerun()

if can(user, "promote_model") and challengers:
    st.subheader("Approve a promotion")
    candidate = st.selectbox(
        "Challenger",
        challengers,
        format_func=lambda v: f"{v['name']} (gate: {v['gate'] or 'not evaluated'})",
        key="models.candidate",
    )
    if candidate["gate"] != gate.STATUS_AWAITING_APPROVAL:
        st.warning(
            "This challenger did not pass the gate; it cannot be promoted from here "
            "(`auditloop model promote --force` can, and says so in the audit log)."
        )
    elif confirmed(
        f"Promote {candidate['name']}",
        key=f"models.promote.{candidate['name']}",
        question=f"Make {candidate['name']} the champion? The current champion is retired; the new one answers from now on.",
        primary=True,
    ):
        from training.tracking import MlflowRegistry  # MLflow loads only when a promotion happens

        with show_errors() as outcome, services.unit_of_work() as uow:
            registry = MlflowRegistry(services.settings().mlflow_tracking_uri, TrackingConfig().registered_model_name)
            gate.promote(uow.session, actor=uow.actor, name=candidate["name"], registry=registry)
        if outcome.ok:
            flash(f"{candidate['name']} is the champion.")
            st.rerun()
