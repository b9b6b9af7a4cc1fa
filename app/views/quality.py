"""Lead: answer quality over time by model version and asker department, with 95 % confidence bands."""

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

report: dict[str, Any] = {"rows": [], "confidence": measures_service.CONFIDENCE}
with show_errors(), services.reading() as uow:
    report = measures_service.quality(uow.session, actor=uow.actor, filters=filters)

frame = pd.DataFrame(
    report["rows"],
    columns=["day", "model_version", "department", "dimension", "n", "mean", "ci_low", "ci_high", "weighted_mean"],
)
if frame.empty:
    st.info("No ratings in this window.")
    st.stop()
frame["day"] = pd.to_datetime(frame["day"])

dimension = st.segmented_control(
    "Dimension", DIMENSIONS, default="accuracy", format_func=lambda d: RUBRIC[d].label, key="quality.dimension"
)
shown = frame[frame["dimension"] == (dimension or "accuracy")]
confidence = int(round(report["confidence"] * 100))

base = alt.Chart(shown).encode(
    x=alt.X("day:T", title="day"),
    color=alt.Color("model_version:N", title="model version"),
)
# a day with few ratings has a wide interval: the scale stays 1–5 and the band is clipped to it
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
        "n:Q",
        alt.Tooltip("mean:Q", format=".2f"),
        alt.Tooltip("ci_low:Q", format=".2f"),
        alt.Tooltip("ci_high:Q", format=".2f"),
        alt.Tooltip("weighted_mean:Q", format=".2f", title="production-weighted"),
    ],
)
chart = (
    alt.layer(band, line)
    .properties(height=180, width=250)
    .facet(facet=alt.Facet("department:N", title=None), columns=3)
    .resolve_scale(y="shared")
)
st.caption(f"Daily mean with its {confidence} % t-interval (band); one panel per asker department.")
st.altair_chart(chart, width="content")

st.subheader("All cells")
csv_export.table(frame, file_name="quality.csv", key="quality")
