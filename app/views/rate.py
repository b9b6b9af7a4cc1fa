"""Auditor: today's queue, one answer at a time — rate it on the rubric's four 1–5 scales (keys 1–5,
Ctrl+Enter submits), say whether the sources were right, flag department bias, or skip with a reason.
"Previous item" shows the items finished today again (a rating in the form to change, a skip to reopen),
"Undo" takes back the last submit or skip, and the skipped items are listed to reopen."""

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
REVISIT = "rate.revisit"  # the assignment shown instead of the queue's next item (Previous item, Undo, Reopen)
LAST = "rate.last"  # this tab's last submit or skip (its assignment id), while Undo may take it back
FULL_RERUN = "rate.full_rerun"  # the skipped list (outside the panel) changed: the panel reruns the page
NAV_DRAWN = "rate.nav_drawn"  # which buttons the navigation row (outside the panel) was drawn with
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
    "skip_details": "",
}
# The skip reason is given its first choice in the run that draws it (``setdefault``, so that the browser
# shows it: a value set while the box is not drawn reaches the server's state but not the box, which then
# showed no reason and sent none). Emptying the form drops it.
SKIP_REASON = "skip_reason"


SCALE_WIDTH_PX = 230  # five segments and the label; the rubric's wording takes the rest of the row
# The form's block as a two-column grid: the four scales one under the other in the first column, the
# rubric's wording (one block, after the scales) in the second, each scale's wording on that scale's row
# (a subgrid of the same rows); every other field spans both columns below. One element for the
# wording and no row block per scale: fewer elements for the browser to update on each submit. Plain
# child selectors, no :has(). Only the rating page has this style, and it has one form.
_FORM_BLOCK = '[data-testid="stForm"] > [data-testid="stVerticalBlock"]'
_SCALES = [f"{_FORM_BLOCK} > .st-key-{widget_key(PREFIX, d)}" for d in DIMENSIONS]
_RUBRIC = f"{_SCALES[-1]} + *"
SKIP_ROW = widget_key(PREFIX, "skiprow")  # the skip fields and their button, one row at the top of the form
_SUBMIT = f"{_FORM_BLOCK} > .st-key-{widget_key(PREFIX, 'submit')}"


def _form_style(first_scale_row: int) -> str:
    """The grid; the scales from ``first_scale_row`` on (2 when the skip row takes the first).

    The submit button sticks to the bottom of the window while the form is in view: beside a long
    answer, its sources and the rubric, it was 1,700 px down the page in a 1280×900 window. It keeps to
    the right, over the rubric's wording rather than the scales, and only the button takes clicks."""
    return (
        "<style>"
        f"{_FORM_BLOCK} {{ display: grid; grid-template-columns: {SCALE_WIDTH_PX}px minmax(0, 1fr); "
        "column-gap: 1rem; align-items: start; }"
        f"{_FORM_BLOCK} > * {{ grid-column: 1 / -1; }}"
        + "".join(
            f"{scale} {{ grid-column: 1; grid-row: {row}; }}" for row, scale in enumerate(_SCALES, first_scale_row)
        )
        + f"{_RUBRIC} {{ grid-column: 2; grid-row: {first_scale_row} / span {len(DIMENSIONS)}; display: grid; "
        "grid-template-rows: subgrid; align-self: stretch; }"
        f"{_RUBRIC} > * {{ display: contents; }}"
        f"{_FORM_BLOCK} > .st-key-{SKIP_ROW} {{ grid-row: 1; }}"
        f"{_SUBMIT} {{ position: sticky; bottom: 0.75rem; z-index: 3; justify-self: end; pointer-events: none; }}"
        f"{_SUBMIT} button {{ pointer-events: auto; box-shadow: 0 2px 10px rgb(0 0 0 / 0.3); }}"
        ".al-rubric { margin: 0; }"
        "</style>"
    )


# the rubric's wording for the scales, as inert HTML (ours, escaped all the same): a block per scale
_RUBRIC_WORDING = "".join(
    '<div class="al-caption al-rubric">'
    + "<br>".join(f"<b>{level}</b> {escape_html(text)}" for level, text in RUBRIC[dimension].levels.items())
    + "</div>"
    for dimension in DIMENSIONS
)
RUBRIC_HTML = INERT_STYLE + _form_style(1) + _RUBRIC_WORDING
RUBRIC_HTML_SKIPPING = INERT_STYLE + _form_style(2) + _RUBRIC_WORDING


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
    state.pop(_key(SKIP_REASON), None)


