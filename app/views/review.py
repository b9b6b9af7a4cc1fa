"""SME: the review queue of the departments covered — filter, open an item with every rating and the
sources, claim it, confirm with a root cause and the corrected answer (diffed against the answer) or
dismiss; bulk-dismiss duplicates; one's own decisions so far. Leads see the queue read-only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import services
from app.components import csv_export
from app.components.feedback import flash, show_errors, show_flash
from app.components.guard import require_page
from app.components.inert import escape_markdown, show_diff, show_text
from app.components.sources import show_sources
from audit.fixes import repository as fixes_repo
from audit.org import repository as org_repo
from audit.permissions import can
from audit.ratings.models import DIMENSIONS
from audit.ratings.rubric import RUBRIC
from audit.review import service as review_service
from audit.review.models import CONTENT_ROOT_CAUSES, REVIEW_REASONS, ROOT_CAUSES

user = require_page("view_reviews")
may_decide = can(user, "review")
st.title("Review queue")
show_flash()

covered = [d.name for d in user.departments] if user.role == "sme" else None
if covered is not None and not covered:
    st.warning("You cover no department yet: ask an administrator to assign yours.")
    st.stop()

if may_decide:
    with st.expander("My decisions"):
        mine: list[review_service.MyDecision] = []
        with show_errors(), services.reading() as uow:
            mine = review_service.my_decisions(uow.session, actor=uow.actor)
        if not mine:
            st.caption("No decision yet.")
        else:
            decisions_frame = pd.DataFrame(
                [
                    {
                        "item": d.item_id,
                        "decided at (UTC)": d.decided_at,
                        "decision": d.decision,
                        "root cause": (d.root_cause or "").replace("_", " "),
                        "department": d.department,
                        "question": d.question,
                        "corrected answer": d.corrected_answer,
                        "note": d.note,
                    }
                    for d in mine
                ]
            )
            csv_export.table(decisions_frame, file_name="my-decisions.csv", key="my_decisions")

with services.read_only() as session:
    department_choices = covered if covered is not None else [d.name for d in org_repo.departments(session)]

reason_filter, department_filter, age_filter = st.columns([3, 2, 1])
reasons = reason_filter.multiselect(
    "Reasons", REVIEW_REASONS, format_func=lambda r: r.replace("_", " "), key="review.reasons"
)
department = department_filter.selectbox(
    "Department", department_choices, index=None, placeholder="all I can see", key="review.department"
)
max_age = age_filter.number_input("Max age (days)", min_value=0, value=0, key="review.max_age", help="0 = any age")

queue: list[review_service.QueueEntry] = []
with show_errors(), services.unit_of_work() as uow:
    queue = review_service.review_queue(
        uow.session,
        actor=uow.actor,
        reasons=reasons or None,
        department=department,
        max_age_days=int(max_age) or None,
        limit=review_service.QUEUE_SHOWN + 1,  # one more than shown: says whether the list is cut off
    )

if len(queue) > review_service.QUEUE_SHOWN:
    queue = queue[: review_service.QUEUE_SHOWN]
    st.caption(
        f"The oldest {review_service.QUEUE_SHOWN} open or claimed items; more are waiting. Narrow the list with the filters "
        "above, or see all with `auditloop review list --offset`."
    )
else:
    st.caption(f"{len(queue)} open or claimed items, oldest first")
if not queue:
    unfiltered = 0
    if reasons or department is not None or max_age:
        with show_errors(), services.reading() as uow:
            unfiltered = len(review_service.review_queue(uow.session, actor=uow.actor))
    if unfiltered:
        st.info(f"Nothing matches these filters; {unfiltered} open or claimed items without them.")
    else:
        st.info("The queue is empty: nothing to review.", icon=":material/task_alt:")
    st.stop()

queue_frame = pd.DataFrame(
    [
        {
            "item": e.item_id,
            "department": e.department,
            "reasons": ", ".join(r.replace("_", " ") for r in e.reasons),
            "status": e.status,
            "claimed by": e.claimed_by or "",
            "age (days)": round(e.age_days, 1),
            "question": e.question,
        }
        for e in queue
    ]
)
overview, bulk = st.tabs(["Queue", "Bulk dismiss"])
with overview:
    csv_export.table(queue_frame, file_name="review-queue.csv", key="review_queue")

with bulk:
    if not may_decide:
        st.caption("Only SMEs decide review items.")
    else:
        with st.form("review.bulk", border=False):
            st.caption("Tick the duplicates to dismiss together with one note.")
            edited = st.data_editor(
                queue_frame.assign(dismiss=False)[["dismiss", "item", "department", "reasons", "question"]],
                hide_index=True,
                disabled=["item", "department", "reasons", "question"],
                column_config={"dismiss": st.column_config.CheckboxColumn("Dismiss", default=False)},
                key="review.bulk_editor",
            )
            bulk_note = st.text_input("Why these are dismissed", key="review.bulk_note", max_chars=500)
            if st.form_submit_button("Dismiss the ticked items"):
                ticked = [int(i) for i in edited.loc[edited["dismiss"], "item"]]
                if not ticked:
                    st.error("Tick at least one item.")
                else:
                    with show_errors() as outcome, services.unit_of_work() as uow:
                        result = review_service.bulk_dismiss(
                            uow.session, actor=uow.actor, item_ids=ticked, note=bulk_note
                        )
                    if outcome.ok:
                        conflicts = (
                            f"; {len(result.conflicts)} already decided by someone else" if result.conflicts else ""
                        )
                        flash(f"Dismissed {len(result.dismissed)} items{conflicts}.")
                        st.rerun()

st.divider()
entry = st.selectbox(
    "Open an item",
    queue,
    format_func=lambda e: f"#{e.item_id} · {e.department} · {', '.join(e.reasons)} · {e.question[:70]}",
    key="review.item",
)
assert entry is not None

with show_errors() as loaded, services.unit_of_work() as uow:
    detail = review_service.review_item_detail(uow.session, actor=uow.actor, item_id=entry.item_id)
    document_ids = [s.document_id for s in detail.sources if s.document_id is not None]
    bodies = {i: d.body for i, d in fixes_repo.documents_by_id(uow.session, document_ids).items()}
if not loaded.ok:
    st.stop()

st.subheader(f"Item {detail.item_id}")
st.caption(
    escape_markdown(
        f"{detail.department} · {', '.join(detail.reasons)} · {detail.status}"
        + (f" by {detail.claimed_by}" if detail.claimed_by else "")
        + f" · answered {detail.answered_at:%Y-%m-%d %H:%M} UTC"
        + (f" · confidence {detail.confidence:.2f}" if detail.confidence is not None else ""),
        max_length=400,
    )
)
question_column, answer_column = st.columns(2)
with question_column:
    show_text(detail.question, caption="Question")
with answer_column:
    show_text(detail.answer_text, caption="Answer")

ratings_tab, sources_tab, gold_tab = st.tabs([f"Ratings ({len(detail.ratings)})", "Sources", "Gold"])
with ratings_tab:
    ratings_frame = pd.DataFrame(
        [
            {
                "auditor": r.auditor,
                **{RUBRIC[d].label: getattr(r, d) for d in DIMENSIONS},
                "sources correct": r.sources_correct,
                "bias flag": r.bias_flag,
                "favoured": r.favoured_department,
                "disfavoured": r.disfavoured_department,
                "comment": r.comment,
                "suggested correction": r.suggested_correction,
                "origin": r.origin,
            }
            for r in detail.ratings
        ]
    )
    csv_export.table(ratings_frame, file_name=f"review-{detail.item_id}-ratings.csv", key="review_ratings")
with sources_tab:
    show_sources(detail.sources, bodies)
with gold_tab:
    if detail.gold is None:
        st.caption("Not a gold item.")
    else:
        st.caption(
            "Expected scores: " + ", ".join(f"{RUBRIC[d].label} {v}" for d, v in detail.gold.expected.items() if v)
        )
        show_text(detail.gold.reference_answer, caption="Reference answer")

if detail.decision is not None:
    decision = detail.decision
    st.info(
        escape_markdown(
            f"Decided: {decision.decision} by {decision.sme} at {decision.decided_at:%Y-%m-%d %H:%M} UTC"
            + (f" · root cause {decision.root_cause}" if decision.root_cause else ""),
            max_length=300,
        )
    )
    if decision.corrected_answer:
        show_diff(detail.answer_text, decision.corrected_answer)
    st.stop()

if not may_decide:
    st.caption("Only SMEs of this department decide it.")
    st.stop()

st.subheader("Decision")
# a claim tells the other SMEs of the department that someone is on it (released, it is open again)
claimed_by_me = detail.status == "claimed" and detail.claimed_by == user.username
if st.button(
    "Release" if claimed_by_me else "Claim",
    key=f"review.claim.{detail.item_id}",
    icon=":material/lock_open:" if claimed_by_me else ":material/lock:",
    help="Give the item back to the queue." if claimed_by_me else "Show the other SMEs that you are on it.",
):
    with show_errors() as outcome, services.unit_of_work() as uow:
        change = review_service.release if claimed_by_me else review_service.claim
        change(uow.session, actor=uow.actor, item_id=detail.item_id)
    if outcome.ok:
        flash(f"Item {detail.item_id} {'released' if claimed_by_me else 'claimed'}.")
        st.rerun()
suggested = next((r.suggested_correction for r in detail.ratings if r.suggested_correction), None)
corrected_key = f"review.corrected.{detail.item_id}"
st.session_state.setdefault(corrected_key, suggested or detail.answer_text)
confirm_column, dismiss_column = st.columns([3, 2], gap="large")
with confirm_column:
    root_cause = st.selectbox(
        "Root cause",
        ROOT_CAUSES,
        index=None,  # chosen by the SME, never a default that a click on Confirm would store
        placeholder="Choose the root cause",
        format_func=lambda c: c.replace("_", " "),
        key=f"review.root_cause.{detail.item_id}",
        help="Wrong training data, an outdated source and a hallucination need the corrected answer, "
        "written as the answer should have been (the model's answer itself is refused).",
    )
    corrected = st.text_area(
        "Corrected answer",
        key=corrected_key,
        height=160,
        max_chars=review_service.CORRECTED_ANSWER_MAX,
        help="Prefilled with an auditor's suggested correction when there is one. Ctrl+Enter updates the diff.",
    )
    st.caption("Difference between the answer and your correction")
    show_diff(detail.answer_text, corrected)
    source_documents = {s.document_id: s for s in detail.sources if s.document_id is not None}
    correct_document = st.selectbox(
        "The document that holds the right answer (optional)",
        list(source_documents),
        index=None,
        format_func=lambda i: f"{source_documents[i].title or i} (v{source_documents[i].version})",
        key=f"review.document.{detail.item_id}",
    )
    confirm_note = st.text_input("Note (optional)", key=f"review.confirm_note.{detail.item_id}", max_chars=500)
    confirm_clicked = st.button("Confirm the problem", type="primary", key=f"review.confirm.{detail.item_id}")
    if confirm_clicked and root_cause is None:
        st.error("Choose the root cause first.")
    elif confirm_clicked and root_cause is not None:
        with show_errors() as outcome, services.unit_of_work() as uow:
            review_service.confirm(
                uow.session,
                actor=uow.actor,
                item_id=detail.item_id,
                root_cause=root_cause,
                corrected_answer=corrected
                if root_cause in CONTENT_ROOT_CAUSES or corrected != detail.answer_text
                else None,
                note=confirm_note or None,
                correct_document_id=correct_document,
                expected_row_version=detail.row_version,
            )
        if outcome.ok:
            flash(f"Item {detail.item_id} confirmed ({root_cause.replace('_', ' ')}).")
            st.rerun()
with dismiss_column:
    dismiss_note = st.text_area("Why the answer is fine", key=f"review.dismiss_note.{detail.item_id}", max_chars=500)
    if st.button("Dismiss", key=f"review.dismiss.{detail.item_id}"):
        with show_errors() as outcome, services.unit_of_work() as uow:
            review_service.dismiss(
                uow.session,
                actor=uow.actor,
                item_id=detail.item_id,
                note=dismiss_note or None,
                expected_row_version=detail.row_version,
            )
        if outcome.ok:
            flash(f"Item {detail.item_id} dismissed.")
            st.rerun()
