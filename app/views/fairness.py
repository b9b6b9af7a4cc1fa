"""Lead: does the assistant serve every department equally well? Department means, the gap and ratio
between departments, small-group warnings, which departments' documents it cites, and who bias flags
say it favours."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app import services
from app.components import csv_export
from app.components.charts import heatmap, matrix_frame
from app.components.feedback import show_errors
from app.components.guard import require_page
from app.components.inert import escape_markdown
from app.components.report_filters import report_filters
from audit.measures import service as measures_service
from audit.measures.fairness import METRICS

require_page("view_dashboards")
st.title("Fairness")
filters = report_filters("fairness", with_department=False)

report: dict[str, Any] | None = None
with show_errors(), services.reading() as uow:
    report = measures_service.fairness(uow.session, actor=uow.actor, filters=filters)
if report is None:
    st.stop()
if not report["by_department"]:
    st.info("No ratings in this window.")
    st.stop()

by_department = pd.DataFrame.from_dict(report["by_department"], orient="index").rename_axis("department").reset_index()
small = by_department[~by_department["reliable"]]
if not small.empty:
    names = ", ".join(f"{row.department} ({row.ratings})" for row in small.itertuples())
    st.warning(
        escape_markdown(
            f"Fewer than {report['min_group_size']} ratings: {names}. Their means are unreliable; "
            "the gaps below are also shown without them.",
            max_length=1000,
        ),
        icon=":material/warning:",
    )


def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "–" if value is None else pattern.format(value)


gap, ratio, flags, sources = st.columns(4)
gap.metric(
    "Accuracy gap (max − min)",
    _fmt(report["accuracy_mean_difference"]),
    help="Difference between the best and worst department's mean accuracy (fairlearn MetricFrame.difference).",
    border=True,
)
ratio.metric(
    "Accuracy ratio (min / max)",
    _fmt(report["accuracy_mean_ratio"]),
    help="1.0 means equal; fairlearn MetricFrame.ratio.",
    border=True,
)
flags.metric("Bias-flag rate gap", _fmt(report["bias_flag_rate_difference"], "{:.1%}"), border=True)
sources.metric("Sources-correct gap", _fmt(report["sources_correct_rate_difference"], "{:.1%}"), border=True)
reliable_only = report.get("reliable_only", {})
if not small.empty and reliable_only.get("accuracy_mean_difference") is not None:
    st.caption(
        f"Reliable departments only: accuracy gap {_fmt(reliable_only['accuracy_mean_difference'])}, "
        f"ratio {_fmt(reliable_only['accuracy_mean_ratio'])}."
    )

metric = st.selectbox("Metric by department", METRICS, format_func=lambda m: m.replace("_", " "), key="fairness.metric")
bars = (
    alt.Chart(by_department)
    .mark_bar()
    .encode(
        x=alt.X(f"{metric}:Q", title=metric.replace("_", " ")),
        y=alt.Y("department:N", sort="-x", title=None),
        color=alt.Color("reliable:N", scale=alt.Scale(domain=[True, False], range=["#4c78a8", "#bab0ac"])),
        tooltip=["department:N", "ratings:Q", alt.Tooltip(f"{metric}:Q", format=".3f"), "reliable:N"],
    )
    .properties(height=40 * len(by_department) + 40)
)
st.altair_chart(bars, width="stretch")
csv_export.table(by_department, file_name="fairness-by-department.csv", key="fairness")

st.subheader("Bias flags: asker department × department named")
favoured_frame = matrix_frame(report["flag_matrix"], row="asker department", column="favoured department")
disfavoured_frame = matrix_frame(
    report.get("disfavoured_matrix", {}), row="asker department", column="disfavoured department"
)
left, right = st.columns(2)
with left:
    if favoured_frame.empty:
        st.caption("No bias flag names a favoured department.")
    else:
        st.altair_chart(
            heatmap(favoured_frame, row="asker department", column="favoured department", title="favoured"),
            width="stretch",
        )
        csv_export.download_button(favoured_frame, file_name="bias-flags-favoured.csv", key="fairness_favoured")
with right:
    if disfavoured_frame.empty:
        st.caption("No bias flag names a disfavoured department.")
    else:
        st.altair_chart(
            heatmap(disfavoured_frame, row="asker department", column="disfavoured department", title="disfavoured"),
            width="stretch",
        )
        csv_export.download_button(
            disfavoured_frame, file_name="bias-flags-disfavoured.csv", key="fairness_disfavoured"
        )