def _fill(rating: ratings_service.RatingView | None = None) -> None:
    """Every field of the form set (to ``rating``'s values, or empty), for an item shown by a button
    outside the form: what was chosen in the form but not sent is unknown here, so every field is set
    and the browser takes them all."""
    values = dict(FIELDS)
    if rating is not None:
        values.update(rating.scores)
        values.update(
            sources=rating.sources_correct,
            bias=rating.bias_flag,
            favoured=rating.favoured_department,
            disfavoured=rating.disfavoured_department,
            notes=bool(rating.comment or rating.suggested_correction),
            comment=rating.comment or "",
            correction=rating.suggested_correction or "",
        )
    for name, value in values.items():
        st.session_state[_key(name)] = value
    st.session_state.pop(_key(SKIP_REASON), None)


def _show(assignment_id: int | None, rating: ratings_service.RatingView | None = None) -> None:
    """Show this assignment instead of the queue's next item (None: the queue again), its rating in the form."""
    state = st.session_state
    previous = state.get(REVISIT)
    if previous is not None:
        for name in ("idempotency", "shown_at", "partial"):
            state.pop(f"rate.{name}.{previous}", None)
    if assignment_id is None:
        state.pop(REVISIT, None)
    else:
        state[REVISIT] = assignment_id
    _fill(rating)


def _form_values() -> dict[str, object]:
    """The rating as the form holds it; what the page shows is what is sent: fields hidden again by
    their switch are left out."""
    state = st.session_state
    bias, notes = bool(state.get(_key("bias"))), bool(state.get(_key("notes")))
    return {
        **{d: state.get(_key(d)) for d in DIMENSIONS},
        "sources_correct": state.get(_key("sources")),
        "bias_flag": bias,
        "favoured_department": state.get(_key("favoured")) if bias else None,
        "disfavoured_department": state.get(_key("disfavoured")) if bias else None,
        "comment": (state.get(_key("comment")) or None) if notes else None,
        "suggested_correction": (state.get(_key("correction")) or None) if notes else None,
    }


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
    try:
        with services.unit_of_work() as uow:
            ratings_service.submit_rating(
                uow.session,
                actor=uow.actor,
                assignment_id=assignment_id,
                **_form_values(),  # type: ignore[arg-type]
                seconds_spent=int(time.time() - shown_at) if shown_at else None,
                idempotency_key=state.get(f"rate.idempotency.{assignment_id}"),
            )
    except AuditloopError as exc:
        state[MESSAGE] = ("error", str(exc))
        return
    state[MESSAGE] = ("saved", "Rating saved.")
    state[LAST] = assignment_id
    state.pop(REVISIT, None)
    _clear(assignment_id)


def _save_change(assignment_id: int, rating_id: int, seconds_spent: int | None) -> None:
    """A rating shown again, changed: an edit, which supersedes it (the earlier one stays in the history)."""
    state = st.session_state
    try:
        with services.unit_of_work() as uow:
            ratings_service.edit_rating(
                uow.session,
                actor=uow.actor,
                rating_id=rating_id,
                **_form_values(),  # type: ignore[arg-type]
                seconds_spent=seconds_spent,
                # one key per rating changed: a double click stores one edit
                idempotency_key=state.setdefault(f"rate.change.{rating_id}", uuid.uuid4().hex),
            )
    except AuditloopError as exc:
        state[MESSAGE] = ("error", str(exc))
        return
    state[MESSAGE] = ("saved", "Rating changed; the earlier one stays in the history.")
    state.pop(LAST, None)
    state.pop(REVISIT, None)
    _clear(assignment_id)


def _skip(assignment_id: int) -> None:
    state = st.session_state
    reason = state.get(_key(SKIP_REASON)) or ""
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
    state[LAST] = assignment_id
    state[FULL_RERUN] = True  # the skipped list grew
    state.pop(REVISIT, None)
    _clear(assignment_id)


def _previous() -> None:
    """Show the item finished before the one shown again (the queue: the last one finished), its rating
    in the form."""
    state = st.session_state
    before = state.get(REVISIT)
    try:
        with services.unit_of_work() as uow:
            item = sampling_service.previous_item(uow.session, actor=uow.actor, before_assignment_id=before)
            mine = (
                ratings_service.ratings_for_answer(uow.session, actor=uow.actor, answer_id=item.answer_id)
                if item is not None and item.status == "submitted"
                else []
            )
    except AuditloopError as exc:
        state[MESSAGE] = ("error", str(exc))
        return
    if item is None:
        state[MESSAGE] = (
            "info",
            "No earlier item finished today (UTC): ratings can be changed on the day they were given.",
        )
        return
    _show(item.assignment_id, mine[0] if mine else None)


