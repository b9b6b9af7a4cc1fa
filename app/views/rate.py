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
from app.components.inert import INERT_STYLE, escape_html, escape_markdown, text_html
from app.components.keyboard import rating_shortcuts, widget_key
from app.components.sources import FULL_TEXT_CHARS, has_long_text, sources_html
from audit.errors import AuditloopError
from audit.fixes import repository as fixes_repo
from audit.org import repository as org_repo
from audit.ratings import service as ratings_service
from audit.ratings.models import DIMENSIONS, SOURCES_CORRECT
from audit.ratings.rubric import BIAS_FLAG_WORDING, RUBRIC, SOURCES_CORRECT_WORDING
from audit.sampling import service as sampling_service

PREFIX = "rate_"
MESSAGE = "rate.message"  # (kind, text) shown once after a submit or skip
DEPARTMENTS = "rate.departments"  # the department names for the bias flag, read once per page run
ITEM_ATTRIBUTE = "data-rate-item"  # on the item's HTML block: the assignment id, for the key handler
SKIP_REASONS = (
    "Needs knowledge I do not have",
    "Question or answer is unreadable",
    "Sources could not be opened",
    "Conflict of interest",
    "Other",
)


# Each widget keeps its key from item to item (the submit button too; the item block names the item): the browser
# then updates the widgets it has in place, where new keys made it build every widget anew on each
# submit (most of the time from submit to next item, in Chromium's profile). What a new key gave for
# free, ``_clear`` does: after a submit or skip, every field goes back to empty.
FIELDS = {
    **dict.fromkeys(DIMENSIONS),
    "sources": None,
    "bias": False,
    "notes": False,
    "skipping": False,
    "favoured": None,
    "disfavoured": None,
    "comment": "",
    "correction": "",
    "skip_reason": SKIP_REASONS[0],
    "skip_details": "",
}


SCALE_WIDTH_PX = 230  # five segments and the label; the rubric's wording takes the rest of the row
# The form's block as a two-column grid: the four scales one under the other in the first column, the
# rubric's wording (one block, after the scales) in the second, each scale's wording on that scale's row
# (a subgrid of the same rows); every other field spans both columns below. One element for the
# wording and no row block per scale: fewer elements for the browser to update on each submit. Plain
# child selectors, no :has(). Only the rating page has this style, and it has one form.
_FORM_BLOCK = '[data-testid="stForm"] > [data-testid="stVerticalBlock"]'
_SCALES = [f"{_FORM_BLOCK} > .st-key-{widget_key(PREFIX, d)}" for d in DIMENSIONS]
_RUBRIC = f"{_SCALES[-1]} + *"
RUBRIC_STYLE = (
    "<style>"
    f"{_FORM_BLOCK} {{ display: grid; grid-template-columns: {SCALE_WIDTH_PX}px minmax(0, 1fr); "
    "column-gap: 1rem; align-items: start; }"
    f"{_FORM_BLOCK} > * {{ grid-column: 1 / -1; }}"
    + "".join(f"{scale} {{ grid-column: 1; grid-row: {row}; }}" for row, scale in enumerate(_SCALES, 1))
    + f"{_RUBRIC} {{ grid-column: 2; grid-row: 1 / span {len(DIMENSIONS)}; display: grid; "
    "grid-template-rows: subgrid; align-self: stretch; }"
    f"{_RUBRIC} > * {{ display: contents; }}"
    ".al-rubric { margin: 0; }"
    "</style>"
)
# the rubric's wording for the scales, as inert HTML (ours, escaped all the same): a block per scale
RUBRIC_HTML = (
    INERT_STYLE
    + RUBRIC_STYLE
    + "".join(
        '<div class="al-caption al-rubric">'
        + "<br>".join(f"<b>{level}</b> {escape_html(text)}" for level, text in RUBRIC[dimension].levels.items())
        + "</div>"
        for dimension in DIMENSIONS
    )
)


def _key(name: str) -> str:
    return widget_key(PREFIX, name)


def _clear(assignment_id: int) -> None:
    """Forget the item's clock and idempotency key, and empty the form for the next item.

    Only the fields that hold something are set (the submit or skip sent every field of the form, so
    the server knows them all): a widget left as it was is sent unchanged, and the browser keeps it."""
    state = st.session_state
    for name in ("idempotency", "shown_at", "partial"):
        state.pop(f"rate.{name}.{assignment_id}", None)
    for name, empty in FIELDS.items():
        if state.get(_key(name), empty) != empty:
            state[_key(name)] = empty


