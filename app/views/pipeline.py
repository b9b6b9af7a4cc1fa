"""Lead: today's sample (drawn and assigned from here when it is not), the loop as a funnel (sampled → rated → flagged → reviewed → confirmed → fixed → trained →
promoted, with the hours each step takes) and the data fixes waiting for a lead's approval."""

from __future__ import annotations

import json
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app import services
from app.components import csv_export
from app.components.confirm import confirmed
from app.components.daily_sample import daily_sample_panel
from app.components.feedback import flash, show_errors, show_flash
from app.components.guard import require_page
from app.components.report_filters import report_filters
from audit.fixes import service as fixes_service
from audit.measures import service as measures_service
from audit.permissions import can

user = require_page("view_dashboards")
st.title("Fix pipeline")
show_flash()
if can(user, "run_sampling"):
    daily_sample_panel()
filters = report_filters("pipeline")

funnel: dict[str, Any] = {"steps": []}
with show_errors(), services.reading() as uow:
    funnel = measures_service.funnel(uow.session, actor=uow.actor, filters=filters)
steps = pd.DataFrame(
    funnel["steps"], columns=["step", "count", "share_of_previous", "median_hours", "median_hours_from_sampled"]
)
if steps.empty or steps["count"].sum() == 0:
    st.info("Nothing was sampled in this window.")
else:
    chart = (
        alt.Chart(steps)
        .mark_bar()
        .encode(
            x=alt.X("count:Q", title="answers"),
            y=alt.Y("step:N", sort=list(steps["step"]), title=None),
            tooltip=[
                "step:N",
                "count:Q",
                alt.Tooltip("share_of_previous:Q", format=".0%"),
                alt.Tooltip("median_hours:Q", format=".1f", title="median hours from previous step"),
            ],
        )
        .properties(height=32 * len(steps) + 30)
    )
    st.altair_chart(chart, width="stretch")
csv_export.table(steps, file_name="funnel.csv", key="funnel")

st.subheader("Data fixes waiting for a lead")
if not can(user, "view_reviews"):
    st.caption("Fixes are shown to leads.")
    st.stop()

waiting: list[dict[str, Any]] = []
recent: list[dict[str, Any]] = []
with show_errors(), services.unit_of_work() as uow:
    policy = fixes_service.load_policy(uow.session)
    proposed = fixes_service.list_fixes(uow.session, actor=uow.actor, status="proposed")
    waiting = [fixes_service.fix_summary(f) for f in proposed if f.kind not in policy.auto_apply_kinds]
    automatic = [fixes_service.fix_summary(f) for f in proposed if f.kind in policy.auto_apply_kinds]
    recent = [
        fixes_service.fix_summary(f)
        for f in fixes_service.list_fixes(uow.session, actor=uow.actor, limit=200)
        if f.status != "proposed"
    ]

if automatic:
    kinds = ", ".join(sorted({f["kind"].replace("_", " ") for f in automatic}))
    st.info(
        f"{len(automatic)} proposed fixes ({kinds}) wait for automatic application: the fixes policy applies "
        "their kinds without a lead, at the next daily run (`auditloop daily`) or `auditloop fixes apply`.",
        icon=":material/schedule:",
    )
if not waiting:
    st.caption("No fix waits for a lead: every proposed fix of a kind the policy does not auto-apply has been decided.")
else:
    editor_frame = pd.DataFrame(
        [
            {
                "select": False,
                "fix": f["id"],
                "kind": f["kind"],
                "review item": f["review_item_id"],
                "reason": f["reason"],
                "payload": json.dumps(f["payload"], ensure_ascii=False)[:300],
            }
            for f in waiting
        ]
    )
    edited = st.data_editor(
        editor_frame,
        hide_index=True,
        disabled=["fix", "kind", "review item", "reason", "payload"],
        column_config={"select": st.column_config.CheckboxColumn("Select", default=False)},
        key="pipeline.fixes",
    )
    chosen = [int(i) for i in edited.loc[edited["select"], "fix"]]
    note = st.text_input("Note (required to reject)", key="pipeline.note", max_chars=500)
    may_approve = can(user, "approve_fixes")
    approve_column, reject_column = st.columns(2)
    if not may_approve:
        st.caption("Only leads approve fixes.")
    elif chosen:
        with approve_column:
            if confirmed(
                f"Apply {len(chosen)} fixes",
                key="pipeline.apply",
                question=f"Apply fixes {', '.join(map(str, chosen))}? Applying writes a new dataset version.",
                primary=True,
            ):
                with show_errors() as outcome, services.unit_of_work() as uow:
                    report = fixes_service.apply_fixes(uow.session, actor=uow.actor, fix_ids=chosen, note=note or None)
                if outcome.ok:
                    version = f"; dataset version {report.dataset_version}" if report.dataset_version else ""
                    refused = f"; {len(report.refused)} refused" if report.refused else ""
                    flash(f"Applied {len(report.applied)} fixes{version}{refused}.")
                    st.rerun()
        with reject_column:
            if confirmed(
                f"Reject {len(chosen)} fixes",
                key="pipeline.reject",
                question=f"Reject fixes {', '.join(map(str, chosen))}?",
            ):
                with show_errors() as outcome, services.unit_of_work() as uow:
                    fixes_service.reject_fixes(uow.session, actor=uow.actor, fix_ids=chosen, note=note)
                if outcome.ok:
                    flash(f"Rejected {len(chosen)} fixes.")
                    st.rerun()
    else:
        st.caption("Select fixes to apply or reject them.")

st.subheader("Recently decided fixes")
recent_frame = pd.DataFrame(
    [
        {
            "fix": f["id"],
            "kind": f["kind"],
            "status": f["status"],
            "decided at": f["decided_at"],
            "note": f["decision_note"],
            "review item": f["review_item_id"],
            "reason": f["reason"],
        }
        for f in recent
    ],
    columns=["fix", "kind", "status", "decided at", "note", "review item", "reason"],
)
csv_export.table(recent_frame, file_name="fixes-decided.csv", key="fixes_recent")
