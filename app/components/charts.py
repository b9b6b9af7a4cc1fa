"""Charts the dashboards share (Altair; Streamlit draws them with Vega-Lite, no HTML of ours)."""

from __future__ import annotations

from collections.abc import Mapping

import altair as alt
import pandas as pd


def matrix_frame(matrix: Mapping[str, Mapping[str, int]], *, row: str, column: str) -> pd.DataFrame:
    """{row: {column: count}} as a long frame with the columns ``row``, ``column`` and ``count``."""
    return pd.DataFrame(
        [{row: r, column: c, "count": n} for r, counts in matrix.items() for c, n in counts.items()],
        columns=[row, column, "count"],
    )


def heatmap(frame: pd.DataFrame, *, row: str, column: str, title: str) -> alt.LayerChart:
    base = alt.Chart(frame).encode(
        x=alt.X(f"{column}:N", title=column),
        y=alt.Y(f"{row}:N", title=row),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("count:Q", scale=alt.Scale(scheme="oranges"), title="flags"),
        tooltip=[f"{row}:N", f"{column}:N", "count:Q"],
    )
    labels = base.mark_text(baseline="middle").encode(text="count:Q")
    return alt.layer(cells, labels).properties(title=title, height=260)