def _undo() -> None:
    """Take back this tab's last submit or skip: a skip reopens the item; a submit's rating comes back
    in the form (it stands until the changed one is saved)."""
    state = st.session_state
    assignment_id = state.pop(LAST, None)
    if assignment_id is None:  # taken back already (another click of a button drawn before)
        state[MESSAGE] = ("info", "Nothing to undo: your last submit or skip was taken back already.")
        return
    try:
        with services.unit_of_work() as uow:
            undone = ratings_service.undo_last(uow.session, actor=uow.actor, assignment_id=assignment_id)
    except AuditloopError as exc:
        state[MESSAGE] = ("error", str(exc))
        return
    if undone.action == "skip":
        state[MESSAGE] = ("saved", "Skip undone: the item is back to rate.")
        state[FULL_RERUN] = True  # the skipped list lost it
    else:
        state[MESSAGE] = (
            "saved",
            "Your rating is back in the form: change it and save. Until then it stands as it was.",
        )
    _show(undone.assignment_id, undone.rating)


def _reopen(assignment_id: int) -> None:
    """Put a skipped item back in the queue and show it, to be rated now."""
    state = st.session_state
    try:
        with services.unit_of_work() as uow:
            ratings_service.reopen_skipped(uow.session, actor=uow.actor, assignment_id=assignment_id)
    except AuditloopError as exc:
        state[MESSAGE] = ("error", str(exc))
        return
    state[MESSAGE] = ("saved", "Skipped item reopened.")
    state[FULL_RERUN] = True
    _show(assignment_id)


def _nothing_to_rate() -> None:
    """Why the queue is empty, in the auditor's words (one more query, only when there is no item)."""
    with show_errors() as loaded, services.reading() as uow:
        state = sampling_service.queue_state(uow.session, actor=uow.actor)
    if not loaded.ok:
        return
    today = f"{state.today:%Y-%m-%d}"
    if state.assigned:
        st.success(
            f"Nothing left to rate: all {state.assigned} of your items in today's sample are done. Thank you!",
            icon=":material/task_alt:",
        )
        st.page_link("views/my_ratings.py", label="See or edit today's ratings", icon=":material/history:")
        return
    if state.last_sample_date is not None:  # all of an earlier sample's items done, nothing of today's
        st.success(
            f"Nothing left to rate: all {state.last_sample_assigned} of your items in the sample of "
            f"{state.last_sample_date:%Y-%m-%d} are done. Thank you!",
            icon=":material/task_alt:",
        )
    if not state.sample_drawn:
        st.info(
            f"No sample has been drawn for today ({today}) yet, so there is nothing to rate. "
            "A lead or an administrator draws it (Fix pipeline page).",
            icon=":material/event_busy:",
        )
    else:
        st.info(
            f"Today's sample ({today}) has nothing assigned to you. A lead or an administrator "
            "can assign its open slots (Fix pipeline page).",
            icon=":material/person_off:",
        )


def _navigation_buttons() -> tuple[bool, bool]:
    """(an item is shown again, Undo is offered): what the navigation row draws, from this tab's state."""
    state = st.session_state
    revisiting = state.get(REVISIT) is not None
    return revisiting, not revisiting and state.get(LAST) is not None


def _navigation() -> None:
    """Previous item (before the item shown again, or the last one finished), Undo for this tab's last
    submit or skip while the queue is shown, and the way back to the queue from an item shown again.

    Drawn outside the panel, on full runs only: a submit reruns the panel alone, and redrawing this
    row with every item cost the submit → next item round trip ~8 ms in the browser (measured with
    the row removed). The buttons read the state when clicked, and the panel reruns the page when
    the row would change (the first Undo, an item shown again or left)."""
    revisiting, can_undo = st.session_state[NAV_DRAWN] = _navigation_buttons()
    with st.container(horizontal=True, gap="small"):
        st.button(
            "Previous item",
            key="rate.previous",
            icon=":material/arrow_back:",
            on_click=_previous,
            help="Show the item you finished before this one today, to change its rating or reopen it",
        )
        if can_undo:
            st.button(
                "Undo",
                key="rate.undo",
                icon=":material/undo:",
                on_click=_undo,
                help="Take back your last submit or skip: the item comes back, its rating in the form",
            )
        if revisiting:
            st.button(
                "Back to the queue", key="rate.queue", icon=":material/arrow_forward:", on_click=_show, args=(None,)
            )


