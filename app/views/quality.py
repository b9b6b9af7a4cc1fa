"""Lead: answer quality over time by model version and asker department, with 95 % confidence bands
(over answers; a cell with too few answers says so instead of showing a band)."""

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
from audit.ratings.models import DIMENSIONS
from audit.ratings.rubric import RUBRIC

require_page("view_dashboards")
st.title("Quality")
filters = report_filters("quality")

report: dict[str, Any] = {"rows": [], "confidence": measures_service.CONFIDENCE, "min_answers_for_interval": 0}
with show_errors(), services.reading() as uow:
    report = measures_service.quality(uow.session, actor=uow.actor, filters=filters)

frame = pd.DataFrame(report["rows"], columns=measures_service.QUALITY_COLUMNS)
if frame.empty:
    st.info("No ratings in this window.")
    st.stop()
frame["day"] = pd.to_datetime(frame["day"])
minimum = report["min_answers_for_interval"]
frame["interval"] = [
    f"too few answers (< {minimum})" if too_few else f"{low:.2f} – {high:.2f}"
    for too_few, low, high in zip(frame["too_few_answers"], frame["ci_low"], frame["ci_high"], strict=True)
]

dimension = st.segmented_control(
    "Dimension", DIMENSIONS, default="accuracy", format_func=lambda d: RUBRIC[d].label, key="quality.dimension"
)
shown = frame[frame["dimension"] == (dimension or "accuracy")]
confidence = int(round(report["confidence"] * 100))

base = alt.Chart(shown).encode(
    x=alt.X("day:T", title="day"),
    color=alt.Color("model_version:N", title="model version"),
)
# the intervals stay within 1–5 by construction; a cell with too few answers has none (no band)
scores = alt.Scale(domain=[1, 5], clamp=True)
band = base.mark_area(opacity=0.18, clip=True).encode(
    y=alt.Y("ci_low:Q", title="mean score", scale=scores), y2="ci_high:Q"
)
line = base.mark_line(point=True, clip=True).encode(
    y=alt.Y("mean:Q", scale=scores),
    tooltip=[
        "day:T",
        "model_version:N",
        "department:N",
        alt.Tooltip("n:Q", title="ratings"),
        "answers:Q",
        alt.Tooltip("mean:Q", format=".2f"),
        alt.Tooltip("interval:N", title=f"{confidence} % interval"),
        alt.Tooltip("weighted_mean:Q", format=".2f", title="production-weighted"),
    ],
)
chart = (
    alt.layer(band, line)
    .properties(height=180, width=250)
    .facet(facet=alt.Facet("department:N", title=None), columns=3)
    .resolve_scale(y="shared")
)
st.caption(
    f"Daily mean with its {confidence} % interval over answers (band; ratings of one answer are not "
    f"independent); a day with fewer than {minimum} rated answers shows no band. One panel per asker department."
)
few = int(shown["too_few_answers"].sum())
if few:
    st.caption(f"{few} of {len(shown)} cells have too few answers (< {minimum}) for an interval.")
st.altair_chart(chart, width="content")

st.subheader("All cells")
csv_export.table(frame.drop(columns=["too_few_answers"]), file_name="quality.csv", key="quality")
