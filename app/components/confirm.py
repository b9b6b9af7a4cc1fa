"""A button that asks once more before an action that is hard to undo (approve, promote, deactivate)."""

from __future__ import annotations

import streamlit as st

from app.components.inert import escape_markdown


def confirmed(
    label: str, *, key: str, question: str, primary: bool = False, disabled_because: str | None = None
) -> bool:
    """Draw ``label``; after a click, ask ``question`` with Yes/Cancel. True on the run the user says yes.
    With ``disabled_because``, the button is drawn disabled, that reason as its hint."""
    pending = f"confirm.{key}.pending"
    if disabled_because is not None:
        st.session_state.pop(pending, None)
    if not st.session_state.get(pending):
        if st.button(
            label,
            key=f"confirm.{key}.ask",
            type="primary" if primary else "secondary",
            disabled=disabled_because is not None,
            help=disabled_because,
        ):
            st.session_state[pending] = True
            st.rerun()
        return False
    st.warning(escape_markdown(question, max_length=500), icon=":material/help:")
    yes, cancel = st.columns(2)
    if yes.button(f"Yes, {label[:1].lower()}{label[1:]}", key=f"confirm.{key}.yes", type="primary"):
        del st.session_state[pending]
        return True
    if cancel.button("Cancel", key=f"confirm.{key}.cancel"):
        del st.session_state[pending]
        st.rerun()
    return False
