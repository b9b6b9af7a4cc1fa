"""Auditor: today's queue, one answer at a time — rate it on the rubric's four 1–5 scales (keys 1–5,
Ctrl+Enter submits), say whether the sources were right, flag department bias, or skip with a reason."""

from __future__ import annotations

import time
import uuid

import streamlit as st

from app import services
from app import session as login_session
from app.components.feedback import show_errors
from app.components.guard import require_page
from app.components.inert import escape_markdown, show_text
from app.components.keyboard import rating_shortcuts, widget_key
from app.components.sources import show_sources
from audit.errors import AuditloopError
from audit.fixes import repository as fixes_repo
from audit.org import repository as org_repo
from audit.ratings import service as ratings_service
from audit.ratings.models import DIMENSIONS, SOURCES_CORRECT
from audit.ratings.rubric import BIAS_FLAG_WORDING, RUBRIC, SOURCES_CORRECT_WORDING
from audit.sampling import service as sampling_service

PREFIX = "rate_"
MESSAGE = "rate.message"  # (kind, text) shown once after a submit or skip
SKIP_REASONS = (
    "Needs knowledge I do not have",
    "Question or answer is unreadable",
    "Sources could not be opened",
    "Conflict of interest",
    "Other",
)


def _key(name: str, assignment_id: int) -> str:
    return widget_key(PREFIX, name, assignment_id)


def _forget(assignment_id: int) -> None:
    for name in ("idempotency", "shown_at"):
        st.session_state.pop(f"rate.{name}.{assignment_id}", None)


def _submit(assignment_id: int) -> None:
    state = st.session_state
    shown_at = state.get(f"rate.shown_at.{assignment_id}")
    try:
        with services.unit_of_work() as uow:
            ratings_service.submit_rating(
                uow.session,
                actor=uow.actor,
                assignment_id=assignment_id,
                **{d: state.get(_key(d, assignment_id)) for d in DIMENSIONS},
                sources_correct=state.get(_key("sources", assignment_id)),
                bias_flag=bool(state.get(_key("bias", assignment_id))),
                favoured_department=state.get(_key("favoured", assignment_id)),
                disfavoured_department=state.get(_key("disfavoured", assignment_id)),
                comment=state.get(_key("comment", assignment_id)) or None,
                suggested_correction=state.get(_key("correction", assignment_id)) or None,
                seconds_spent=int(time.time() - shown_at) if shown_at else None,
                idempotency_key=state.get(f"rate.idempotency.{assignment_id}"),
            )
    except AuditloopError as exc:
        state[MESSAGE] = ("error", str(exc))
        return
    state[MESSAGE] = ("saved", "Rating saved.")
    _forget(assignment_id)


def _skip(assignment_id: int) -> None:
    state = st.session_state
    reason = state.get(_key("skip_reason", assignment_id)) or ""
    details = (state.get(_key("skip_details", assignment_id)) or "").strip()
    try:
        with services.unit_of_work() as uow:
            ratings_service.skip_assignment(
                uow.session,
                actor=uow.actor,
                assignment_id=assignment_id,
                reason=f"{reason}: {details}" if details else reason,
            )
    except AuditloopError as exc:
        state[MESSAGE] = ("error", str(exc))
        return
    state[MESSAGE] = ("saved", "Item skipped.")
    _forget(assignment_id)


require_page("rate")
st.title("Rate answers")