def _rating_form(aid: int, *, departments: list[str], change: ratings_service.RatingView | None) -> None:
    """The switches and the form: a new rating of a pending item (Submit rating, or skip it), or
    ``change``, a rating shown again (Save the change; it supersedes the rating)."""
    # The optional parts of a rating are drawn when their switch is on (a switch reruns this panel
    # once; what is already chosen in the form stays): most items get four scores and the sources,
    # and every field drawn costs each submit its share of the next item's time in the browser
    # (the two text areas, the two department boxes and the skip fields were ~40% of it). The
    # switches go back off for the next item.
    with st.container(horizontal=True, gap="small"):  # one row beside the item (help on the bias flag only)
        bias = st.toggle("Flag department bias", key=_key("bias"), help=BIAS_FLAG_WORDING)
        notes = st.toggle("Comment or correction", key=_key("notes"))
        skipping = change is None and st.toggle("Skip this item", key=_key("skipping"))
    with st.form("rate.form", border=True):
        if skipping:
            # the skip fields and their button in one row at the top of the form, under their switch. Part
            # of the same form: either button sends every field, so that the server knows them all and
            # ``_clear`` needs to touch only the fields that hold something. The first reason until one is
            # chosen (set through the state, in this run: _clear drops it)
            st.session_state.setdefault(_key(SKIP_REASON), SKIP_REASONS[0])
            with st.container(horizontal=True, gap="small", vertical_alignment="bottom", key=SKIP_ROW):
                st.selectbox("Reason", SKIP_REASONS, index=None, key=_key(SKIP_REASON))
                st.text_input("Details (optional)", key=_key("skip_details"), max_chars=300)
                st.form_submit_button("Skip", key=_key("skip"), on_click=_skip, args=(aid,))
        for dimension in DIMENSIONS:
            scale = RUBRIC[dimension]
            st.segmented_control(
                scale.label, [1, 2, 3, 4, 5], key=_key(dimension), help=scale.question, width=SCALE_WIDTH_PX
            )
        # the rubric's wording of all four scales as one block, each beside its scale (_form_style)
        st.html(RUBRIC_HTML_SKIPPING if skipping else RUBRIC_HTML, width="stretch")
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
        if change is None:
            st.form_submit_button(
                "Submit rating",
                type="primary",
                shortcut="Ctrl+Enter",
                key=_key("submit"),
                on_click=_submit,
                args=(aid,),
            )
        else:
            st.form_submit_button(
                "Save the change",
                type="primary",
                shortcut="Ctrl+Enter",
                key=_key("submit"),
                on_click=_save_change,
                args=(aid, change.id, change.seconds_spent),
            )


def _finished_item(
    item: sampling_service.NextItem, rating: ratings_service.RatingView | None, changeable: bool
) -> None:
    """What the rating column shows for an item finished already, when it cannot take a changed rating."""
    if item.status == "skipped":
        st.info(
            "You skipped this item: " + escape_markdown(item.skip_reason or "", max_length=300),
            icon=":material/skip_next:",
        )
        st.button(
            "Reopen and rate it",
            key="rate.reopen_shown",
            type="primary",
            icon=":material/replay:",
            on_click=_reopen,
            args=(item.assignment_id,),
        )
    elif rating is not None and not changeable:
        st.info(
            "Your rating: "
            + ", ".join(f"{RUBRIC[d].label} {rating.scores[d] or '–'}" for d in DIMENSIONS)
            + f". It was given on {rating.created_at:%Y-%m-%d} (UTC); ratings can be changed on the day they were given.",
            icon=":material/lock:",
        )
    else:
        st.info("Your rating of this item was replaced meanwhile; see My ratings.", icon=":material/history:")


def skipped_list() -> None:
    """The auditor's skipped items, each with a button that reopens it (one query, on full runs only)."""
    with show_errors() as loaded, services.reading() as uow:
        skipped = sampling_service.skipped_items(uow.session, actor=uow.actor)
    if not loaded.ok or not skipped:
        return
    more = " (the latest)" if len(skipped) == sampling_service.SKIPPED_LISTED else ""
    with st.expander(f"Skipped items: {len(skipped)}{more}", icon=":material/skip_next:"):
        for entry in skipped:
            with st.container(horizontal=True, gap="small", vertical_alignment="center"):
                # the question is the asker's text: inert HTML, never Markdown
                st.html(
                    INERT_STYLE
                    + '<div class="al-caption">'
                    + escape_html(f"Sample of {entry.sample_date:%Y-%m-%d} · skipped: {entry.reason}")
                    + "</div>"
                    + text_html(" ".join(entry.question.split())[:200]),
                    width="stretch",
                )
                st.button(
                    "Reopen",
                    key=f"rate.reopen.{entry.assignment_id}",
                    icon=":material/replay:",
                    on_click=_reopen,
                    args=(entry.assignment_id,),
                )


