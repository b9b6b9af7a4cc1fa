"""CSV downloads that a spreadsheet cannot mistake for formulas.

A cell starting with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) is run as a formula by
Excel and LibreOffice: model output or a comment could smuggle one in (OWASP "CSV injection"). Such
text cells are prefixed with a single quote. Numbers stay numbers. The built-in dataframe download is
switched off in ``.streamlit/config.toml`` (``client.disableDataExport``) so this is the only export.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def safe_csv(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV with every text cell (and header) that could start a formula quoted."""
    cleaned = frame.copy()
    cleaned.columns = [neutralise_cell(str(c)) for c in cleaned.columns]
    for column in cleaned.columns:
        values = cleaned[column]
        if pd.api.types.is_float_dtype(values) and values.dropna().eq(values.dropna().round()).all():
            # whole numbers with a gap (a score not given) are floats in pandas: 4, not 4.0, in the file
            cleaned[column] = values.astype("Int64")
        elif not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            cleaned[column] = values.map(neutralise_cell)
    return cleaned.to_csv(index=False).encode("utf-8")


def download_button(frame: pd.DataFrame, *, file_name: str, key: str, label: str = "Download CSV") -> None:
    st.download_button(
        label,
        data=safe_csv(frame),
        file_name=file_name,
        mime="text/csv",
        key=f"csv_export.{key}",
        icon=":material/download:",
        on_click="ignore",
    )


def table(frame: pd.DataFrame, *, file_name: str, key: str, **dataframe_kwargs: Any) -> None:
    """A read-only table with its guarded CSV download underneath."""
    st.dataframe(frame, hide_index=True, **dataframe_kwargs)
    if not frame.empty:
        download_button(frame, file_name=file_name, key=key)
