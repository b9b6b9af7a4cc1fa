"""The auditloop web app (``streamlit run app/streamlit_app.py``): log in, then the pages the role may open.

Every rerun: check the session's idle and absolute limits, start a session for a single sign-on
identity if there is one (``app.components.sso``), re-read the user (a deactivated account or a
changed role takes effect at once), give ``st.navigation`` only the user's pages, draw the sidebar, run
the page. Not logged in: the login page is the only page there is.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import services
from app import session as login_session
from app.components import guard, sso
from app.components.inert import escape_markdown
from app.views import PAGES, pages_for
from audit.auditlog import service as auditlog
from audit.errors import AuditloopError
from audit.org import repository as org_repo

# the favicon from this folder: a Material icon here would be fetched from fonts.gstatic.com by every
# browser on every page load, and an intranet without internet access must make no outside request
FAVICON = Path(__file__).parent / "assets" / "favicon.svg"
st.set_page_config(page_title="auditloop", page_icon=str(FAVICON), layout="wide")


def _log_out() -> None:
    user_id = login_session.user_id(st.session_state)
    if user_id is not None:
        with services.transaction() as session:
            user = org_repo.user_by_id(session, user_id)
            if user is not None:
                auditlog.record(session, actor=user, action="logout", entity_type="user", entity_id=user.id)
    login_session.end(st.session_state, notice=login_session.LOGGED_OUT_NOTICE)
    if sso.signed_in():
        st.logout()  # drop the provider's identity cookie too, or the next run would sign in again


def main() -> None:
    services.warm_up()
    try:
        services.engine()
    except AuditloopError as exc:
        st.error(escape_markdown(f"auditloop cannot start: {exc}", max_length=1000))
        st.stop()

    status = login_session.check(st.session_state)
    if status in ("idle_expired", "lifetime_expired") and sso.signed_in():
        st.logout()  # auditloop's limits end single sign-on sessions too
    user = guard.current_user()
    if user is None and sso.log_in_from_identity():
        user = guard.current_user()
    if user is None:
        # every page's address shows the login page, so that a bookmark (/fairness) opens after the login
        # (the page is chosen by its address: the same one, now the user's, if their role has it)
        login = st.Page("views/login.py", title="Log in", url_path="login", default=True)
        bookmarks = [st.Page("views/login.py", title="Log in", url_path=spec.url_path) for spec in PAGES]
        st.navigation([login, *bookmarks], position="hidden").run()
        return

    sections: dict[str, list[st.Page]] = {}
    for spec in pages_for(user):
        page = st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path)
        sections.setdefault(spec.section, []).append(page)
    if not sections:
        st.warning("Your role has no pages yet. Ask an administrator.")
        st.button("Log out", on_click=_log_out, key="shell.logout")
        return
    current = st.navigation(sections)

    with st.sidebar:
        st.caption("Signed in as")
        st.text(f"{user.display_name} ({user.username})")
        st.caption(f"Role: {user.role}")
        st.button("Log out", on_click=_log_out, key="shell.logout", icon=":material/logout:")
    st.session_state[guard.RUN_USER] = user
    try:
        current.run()
    finally:
        if guard.RUN_USER in st.session_state:
            del st.session_state[guard.RUN_USER]


main()
