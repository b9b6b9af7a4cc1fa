"""Auditor: my own ratings of a day (blind: nobody else's), and editing today's — an edit writes a new
rating that supersedes the old one, so the history stays."""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import streamlit as st

from app import services
from app.components import csv_export
from app.components.feedback import flash, show_errors, show_flash
from app.components.guard import require_page
from app.components.inert import escape_markdown, show_text
from audit.errors import AuditloopError
from audit.org import repository as org_repo
from audit.ratings import service as ratings_service
from audit.ratings.models import DIMENSIONS, SOURCES_CORRECT
from audit.ratings.rubric import RUBRIC

CHOSEN = "my_ratings.chosen"
REFUSED = "my_ratings.refused"  # why the last edit was refused, shown once under the form


def _field(name: str, rating: ratings_service.RatingView) -> str:
    return f"my_ratings.{name}.{rating.id}"


def _save_edit(rating: ratings_service.RatingView) -> None:
    """The edit form's submit, as a callback: it may still set the rating list, which then shows nothing
    chosen (set, not dropped: a dropped key left the browser showing the edited rating's old values)."""
    state = st.session_state
    bias = bool(state.get(_field("bias", rating)))
    try:
        with services.unit_of_work() as uow:
            ratings_service.edit_rating(
                uow.session,
                actor=uow.actor,
                rating_id=rating.id,
                **{d: state.get(_field("score_" + d, rating)) for d in DIMENSIONS},
                sources_correct=state.get(_field("sources", rating)),
                bias_flag=bias,
                favoured_department=state.get(_field("favoured", rating)),
                disfavoured_department=state.get(_field("disfavoured", rating)),
                comment=state.get(_field("comment", rating)) or None,
                suggested_correction=state.get(_field("correction", rating)) or None,
                seconds_spent=rating.seconds_spent,
                # one key per rating edited: a double click stores one edit
                idempotency_key=state.setdefault(f"my_ratings.idempotency.{rating.id}", uuid.uuid4().hex),
            )
    except AuditloopError as exc:
        state[REFUSED] = str(exc)
        return
    flash(f"Rating #{rating.id} updated.")
    state[CHOSEN] = None


require_page("rate")
st.title("My ratings")
show_flash()

today = dt.datetime.now(dt.UTC).date()
day = st.date_input("Day (UTC)", value=today, max_value=today, key="my_ratings.day")

ratings: list[ratings_service.RatingView] = []
departments: list[str] = []
with show_errors(), services.unit_of_work() as uow:
    ratings = ratings_service.my_ratings(uow.session, actor=uow.actor, day=day)
    departments = [d.name for d in org_repo.departments(uow.session)]

frame = pd.DataFrame(
    [
        {
            "rating": r.id,
            "answer": r.answer_id,
            "question": r.question,
            "at (UTC)": r.created_at,
            **{RUBRIC[d].label: getattr(r, d) for d in DIMENSIONS},
            "sources correct": r.sources_correct,
            "bias flag": r.bias_flag,
            "favoured": r.favoured_department,
            "disfavoured": r.disfavoured_department,
            "comment": r.comment,
            "edited": r.supersedes_id is not None,
        }
        for r in ratings
    ]
)
if frame.empty:
    st.info("No ratings on this day.")
    st.stop()
csv_export.table(frame, file_name=f"my-ratings-{day}.csv", key="my_ratings")

if day != today:
    st.caption("Only today's ratings can be edited.")
    st.stop()

st.subheader("Edit a rating")
chosen = st.selectbox(
    "Rating",
    ratings,
    format_func=lambda r: (
        f"#{r.id} · "
        + " ".join(f"{RUBRIC[d].label[:3]} {getattr(r, d) or '–'}" for d in DIMENSIONS)
        + f" · {' '.join((r.question or f'answer {r.answer_id}').split())[:80]}"
    ),
    index=None,
    key=CHOSEN,
)
if chosen is not None:
    show_text(chosen.question, caption="Question")
    if chosen.suggested_correction:
        show_text(chosen.suggested_correction, caption="Your suggested correction")
    with st.form(f"my_ratings.edit.{chosen.id}"):
        for d in DIMENSIONS:
            st.segmented_control(
                RUBRIC[d].label,
                [1, 2, 3, 4, 5],
                default=getattr(chosen, d),
                help=RUBRIC[d].question,
                key=_field("score_" + d, chosen),
            )
        st.segmented_control(
            "Sources correct?", SOURCES_CORRECT, default=chosen.sources_correct, key=_field("sources", chosen)
        )
        st.checkbox("Flag department bias", value=chosen.bias_flag, key=_field("bias", chosen))
        left, right = st.columns(2)
        left.selectbox(
            "Favoured department",
            departments,
            index=departments.index(chosen.favoured_department) if chosen.favoured_department in departments else None,
            key=_field("favoured", chosen),
        )
        right.selectbox(
            "Disfavoured department",
            departments,
            index=departments.index(chosen.disfavoured_department)
            if chosen.disfavoured_department in departments
            else None,
            key=_field("disfavoured", chosen),
        )
        st.text_area(
            "Comment", value=chosen.comment or "", max_chars=ratings_service.COMMENT_MAX, key=_field("comment", chosen)
        )
        st.text_area(
            "Suggested correction",
            value=chosen.suggested_correction or "",
            max_chars=ratings_service.CORRECTION_MAX,
            key=_field("correction", chosen),
        )
        st.form_submit_button("Save the edit", type="primary", on_click=_save_edit, args=(chosen,))
    refused = st.session_state.pop(REFUSED, None)
    if refused:
        st.error(escape_markdown(refused, max_length=1000), icon=":material/error:")
