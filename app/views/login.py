"""Log in with a username and password (argon2id; wrong passwords in a row lock the account, as the auth
policy sets it: five for 15 minutes by default)."""

from __future__ import annotations

import streamlit as st

from app import services
from app import session as login_session
from app.components import sso
from app.components.feedback import forget_secrets
from app.components.inert import escape_markdown
from audit.org import service as org_service
from audit.policy import service as policy_service

st.title("auditloop")
st.caption("Human-in-the-loop evaluation and bias audit of the internal assistant")

notice = login_session.pop_notice(st.session_state)
if notice:
    st.info(notice)

if sso.configured():
    refused = sso.refusal()
    if refused is not None:
        st.error(escape_markdown(refused, max_length=500))
        st.button("Sign out of single sign-on", on_click=st.logout, key="login.sso_logout")
    else:
        st.button("Log in with single sign-on", on_click=st.login, type="primary", key="login.sso")
    st.caption("or with an auditloop password")

# clear_on_submit: the password must not stay in the session state after the attempt
with st.form("login.form", clear_on_submit=True, enter_to_submit=True):
    username = st.text_input("Username", key="login.username", autocomplete="username", max_chars=64)
    password = st.text_input(
        "Password", key="login.password", type="password", autocomplete="current-password", max_chars=256
    )
    submitted = st.form_submit_button("Log in", type="primary")

if services.settings().demo_mode:
    st.caption(
        escape_markdown(f"Demo accounts and their passwords: {services.settings().credentials_file}", max_length=500)
    )

if submitted:
    forget_secrets("login.password")
    # the unit of work commits the failed-attempt counter too: a refused login is still recorded
    with services.transaction() as session:
        result = org_service.authenticate(session, username, password)
        policy = policy_service.load(session, "auth", login_session.AuthPolicy) if result.ok else None
    if result.user is not None and policy is not None:
        login_session.start(st.session_state, user_id=result.user.id, policy=policy)
        st.rerun()
    else:
        st.error(result.message)
