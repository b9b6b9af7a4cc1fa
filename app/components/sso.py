"""Single sign-on through Streamlit's OIDC support (``st.login``), mapped to auditloop's own users.

Configured entirely in ``.streamlit/secrets.toml`` (``[auth]``: redirect_uri, cookie_secret,
client_id, client_secret, server_metadata_url); without it the login page offers passwords only.
The provider proves who someone is; auditloop decides what they may do: the claim named by
``AUDITLOOP_OIDC_USERNAME_CLAIM`` (default ``preferred_username``) must name an active user, whose
role and departments come from the database as for a password login. Nobody is created on the fly.

Streamlit keeps the identity in a cookie, so a reload or a new tab signs the user in again without a
prompt (a password session lives only as long as the tab's connection). auditloop's own idle and
absolute limits still apply: when one ends the session, the identity cookie is dropped as well
(``st.logout``) so that the next visit goes back through the provider.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import services
from app import session as login_session
from audit.org import service as org_service
from audit.policy import service as policy_service

REFUSED = "sso.refused"  # the identity this tab's provider login was refused for, with the message
LOGOUT_REQUESTED = "sso.logout"


def _claims() -> dict[str, Any]:
    try:
        return dict(st.user.to_dict())
    except Exception:  # no script run context (e.g. a bare import in a test): no identity
        return {}


def configured() -> bool:
    """True when the ``[auth]`` section exists (Streamlit then always sets ``is_logged_in``)."""
    return "is_logged_in" in _claims()


def signed_in() -> bool:
    return _claims().get("is_logged_in") is True


def log_in_from_identity() -> bool:
    """If the provider has signed someone in and no auditloop session runs, start one for the user the
    identity names. Returns True when a session was started. A refused identity is tried once per tab
    (the refusal is recorded in the audit log) and its message kept for the login page."""
    claims = _claims()
    if claims.get("is_logged_in") is not True:
        return False
    claim = services.settings().oidc_username_claim
    identity = str(claims.get(claim) or claims.get("sub") or "")
    refused = st.session_state.get(REFUSED)
    if refused is not None and refused[0] == identity:
        return False
    with services.transaction() as session:
        result = org_service.authenticate_identity(session, claims, claim=claim)
        policy = policy_service.load(session, "auth", login_session.AuthPolicy) if result.user is not None else None
    if result.user is None or policy is None:
        st.session_state[REFUSED] = (identity, result.message)
        return False
    login_session.start(st.session_state, user_id=result.user.id, policy=policy)
    return True


def refusal() -> str | None:
    refused = st.session_state.get(REFUSED)
    return refused[1] if refused is not None and signed_in() else None


def request_logout() -> None:
    """Ask the next run to drop the provider's identity cookie (``st.logout`` cannot run in a callback)."""
    st.session_state[LOGOUT_REQUESTED] = True


def logout_if_requested() -> None:
    if st.session_state.get(LOGOUT_REQUESTED):
        del st.session_state[LOGOUT_REQUESTED]
        if signed_in():
            st.logout()