def _submit(assignment_id: int) -> None:
    state = st.session_state
    given = sum(state.get(_key(d)) is not None for d in DIMENSIONS)
    if 0 < given < len(DIMENSIONS) and not state.get(f"rate.partial.{assignment_id}"):
        # one scale pressed and Ctrl+Enter a moment too early: asked once, a second submit sends it as it is
        state[f"rate.partial.{assignment_id}"] = True
        state[MESSAGE] = (
            "warning",
            f"Only {given} of {len(DIMENSIONS)} scales are scored: submit again to send the rating as it is.",
        )
        return
    shown_at = state.get(f"rate.shown_at.{assignment_id}")
    bias, notes = bool(state.get(_key("bias"))), bool(state.get(_key("notes")))
    try:
        with services.unit_of_work() as uow:
            ratings_service.submit_rating(
                uow.session,
                actor=uow.actor,
                assignment_id=assignment_id,
                **{d: state.get(_key(d)) for d in DIMENSIONS},
                sources_correct=state.get(_key("sources")),
                bias_flag=bias,
                # what the page shows is what is sent: fields hidden again by their switch are left out
                favoured_department=state.get(_key("favoured")) if bias else None,
                disfavoured_department=state.get(_key("disfavoured")) if bias else None,
                comment=(state.get(_key("comment")) or None) if notes else None,
                suggested_correction=(state.get(_key("correction")) or None) if notes else None,
                seconds_spent=int(time.time() - shown_at) if shown_at else None,
                idempotency_key=state.get(f"rate.idempotency.{assignment_id}"),
            )
    except AuditloopError as exc:
        state[MESSAGE] = ("error", str(exc))
        return
    state[MESSAGE] = ("saved", "Rating saved.")
    _clear(assignment_id)


def _skip(assignment_id: int) -> None:
    state = st.session_state
    reason = state.get(_key("skip_reason")) or ""
    details = (state.get(_key("skip_details")) or "").strip()
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
    _clear(assignment_id)


