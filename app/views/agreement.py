"""Lead: do auditors agree with each other (Krippendorff's alpha per dimension, Cohen's kappa per
pair), and with the gold items' expected scores (per-auditor calibration)?"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app import services
from app.components import csv_export
from app.components.feedback import show_errors
from app.components.guard import require_page
from app.components.report_filters import report_filters
from audit.measures import service as measures_service
from audit.ratings.rubric import RUBRIC

require_page("view_dashboards")
st.title("Agreement and calibration")
filters = report_filters("agreement")

agreement: dict[str, Any] = {"dimensions": {}, "pairs": []}
calibration: dict[str, Any] = {"rows": []}
with show_errors(), services.reading() as uow:
    agreement = measures_service.agreement(uow.session, actor=uow.actor, filters=filters)
    calibration = measures_service.calibration(uow.session, actor=uow.actor, filters=filters)

st.subheader("Agreement between auditors")
st.caption(
    "Krippendorff's alpha over every answer rated by two or more auditors: 1 is perfect agreement, "
    "0 is chance; 0.667 is the usual floor for tentative conclusions, 0.8 for firm ones."
)
dimensions = pd.DataFrame(
    [{"dimension": RUBRIC[name].label, **values} for name, values in agreement["dimensions"].items()],
    columns=["dimension", "alpha_ordinal", "alpha_interval", "items", "ratings"],
)
if dimensions["items"].sum() == 0:
    st.info("No answer in this window was rated by two auditors yet.")
else:
    cols = st.columns(len(dimensions))
    for column, row in zip(cols, dimensions.itertuples(), strict=True):
        column.metric(
            f"{row.dimension} α (ordinal)",
            "–" if pd.isna(row.alpha_ordinal) else f"{row.alpha_ordinal:.2f}",
            help=f"{row.items} answers, {row.ratings} ratings",
            border=True,
        )
csv_export.table(dimensions, file_name="agreement-dimensions.csv", key="agreement_dimensions")

pairs = pd.DataFrame(agreement["pairs"], columns=["auditor_a", "auditor_b", "dimension", "kappa", "items"])
st.caption("Quadratic-weighted Cohen's kappa for auditor pairs sharing at least 20 answers.")
if pairs.empty:
    st.caption("No pair of auditors shares 20 answers yet.")
else:
    csv_export.table(pairs, file_name="agreement-pairs.csv", key="agreement_pairs")

st.subheader("Calibration against gold items")
st.caption("Mean signed error (rating − expected): below 0 is harsh, above 0 lenient; within ±1 is the share close.")
calibration_frame = pd.DataFrame(
    calibration["rows"], columns=["auditor", "dimension", "n", "mean_error", "mean_abs_error", "within_one_share"]
)
if calibration_frame.empty:
    st.info("No gold item was rated in this window.")
    st.stop()
pooled = calibration_frame[calibration_frame["dimension"] == "all"]
chart = (
    alt.Chart(pooled if not pooled.empty else calibration_frame)
    .mark_bar()
    .encode(
        x=alt.X("mean_error:Q", title="mean signed error (all dimensions)"),
        y=alt.Y("auditor:N", sort="x", title=None),
        color=alt.condition("datum.mean_error < 0", alt.value("#e45756"), alt.value("#4c78a8")),
        tooltip=[
            "auditor:N",
            "n:Q",
            alt.Tooltip("mean_error:Q", format=".2f"),
            alt.Tooltip("mean_abs_error:Q", format=".2f"),
            alt.Tooltip("within_one_share:Q", format=".0%"),
        ],
    )
)
st.altair_chart(chart, width="stretch")
csv_export.table(calibration_frame, file_name="calibration.csv", key="calibration")
