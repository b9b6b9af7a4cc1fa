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
from app.components.inert import show_text
from audit.org import repository as org_repo
from audit.ratings import service as ratings_service
from audit.ratings.models import DIMENSIONS, SOURCES_CORRECT
from audit.ratings.rubric import RUBRIC

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
    key="my_ratings.chosen",
)
if chosen is not None:
    show_text(chosen.question, caption="Question")
    if chosen.suggested_correction:
        show_text(chosen.suggested_correction, caption="Your suggested correction")
    with st.form(f"my_ratings.edit.{chosen.id}"):
        scores = {
            d: st.segmented_control(
                RUBRIC[d].label, [1, 2, 3, 4, 5], default=getattr(chosen, d), help=RUBRIC[d].question
            )
            for d in DIMENSIONS
        }
        sources_correct = st.segmented_control("Sources correct?", SOURCES_CORRECT, default=chosen.sources_correct)
        bias_flag = st.checkbox("Flag department bias", value=chosen.bias_flag)
        left, right = st.columns(2)
        favoured = left.selectbox(
            "Favoured department",
            departments,
            index=departments.index(chosen.favoured_department) if chosen.favoured_department in departments else None,
        )
        disfavoured = right.selectbox(
            "Disfavoured department",
            departments,
            index=departments.index(chosen.disfavoured_department)
            if chosen.disfavoured_department in departments
            else None,
        )
        comment = st.text_area("Comment", value=chosen.comment or "", max_chars=ratings_service.COMMENT_MAX)
        correction = st.text_area(
            "Suggested correction", value=chosen.suggested_correction or "", max_chars=ratings_service.CORRECTION_MAX
        )
        if st.form_submit_button("Save the edit", type="primary"):
            with show_errors() as outcome, services.unit_of_work() as uow:
                ratings_service.edit_rating(
                    uow.session,
                    actor=uow.actor,
                    rating_id=chosen.id,
                    **scores,
                    sources_correct=sources_correct,
                    bias_flag=bias_flag,
                    favoured_department=favoured,
                    disfavoured_department=disfavoured,
                    comment=comment or None,
                    suggested_correction=correction or None,
                    seconds_spent=chosen.seconds_spent,
                    # one key per rating edited: a double click stores one edit
                    idempotency_key=st.session_state.setdefault(
                        f"my_ratings.idempotency.{chosen.id}", uuid.uuid4().hex
                    ),
                )
            if outcome.ok:
                flash(f"Rating #{chosen.id} updated.")
                st.session_state.pop("my_ratings.chosen", None)
                st.rerun()
