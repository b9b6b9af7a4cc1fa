"""Turn the errors a user can act on into one line on the page instead of a stack trace."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import streamlit as st

from app.components.inert import escape_markdown
from audit.errors import AuditloopError


@dataclass
class Outcome:
    ok: bool = True
    message: str | None = None


@contextlib.contextmanager
def show_errors() -> Iterator[Outcome]:
    """``with show_errors() as outcome, unit_of_work() as uow: ...`` — an AuditloopError (validation,
    permission, conflict, not found) is shown with ``st.error`` and ``outcome.ok`` becomes False; the unit
    of work has already rolled back by then. Anything else is a bug and propagates."""
    outcome = Outcome()
    try:
        yield outcome
    except AuditloopError as exc:
        outcome.ok = False
        outcome.message = str(exc)
        # service messages quote user input (names, values): shown literally, never as Markdown
        st.error(escape_markdown(str(exc), max_length=1000), icon=":material/error:")


def flash(message: str) -> None:
    """A success message that survives the ``st.rerun()`` that usually follows an action."""
    st.session_state["feedback.flash"] = message


def show_flash() -> None:
    message = st.session_state.pop("feedback.flash", None)
    if message:
        st.toast(escape_markdown(message, max_length=300), icon=":material/check_circle:")


def forget_secrets(*keys: str) -> None:
    """Drop password fields' values from the session state at once (a cleared form only clears them in
    the browser, on the next interaction)."""
    for key in keys:
        if key in st.session_state:
            del st.session_state[key]