def _nothing_to_rate() -> None:
    """Why the queue is empty, in the auditor's words (one more query, only when there is no item)."""
    with show_errors() as loaded, services.reading() as uow:
        state = sampling_service.queue_state(uow.session, actor=uow.actor)
    if not loaded.ok:
        return
    if not state.sample_drawn:
        st.info(
            f"No sample has been drawn for today ({state.today:%Y-%m-%d}) yet, so there is nothing to rate. "
            "A lead or an administrator draws it (Fix pipeline page).",
            icon=":material/event_busy:",
        )
    elif state.assigned == 0:
        st.info(
            f"Today's sample ({state.today:%Y-%m-%d}) has nothing assigned to you. A lead or an administrator "
            "can assign its open slots (Fix pipeline page).",
            icon=":material/person_off:",
        )
    else:
        st.success(
            f"Nothing left to rate: all {state.assigned} of your items in today's sample are done. Thank you!",
            icon=":material/task_alt:",
        )
        st.page_link("views/my_ratings.py", label="See or edit today's ratings", icon=":material/history:")


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
    elif message and message[0] == "warning":
        st.warning(message[1], icon=":material/help:")

    with show_errors() as loaded, services.unit_of_work() as uow:
        item = sampling_service.next_item(uow.session, actor=uow.actor)
        departments = st.session_state.get(DEPARTMENTS)
        if departments is None:  # kept for the fragment's reruns until the next full run
            departments = st.session_state[DEPARTMENTS] = [d.name for d in org_repo.departments(uow.session)]
        document_ids = [s.document_id for s in item.sources if s.document_id is not None] if item else []
        bodies = {i: d.body for i, d in fixes_repo.documents_by_id(uow.session, document_ids).items()}
    if not loaded.ok:
        if login_session.user_id(st.session_state) is None:
            st.rerun()  # the session ended (idle or lifetime limit): the whole app shows the login page
        return

    if item is None:
        _nothing_to_rate()
        return

    aid = item.assignment_id
    st.session_state.setdefault(f"rate.idempotency.{aid}", uuid.uuid4().hex)
    st.session_state.setdefault(f"rate.shown_at.{aid}", time.time())
    st.progress(
        item.progress.done / item.progress.total if item.progress.total else 0.0,
        text=f"Item {item.number} of {item.progress.total} · sample of {item.sample_date:%Y-%m-%d}"
        + (f" · {message[1]}" if message and message[0] == "saved" else ""),
    )

    content, rating = st.columns([9, 11], gap="medium")
    # the item as one inert HTML block (escaped text only): one element for the browser to draw
    content.html(
        INERT_STYLE
        + f'<div {ITEM_ATTRIBUTE}="{aid}" class="al-caption">'
        + escape_html(f"Question, asked by {item.department} on {item.answered_at:%Y-%m-%d %H:%M} UTC")
        + f'</div><div class="al-box">{text_html(item.question)}</div>'
        + '<div class="al-caption">Answer (shown exactly as the assistant wrote it)</div>'
        + f'<div class="al-box">{text_html(item.answer_text)}</div>'
        + '<div class="al-heading">Cited sources</div>'
        + sources_html(
            item.sources,
            bodies,
            full_text_chars=None if st.session_state.get(_key("long_sources")) else FULL_TEXT_CHARS,
        )
    )
    if has_long_text(bodies):  # the rest of a long document only on demand (it reruns this panel)
        content.toggle("Long sources in full", key=_key("long_sources"))
    with rating:
        # The optional parts of a rating are drawn when their switch is on (a switch reruns this panel
        # once; what is already chosen in the form stays): most items get four scores and the sources,
        # and every field drawn costs each submit its share of the next item's time in the browser
        # (the two text areas, the two department boxes and the skip fields were ~40% of it). The
        # switches go back off for the next item.
        with st.container(horizontal=True, gap="small"):  # one row beside the item (help on the bias flag only)
            bias = st.toggle("Flag department bias", key=_key("bias"), help=BIAS_FLAG_WORDING)
            notes = st.toggle("Comment or correction", key=_key("notes"))
            skipping = st.toggle("Skip this item", key=_key("skipping"))
        with st.form("rate.form", border=True):
            for dimension in DIMENSIONS:
                scale = RUBRIC[dimension]
                st.segmented_control(
                    scale.label, [1, 2, 3, 4, 5], key=_key(dimension), help=scale.question, width=SCALE_WIDTH_PX
                )
            # the rubric's wording of all four scales as one block, each beside its scale (RUBRIC_STYLE)
            st.html(RUBRIC_HTML, width="stretch")
            st.segmented_control(
                "Sources correct?",
                SOURCES_CORRECT,
                key=_key("sources"),
                help="  \n".join(f"**{k}**: {v}" for k, v in SOURCES_CORRECT_WORDING.items()),
            )
            if bias:
                with st.container(horizontal=True, gap="small", wrap=False):
                    st.selectbox("Favoured department", departments, index=None, key=_key("favoured"))
                    st.selectbox("Disfavoured department", departments, index=None, key=_key("disfavoured"))
            if notes:
                st.text_area("Comment", key=_key("comment"), max_chars=ratings_service.COMMENT_MAX, height=80)
                st.text_area(
                    "Suggested correction",
                    key=_key("correction"),
                    max_chars=ratings_service.CORRECTION_MAX,
                    height=100,
                    help="The answer as it should have been, if you know it.",
                )
            st.form_submit_button(
                "Submit rating",
                type="primary",
                shortcut="Ctrl+Enter",
                key=_key("submit"),
                on_click=_submit,
                args=(aid,),
            )
            if skipping:
                # part of the same form: either button sends every field, so that the server knows them
                # all and ``_clear`` needs to touch only the fields that hold something. The first reason
                # until one is chosen (set through the state: _clear sets it back)
                st.session_state.setdefault(_key("skip_reason"), SKIP_REASONS[0])
                st.selectbox("Reason", SKIP_REASONS, index=None, key=_key("skip_reason"))
                st.text_input("Details (optional)", key=_key("skip_details"), max_chars=300)
                st.form_submit_button("Skip", key=_key("skip"), on_click=_skip, args=(aid,))


# the key handler and its hint stay put while the fragment replaces the item below them
rating_shortcuts(
    prefix=PREFIX,
    dimensions=DIMENSIONS,
    sources_key="sources",
    sources_options=SOURCES_CORRECT,
    submit_key="submit",
    item_attribute=ITEM_ATTRIBUTE,
)
st.caption("Keys 1–5 score the highlighted scale and move on · y / n / u for the sources · Ctrl+Enter submits")
st.session_state.pop(DEPARTMENTS, None)
rating_panel()
