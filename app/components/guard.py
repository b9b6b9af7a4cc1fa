"""The check every page runs first: a logged-in, active user whose role may open the page.

Hiding a page from the menu is not security; this check refuses a page reached any other way, and the
services behind the page refuse again.
"""

from __future__ import annotations

import streamlit as st

from app import services
from app import session as login_session
from audit.org import repository as org_repo
from audit.org.models import User
from audit.permissions import Action, can

REFUSED = "You may not open this page."
# the user the entrypoint has just loaded and checked, for the page it runs next (one load per run)
RUN_USER = "guard.run_user"


def current_user() -> User | None:
    """The logged-in user as stored now (role and active flag re-read on every run), or None."""
    user_id = login_session.user_id(st.session_state)
    if user_id is None:
        return None
    with services.read_only() as session:
        user = org_repo.user_by_id(session, user_id)
    if user is None or not user.active:
        login_session.end(st.session_state, notice="Your account is no longer active.")
        return None
    return user


def require_page(action: Action) -> User:
    """Return the user if they may ``action``; otherwise show a refusal and stop the page."""
    user = st.session_state.get(RUN_USER)
    if user is None:  # the page runs without the entrypoint: check the session itself
        user = current_user() if login_session.check(st.session_state) == "active" else None
    if user is None:
        st.error("Please log in.")
        st.stop()
    if not can(user, action):
        st.error(REFUSED)
        st.stop()
    return user
