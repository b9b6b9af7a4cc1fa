"""The floor for the submit-latency measurement: one form, one submit, one SQLite read per item — the
least any Streamlit rating page does between a submit and the next item. Used by
``python -m tests.app.browser bench`` next to the real rating page; not part of the product."""

from __future__ import annotations

import os
import sqlite3

import streamlit as st

DATABASE = os.environ["AUDITLOOP_FLOOR_DB"]

number = st.session_state.setdefault("floor.item", 1)


def _submit() -> None:
    st.session_state["floor.item"] += 1


with sqlite3.connect(DATABASE) as connection:
    row = connection.execute("SELECT question FROM answers WHERE id = ?", (number,)).fetchone()

st.text(f"Item {number} of many")
st.text(row[0] if row else "(no such answer)")
with st.form(f"floor.form.{number}"):
    st.segmented_control("Score", [1, 2, 3, 4, 5], key=f"floor.score.{number}")
    st.form_submit_button("Submit", shortcut="Ctrl+Enter", on_click=_submit)
