"""The browser floor: the least a Streamlit form round trip costs on this machine (no auth, no layout) —
one SQLite read (the item's question, by primary key), four 1–5 scales and a submit button that moves to
the next item. Run by the bench with ``streamlit run app/bench/floor_app.py`` against the bench's SQLite
database (``AUDITLOOP_DATABASE_URL``); its submit → next time is what auditloop's is compared to.
"""

from __future__ import annotations

import os
import sqlite3

import streamlit as st

DIMENSIONS = ("accuracy", "completeness", "relevance", "coherence")


@st.cache_resource
def _connection() -> sqlite3.Connection:
    url = os.environ.get("AUDITLOOP_DATABASE_URL", "")
    if not url.startswith("sqlite:///"):
        raise RuntimeError(f"the floor app reads a SQLite database: AUDITLOOP_DATABASE_URL is {url!r}")
    path = url.removeprefix("sqlite:///")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


def _submit() -> None:
    st.session_state["floor.item"] = st.session_state.get("floor.item", 1) + 1


item = st.session_state.get("floor.item", 1)
row = _connection().execute("SELECT question FROM answers WHERE id = ?", (item,)).fetchone()
st.title("Floor form")
st.progress(0.5, text=f"Item {item} of 1000")
st.text(row[0] if row else "(no such answer)")
with st.form(f"floor.form.{item}"):
    for dimension in DIMENSIONS:
        st.segmented_control(dimension.title(), [1, 2, 3, 4, 5], key=f"rate_{dimension}_{item}")
    st.form_submit_button("Submit rating", type="primary", on_click=_submit)