require_page("rate")
st.title("Rate answers")


@st.fragment
def rating_panel() -> None:
    """The item and its form. A submit reruns only this fragment (the next item replaces the last),
    not the navigation and sidebar: the unit of work still checks the session and re-reads the user,
    and the services check the role, on every action. A skip, an undone skip or a reopened item
    reruns the page: the skipped list above changed."""
    state = st.session_state
    if state.pop(FULL_RERUN, False) or state.get(NAV_DRAWN) != _navigation_buttons():
        st.rerun(scope="app")
    message = state.pop(MESSAGE, None)
    if message and message[0] == "error":
        st.error(escape_markdown(message[1], max_length=1000), icon=":material/error:")
    elif message and message[0] == "warning":
        st.warning(message[1], icon=":material/help:")
    elif message and message[0] == "info":
        st.info(message[1], icon=":material/info:")

    revisit = state.get(REVISIT)
    rating: ratings_service.RatingView | None = None
    changeable = False
    with show_errors() as loaded, services.unit_of_work() as uow:
        if revisit is None:
            item = sampling_service.next_item(uow.session, actor=uow.actor)
        else:  # an item shown again (Previous item, Undo, a reopened skip)
            item = sampling_service.item(uow.session, actor=uow.actor, assignment_id=revisit)
            if item.status == "submitted":
                mine = ratings_service.ratings_for_answer(uow.session, actor=uow.actor, answer_id=item.answer_id)
                rating = mine[0] if mine else None
                changeable = rating is not None and ratings_service.can_change(uow.actor, rating)
        departments = state.get(DEPARTMENTS)
        if departments is None:  # kept for the fragment's reruns until the next full run
            departments = state[DEPARTMENTS] = [d.name for d in org_repo.departments(uow.session)]
        document_ids = [s.document_id for s in item.sources if s.document_id is not None] if item else []
        bodies = {i: d.body for i, d in fixes_repo.documents_by_id(uow.session, document_ids).items()}
    if not loaded.ok:
        if login_session.user_id(state) is None:
            st.rerun()  # the session ended (idle or lifetime limit): the whole app shows the login page
        if revisit is not None:  # that item cannot be shown (e.g. handed to someone else): the queue again
            state.pop(REVISIT, None)
            st.button("Back to the queue", key="rate.queue_after_error", icon=":material/arrow_forward:")
        return

    if item is None:
        _nothing_to_rate()
        return

    aid = item.assignment_id
    saved = f" · {message[1]}" if message and message[0] == "saved" else ""
    if item.status == "pending":
        state.setdefault(f"rate.idempotency.{aid}", uuid.uuid4().hex)
        state.setdefault(f"rate.shown_at.{aid}", time.time())
        st.progress(
            item.progress.done / item.progress.total if item.progress.total else 0.0,
            text=f"Item {item.number} of {item.progress.total} · sample of {item.sample_date:%Y-%m-%d}{saved}",
        )
    else:
        done = "rated" if item.status == "submitted" else "skipped"
        st.progress(
            item.progress.done / item.progress.total if item.progress.total else 0.0,
            text=f"Shown again: an item you {done} · sample of {item.sample_date:%Y-%m-%d}{saved}",
        )

    content, column = st.columns([9, 11], gap="medium")
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
            full_text_chars=None if state.get(_key("long_sources")) else FULL_TEXT_CHARS,
        )
    )
    if has_long_text(bodies):  # the rest of a long document only on demand (it reruns this panel)
        content.toggle("Long sources in full", key=_key("long_sources"))
    with column:
        if item.status == "pending":
            _rating_form(aid, departments=departments, change=None)
        elif rating is not None and changeable:
            _rating_form(aid, departments=departments, change=rating)
        else:
            _finished_item(item, rating, changeable)


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
st.session_state.pop(FULL_RERUN, None)  # this run draws the skipped list afresh
skipped_list()
_navigation()
rating_panel()
