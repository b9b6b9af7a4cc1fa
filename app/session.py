"""The login session kept in ``st.session_state``: who is logged in, since when, and when it ends.

A session ends after ``idle_timeout_minutes`` without any interaction, or ``session_lifetime_hours``
after the login whatever happens (the "auth" policy, ``audit.org.policy.AuthPolicy``; 30 minutes and 12
hours by default). The functions take the state mapping as an argument so that they are plain Python,
testable without a browser.
Streamlit keeps ``st.session_state`` on the server, per browser tab: nothing here reaches a cookie.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any, Literal

# the policy lives with the lockout it also sets (audit.org.service.authenticate); named here for the pages
from audit.org.policy import AuthPolicy as AuthPolicy

USER_ID = "session.user_id"
STARTED_AT = "session.started_at"
LAST_SEEN_AT = "session.last_seen_at"
IDLE_LIMIT_S = "session.idle_limit_s"
LIFETIME_S = "session.lifetime_s"
NOTICE = "session.notice"  # why the last session ended, shown once on the login page

State = MutableMapping[str, Any]
Status = Literal["anonymous", "active", "idle_expired", "lifetime_expired"]

IDLE_EXPIRED_NOTICE = "Your session ended after {minutes} without activity. Please log in again."
LIFETIME_EXPIRED_NOTICE = "Your session reached its {hours}-hour limit. Please log in again."
LOGGED_OUT_NOTICE = "You have logged out."


def start(state: State, *, user_id: int, policy: AuthPolicy, now: float | None = None) -> None:
    """Log ``user_id`` in: forget everything an earlier session (or the login form) left, start both clocks."""
    now = time.time() if now is None else now
    for key in list(state.keys()):
        del state[key]
    state[USER_ID] = user_id
    state[STARTED_AT] = now
    state[LAST_SEEN_AT] = now
    state[IDLE_LIMIT_S] = policy.idle_timeout_minutes * 60
    state[LIFETIME_S] = policy.session_lifetime_hours * 3600


def end(state: State, *, notice: str | None = None) -> None:
    """Log out: drop every key of the session (pages' own keys too, so nothing leaks to the next user)."""
    for key in list(state.keys()):
        if key != NOTICE:
            del state[key]
    if notice:
        state[NOTICE] = notice
    else:
        _discard(state, NOTICE)


def user_id(state: State) -> int | None:
    """The logged-in user's id, without touching the clocks (``check`` decides whether it is still valid)."""
    value = state.get(USER_ID)
    return int(value) if value is not None else None


def check(state: State, *, now: float | None = None) -> Status:
    """Expire the session if a limit has passed (ending it); otherwise record this interaction."""
    if state.get(USER_ID) is None:
        return "anonymous"
    now = time.time() if now is None else now
    idle_limit = float(state.get(IDLE_LIMIT_S, AuthPolicy.idle_timeout_minutes * 60))
    lifetime = float(state.get(LIFETIME_S, AuthPolicy.session_lifetime_hours * 3600))
    if now - float(state.get(STARTED_AT, 0.0)) >= lifetime:
        end(state, notice=LIFETIME_EXPIRED_NOTICE.format(hours=round(lifetime / 3600)))
        return "lifetime_expired"
    if now - float(state.get(LAST_SEEN_AT, 0.0)) >= idle_limit:
        end(state, notice=IDLE_EXPIRED_NOTICE.format(minutes=count(round(idle_limit / 60), "minute")))
        return "idle_expired"
    state[LAST_SEEN_AT] = now
    return "active"


def count(n: int, noun: str) -> str:
    """``1 minute``, ``2 minutes``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def pop_notice(state: State) -> str | None:
    notice = state.get(NOTICE)
    _discard(state, NOTICE)
    return notice


def _discard(state: State, key: str) -> None:
    # ``del`` after a membership test rather than ``pop``: AppTest's session-state view has no ``pop``
    if key in state:
        del state[key]
