"""Widgets and helpers shared by the pages; each owns the ``st.session_state`` keys named after it."""
