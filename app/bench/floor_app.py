"""The browser floor: the least a Streamlit form round trip costs on this machine (no database, no
auth, no layout) — four 1–5 scales and a submit button that moves to the next item. Run by the bench
with ``streamlit run app/bench/floor_app.py``; its submit → next time is what auditloop's is compared to.
"""

from __future__ import annotations

import streamlit as st

DIMENSIONS = ("accuracy", "completeness", "relevance", "coherence")


def _submit() -> None:
    st.session_state["floor.item"] = st.session_state.get("floor.item", 1) + 1


item = st.session_state.get("floor.item", 1)
st.title("Floor form")
st.progress(0.5, text=f"Item {item} of 1000")
with st.form(f"floor.form.{item}"):
    for dimension in DIMENSIONS:
        st.segmented_control(dimension.title(), [1, 2, 3, 4, 5], key=f"rate_{dimension}_{item}")
    st.form_submit_button("Submit rating", type="primary", on_click=_submit)