@st.fragment
def rating_panel() -> None:
    """The item and its form. A submit or skip reruns only this fragment (the next item replaces
    the last), not the navigation and sidebar: the unit of work still checks the session and re-reads
    the user, and the services check the role, on every action."""
    message = st.session_state.pop(MESSAGE, None)
    if message and message[0] == "error":
        st.error(escape_markdown(message[1], max_length=1000), icon=":material/error:")
    elif message:
        st.toast(message[1], icon=":material/check_circle:")

    with show_errors() as loaded, services.unit_of_work() as uow:
        item = sampling_service.next_item(uow.session, actor=uow.actor)
        departments = [d.name for d in org_repo.departments(uow.session)]
        document_ids = [s.document_id for s in item.sources if s.document_id is not None] if item else []
        bodies = {i: d.body for i, d in fixes_repo.documents_by_id(uow.session, document_ids).items()}
    if not loaded.ok:
        if login_session.user_id(st.session_state) is None:
            st.rerun()  # the session ended (idle or lifetime limit): the whole app shows the login page
        return

    if item is None:
        st.success("Nothing left to rate. Thank you!", icon=":material/task_alt:")
        st.page_link("views/my_ratings.py", label="See or edit today's ratings", icon=":material/history:")
        return

    aid = item.assignment_id
    st.session_state.setdefault(f"rate.idempotency.{aid}", uuid.uuid4().hex)
    st.session_state.setdefault(f"rate.shown_at.{aid}", time.time())
    st.progress(
        item.progress.done / item.progress.total if item.progress.total else 0.0,
        text=f"Item {item.number} of {item.progress.total} · sample of {item.sample_date:%Y-%m-%d}",
    )

    content, rating = st.columns([9, 11], gap="medium")
    with content:
        st.caption(escape_markdown(f"Question, asked by {item.department} on {item.answered_at:%Y-%m-%d %H:%M} UTC"))
        with st.container(border=True, key="rate.question"):
            show_text(item.question)
        st.caption("Answer (shown exactly as the assistant wrote it)")
        with st.container(border=True, key="rate.answer"):
            show_text(item.answer_text)
        st.subheader("Cited sources")
        show_sources(item.sources, bodies)

    with rating:
        rating_shortcuts(
            prefix=PREFIX,
            dimensions=DIMENSIONS,
            sources_key="sources",
            sources_options=SOURCES_CORRECT,
            submit_key="submit",
        )
        st.caption("Keys 1–5 score the highlighted scale and move on · y / n / u for the sources · Ctrl+Enter submits")
        with st.form(f"rate.form.{aid}", border=True):
            for dimension in DIMENSIONS:
                scale = RUBRIC[dimension]
                scale_column, rubric_column = st.columns([1, 1], vertical_alignment="top")
                scale_column.segmented_control(
                    scale.label, [1, 2, 3, 4, 5], key=_key(dimension, aid), help=scale.question, width="stretch"
                )
                rubric_column.caption("  \n".join(f"**{level}** {text}" for level, text in scale.levels.items()))
            st.segmented_control(
                "Sources correct?",
                SOURCES_CORRECT,
                key=_key("sources", aid),
                help="  \n".join(f"**{k}**: {v}" for k, v in SOURCES_CORRECT_WORDING.items()),
            )
            st.checkbox("Flag department bias", key=_key("bias", aid), help=BIAS_FLAG_WORDING)
            favoured, disfavoured = st.columns(2)
            favoured.selectbox("Favoured department", departments, index=None, key=_key("favoured", aid))
            disfavoured.selectbox("Disfavoured department", departments, index=None, key=_key("disfavoured", aid))
            st.text_area("Comment", key=_key("comment", aid), max_chars=ratings_service.COMMENT_MAX, height=80)
            st.text_area(
                "Suggested correction",
                key=_key("correction", aid),
                max_chars=ratings_service.CORRECTION_MAX,
                height=100,
                help="The answer as it should have been, if you know it.",
            )
            st.form_submit_button(
                "Submit rating",
                type="primary",
                shortcut="Ctrl+Enter",
                key=_key("submit", aid),
                on_click=_submit,
                args=(aid,),
            )

        with st.expander("Skip this item"), st.form(f"rate.skip.{aid}", border=False):
            st.selectbox("Reason", SKIP_REASONS, key=_key("skip_reason", aid))
            st.text_input("Details (optional)", key=_key("skip_details", aid), max_chars=300)
            st.form_submit_button("Skip", key=_key("skip", aid), on_click=_skip, args=(aid,))


rating_panel()
