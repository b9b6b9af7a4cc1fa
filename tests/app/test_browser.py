"""The real app in real Chromium: keyboard rating, an SME decision, the lead's charts, forced navigation,
and model output that must not make the browser fetch anything. Saves a screenshot of every page into
docs/screenshots/. Skipped (with the reason) where /usr/bin/chromium is missing, failed instead where
CI demands the browser tests (AUDITLOOP_REQUIRE_BROWSER=1)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from app.views import PAGES
from audit.answers.models import Answer
from audit.org.models import Department
from audit.ratings.models import DIMENSIONS, Rating
from audit.review.models import ReviewDecision, ReviewItem
from audit.sampling.models import Assignment
from tests.app.browser import (
    AUDITORS,
    REPO_ROOT,
    CountingHTTPServer,
    SeededCompany,
    StreamlitServer,
    chromium,
    chromium_missing_reason,
    log_in,
    seed_company,
    settle,
    streamlit_server,
    wait_for_app_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Screenshots of every page as the tests leave them (CI keeps test-artifacts/); the README's pictures in
# docs/screenshots/ come from the demo company: `python -m tests.app.browser screenshots`.
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module", autouse=True)
def require_chromium() -> None:
    reason = chromium_missing_reason()
    if reason is None:
        return
    if os.environ.get("AUDITLOOP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here but {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class LiveApp:
    server: StreamlitServer
    company: SeededCompany
    canary: CountingHTTPServer
    database_url: str

    def db(self) -> Session:
        # a plain engine: reads must not take the write lock the app needs (make_engine's BEGIN IMMEDIATE)
        return Session(create_engine(self.database_url))


@pytest.fixture(scope="module")
def live(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """One seeded database and one `streamlit run` for the module; the canary listens throughout."""
    folder = tmp_path_factory.mktemp("browser")
    path = folder / "auditloop.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    with CountingHTTPServer() as canary:
        company = seed_company(url, canary_port=canary.port)
        with streamlit_server(
            REPO_ROOT / "app" / "streamlit_app.py",
            database_url=url,
            data_dir=folder / "data",
            log_path=folder / "server.log",
        ) as server:
            yield LiveApp(server=server, company=company, canary=canary, database_url=url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as instance:
        yield instance


# where a page may send the browser: the app and the test's own servers, all on this machine
LOCAL = re.compile(r"^(https?|wss?)://127\.0\.0\.1(:\d+)?/|^(data|blob|about):")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab; after the test, no JavaScript error and no request that left 127.0.0.1 (an
    air-gapped intranet has no fonts.gstatic.com: every test's pages are checked, every role's)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    tab = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    context.on("request", lambda request: None if LOCAL.match(request.url) else outside.append(request.url))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
    assert not outside, f"requests that left 127.0.0.1: {sorted(set(outside))}"


def open_in_sidebar(page: Any, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=20_000)
    wait_for_app_idle(page)


def wait_or_show_page(page: Any, locator: Any, state: str = "visible", timeout_ms: int = 60_000) -> None:
    """Wait for the locator; on a timeout, fail with what the page shows (CI keeps no screenshot)."""
    try:
        locator.first.wait_for(state=state, timeout=timeout_ms)
    except Exception as error:
        raise AssertionError(f"{error}\n--- the page showed:\n{page.inner_text('body')[:3000]}") from error


def no_exception_shown(page: Any) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")[:2000]


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    settle(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def press_rating(page: Any, keys: str, sources: str) -> None:
    for key in keys:
        page.keyboard.press(key)
    page.keyboard.press(sources)


def assert_rubric_beside_scales(page: Any) -> None:
    """Each scale's rubric wording (one HTML block for all four, laid out by the page's grid) starts on
    that scale's row, to its right, and the next scale starts below it."""
    settle(page)
    wording = page.locator(".al-rubric")
    assert wording.count() == len(DIMENSIONS)
    for index, dimension in enumerate(DIMENSIONS):
        scale = page.locator(f'[class*="st-key-rate_{dimension}_"]').first.bounding_box()
        text = wording.nth(index).bounding_box()
        assert scale and text
        assert text["x"] >= scale["x"] + scale["width"], dimension
        assert scale["y"] - 5 <= text["y"] <= scale["y"] + scale["height"], dimension
        if index + 1 < len(DIMENSIONS):
            below = page.locator(f'[class*="st-key-rate_{DIMENSIONS[index + 1]}_"]').first.bounding_box()
            assert below and below["y"] >= text["y"] + text["height"] - 5, dimension


def test_auditor_rates_three_items_with_the_keyboard(live: LiveApp, page: Any) -> None:
    auditor = live.company.keyboard_auditor
    log_in(page, live.server.url, auditor, live.company.password)
    page.get_by_text(re.compile(r"^Item 1 of \d+")).wait_for()
    screenshot(page, "auditor-rate")
    assert_rubric_beside_scales(page)
    pressed = ["4352", "1234", "5555"]
    for number, keys in enumerate(pressed, start=1):
        page.get_by_text(re.compile(rf"^Item {number} of \d+")).wait_for()
        wait_for_app_idle(page)
        press_rating(page, keys, "ynu"[number - 1])
        page.keyboard.press("Control+Enter")
    page.get_by_text(re.compile(r"^Item 4 of \d+|Nothing left to rate")).first.wait_for()
    no_exception_shown(page)

    with live.db() as session:
        ratings = session.scalars(
            # the three typed here (the seeded company has simulated ratings by this auditor too)
            select(Rating)
            .where(Rating.auditor_id == live.company.users[auditor], Rating.origin != "simulated")
            .order_by(Rating.id)
        ).all()
    stored = [
        "".join(str(getattr(r, d)) for d in ("accuracy", "completeness", "relevance", "coherence")) for r in ratings
    ]
    assert stored == pressed
    assert [r.sources_correct for r in ratings] == ["yes", "no", "unsure"]
    assert all(r.origin == "app" and r.seconds_spent is not None for r in ratings)

    open_in_sidebar(page, "My ratings")
    no_exception_shown(page)
    screenshot(page, "auditor-my-ratings")


def plain_auditor(live: LiveApp, nth: int = 0) -> str:
    """The ``nth`` seeded auditor whose queue no other test scripts (not the keyboard or the evil one)."""
    return [a for a in AUDITORS if a not in (live.company.keyboard_auditor, live.company.evil_auditor)][nth]


def item_shown(page: Any) -> tuple[int, int]:
    """The item on the rating page: its number in the queue and its assignment id."""
    match = page.get_by_text(re.compile(r"^Item \d+ of \d+"))
    match.first.wait_for()
    number = int(re.match(r"Item (\d+)", match.first.inner_text()).group(1))  # type: ignore[union-attr]
    return number, int(page.locator("[data-rate-item]").get_attribute("data-rate-item") or 0)


def stored_rating(live: LiveApp, assignment_id: int) -> tuple[list[int | None], Rating]:
    """The one rating of an assignment, with its four scores in DIMENSIONS order."""
    with live.db() as session:
        rating = session.scalars(select(Rating).where(Rating.assignment_id == assignment_id)).one()
    return [getattr(rating, d) for d in DIMENSIONS], rating


CHOSEN_SEGMENTS = '[class*="st-key-rate_"] button[role="radio"][aria-checked="true"]'


def test_the_next_item_starts_with_an_empty_form_after_a_submit_or_a_skip(live: LiveApp, page: Any) -> None:
    """The rating widgets keep their keys from item to item; whatever was entered for one item (submitted,
    or left pending in the form by a skip) is gone when the next one shows."""
    auditor = plain_auditor(live)
    log_in(page, live.server.url, auditor, live.company.password)
    page.get_by_text(re.compile(r"^Item 1 of \d+")).wait_for()
    wait_for_app_idle(page)
    press_rating(page, "3333", "y")
    page.keyboard.press("Control+Enter")
    page.get_by_text(re.compile(r"^Item 2 of \d+.*Rating saved")).wait_for()
    wait_for_app_idle(page)
    assert page.locator(CHOSEN_SEGMENTS).count() == 0

    _, assignment_id = item_shown(page)
    press_rating(page, "24", "n")  # two scales and the sources chosen, a comment typed: then skipped
    page.get_by_text("Comment or correction").click()  # a switch: the panel reruns, the scores stay
    page.get_by_role("textbox", name="Comment").fill("not for me")
    page.get_by_text("Skip this item").click()
    page.get_by_role("combobox", name="Reason").wait_for()  # the skip fields are drawn
    wait_for_app_idle(page)
    assert page.locator(CHOSEN_SEGMENTS).count() == 3  # what was chosen before the switches is still there
    skip = page.get_by_role("button", name="Skip", exact=True)
    skipped = page.get_by_text(re.compile(r"^Item 3 of \d+.*Item skipped"))
    skip.click()
    try:
        skipped.wait_for(timeout=10_000)
    except Exception as exc:
        if type(exc).__name__ != "TimeoutError":
            raise
        # Rarely, on a loaded machine (about 1 run in 7 with two busy processes beside it), this click never
        # reaches the server: its log shows no rerun request at all; cause not found. Then nothing may have
        # been written (the item still pending, no rating of it), and a second click must work.
        with live.db() as session:
            assignment = session.get(Assignment, assignment_id)
            ratings = session.scalars(select(Rating).where(Rating.assignment_id == assignment_id)).all()
            assert assignment is not None and (assignment.status, ratings) == ("pending", [])
        skip.click()
        skipped.wait_for()
    wait_for_app_idle(page)
    assert page.locator(CHOSEN_SEGMENTS).count() == 0
    assert page.get_by_role("textbox", name="Comment").count() == 0  # its switch is off again
    page.get_by_text("Comment or correction").click()
    assert page.get_by_role("textbox", name="Comment").input_value() == ""
    no_exception_shown(page)


def test_keys_typed_before_the_scales_are_drawn_still_count(live: LiveApp, page: Any) -> None:
    """A new tab loads each widget's code on first use: for a moment after login the scales' boxes are
    there without their segments. Keys typed then wait for the segments instead of being dropped, and
    a Ctrl+Enter typed then waits for them too (it does not send the form without the scores). The
    segments' code is held back here until the keys are typed, to make that moment last."""
    held: list[Any] = []
    released = False

    def hold(route: Any) -> None:
        # only held, not slept on: a sleep here would stop this test's thread too, and the segments
        # could be drawn before the keys were typed
        if released:
            route.continue_()
        else:
            held.append(route)

    page.route(re.compile(r"/static/js/ButtonGroup\.[^/]*\.js$"), hold)
    auditor = plain_auditor(live)
    log_in(page, live.server.url, auditor, live.company.password)
    number, assignment_id = item_shown(page)
    deadline = time.monotonic() + 20
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)  # lets Playwright hand the request to the handler
    assert held, "the page never asked for the segments' code"
    assert page.locator('[class*="st-key-rate_accuracy_"] button[role="radio"]').count() == 0  # not drawn yet
    for key in "4352y":
        page.keyboard.press(key)
    page.keyboard.press("Control+Enter")
    page.wait_for_timeout(300)
    assert page.get_by_text(re.compile(r"rate at least one")).count() == 0  # the empty form was not sent
    released = True
    for route in held:
        route.continue_()
    page.get_by_text(re.compile(rf"^Item {number + 1} of \d+.*Rating saved|Nothing left to rate")).first.wait_for()
    no_exception_shown(page)
    scores, rating = stored_rating(live, assignment_id)
    assert (scores, rating.sources_correct, rating.origin) == ([4, 3, 5, 2], "yes", "app")


def test_keys_still_score_and_submit_after_a_switch_is_clicked(live: LiveApp, page: Any) -> None:
    """A switch above the form keeps the focus once clicked (a checkbox input); keys 1–5, y/n/u and
    Ctrl+Enter go on working from there, as they do anywhere outside a text field."""
    auditor = plain_auditor(live, nth=-1)  # not the one the two tests above share
    log_in(page, live.server.url, auditor, live.company.password)
    number, assignment_id = item_shown(page)
    page.get_by_text("Comment or correction").click()
    page.get_by_role("textbox", name="Comment").wait_for()
    wait_for_app_idle(page)
    assert page.evaluate("() => document.activeElement.type") == "checkbox"  # the switch has the focus
    press_rating(page, "4321", "n")
    page.keyboard.press("Control+Enter")
    page.get_by_text(re.compile(rf"^Item {number + 1} of \d+.*Rating saved|Nothing left to rate")).first.wait_for()
    no_exception_shown(page)
    scores, rating = stored_rating(live, assignment_id)
    assert (scores, rating.sources_correct, rating.comment) == ([4, 3, 2, 1], "no", None)


def test_ctrl_enter_in_the_comment_box_submits_once(live: LiveApp, page: Any) -> None:
    """Ctrl+Enter typed in the Comment box rates the item shown, once: the next item, which the auditor
    has not seen, is not rated with the same scores (the text area's own shortcut and the page's key
    handler both submitted)."""
    auditor = plain_auditor(live, nth=-1)
    log_in(page, live.server.url, auditor, live.company.password)
    number, assignment_id = item_shown(page)
    page.get_by_text("Comment or correction").click()
    comment = page.get_by_role("textbox", name="Comment")
    comment.wait_for()
    wait_for_app_idle(page)
    press_rating(page, "3333", "y")
    comment.click()
    comment.press_sequentially("clear enough")
    comment.press("Control+Enter")
    page.get_by_text(re.compile(rf"^Item {number + 1} of \d+.*Rating saved|Nothing left to rate")).first.wait_for()
    wait_for_app_idle(page)
    page.wait_for_timeout(1500)  # time for a second submit to arrive, if one was sent
    wait_for_app_idle(page)
    no_exception_shown(page)
    scores, rating = stored_rating(live, assignment_id)
    assert (scores, rating.sources_correct, rating.comment) == ([3, 3, 3, 3], "yes", "clear enough")
    with live.db() as session:
        rated = session.scalars(
            select(Rating.assignment_id).where(Rating.auditor_id == live.company.users[auditor], Rating.origin == "app")
        ).all()
    assert assignment_id in rated and len(rated) == len(set(rated))
    next_number, next_assignment = item_shown(page)
    assert next_number == number + 1
    assert next_assignment not in rated


_fresh_auditors = iter(range(1, 100))


def fresh_auditor(live: LiveApp, items: int = 3) -> tuple[str, list[int]]:
    """A new auditor with ``items`` pending assignments of new answers, in a batch of its own (dated a
    month back, so no other test's queue or today's sample changes): their username and assignment ids
    in queue order."""
    import datetime as dt

    from audit.modelops.models import ModelVersion
    from tests import factories

    n = next(_fresh_auditors)
    with live.db() as session:
        legal = session.scalars(select(Department).where(Department.name == "Legal")).one()
        model = session.scalars(select(ModelVersion).order_by(ModelVersion.id)).first()
        assert model is not None
        auditor = factories.user(session, username=f"fresh{n}")
        assignments = [
            factories.assignment(
                session,
                ans=factories.answer(
                    session,
                    dept=legal,
                    model=model,
                    question=f"Fresh question {n}.{i}: how long is a contract kept?",
                    text=f"Fresh answer {n}.{i}: ten years.",
                    external_id=f"fresh-{n}-{i}",
                ),
                auditor=auditor,
                sample_date=dt.datetime.now(dt.UTC).date() - dt.timedelta(days=30 + n),
            )
            for i in range(items)
        ]
        ids = [a.id for a in assignments]
        session.commit()
    return f"fresh{n}", ids


@contextlib.contextmanager
def window_page(browser: Any, width: int, height: int) -> Iterator[Any]:
    """A tab with this window size; no JavaScript error in it, as the ``page`` fixture checks its tab."""
    context = browser.new_context(viewport={"width": width, "height": height})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def chosen_scores(page: Any) -> list[str]:
    """The segments chosen in the rating form, scales then sources, as their text."""
    return [
        page.locator(f'[class*="st-key-rate_{name}_item"] button[aria-checked="true"]').first.inner_text().strip()
        if page.locator(f'[class*="st-key-rate_{name}_item"] button[aria-checked="true"]').count()
        else ""
        for name in (*DIMENSIONS, "sources")
    ]


def test_submit_is_in_view_without_scrolling_at_1280_by_900(live: LiveApp, browser: Any) -> None:
    """A 1280×900 window (a laptop with the sidebar open): the Submit button lies inside the window as
    the item opens, with every switch on too (the form then holds the department boxes, the comment and
    correction, and the skip fields); the skip fields and their button share one row under the switches."""
    auditor, _ = fresh_auditor(live, items=1)
    with window_page(browser, 1280, 900) as tab:
        log_in(tab, live.server.url, auditor, live.company.password)
        tab.get_by_text(re.compile(r"^Item 1 of 1")).wait_for()
        for switch in ("", "Flag department bias", "Comment or correction", "Skip this item"):
            if switch:
                tab.get_by_text(switch).click()
                wait_for_app_idle(tab)
            settle(tab)
            box = tab.get_by_role("button", name="Submit rating").bounding_box()
            assert box is not None, switch
            assert box["x"] >= 0 and box["y"] >= 0, (switch, box)
            assert box["x"] + box["width"] <= 1280 and box["y"] + box["height"] <= 900, (switch, box)
        reason = tab.get_by_role("combobox", name="Reason").bounding_box()
        skip = tab.get_by_role("button", name="Skip", exact=True).bounding_box()
        switch_box = tab.get_by_text("Skip this item").bounding_box()
        assert reason and skip and switch_box
        assert abs((skip["y"] + skip["height"]) - (reason["y"] + reason["height"])) < 6  # one row
        assert skip["x"] > reason["x"] and 0 < reason["y"] - switch_box["y"] < 150  # right under the switch
        assert skip["y"] + skip["height"] <= 900
        # the button works from where it is (the bias flag off again: it would need a department)
        tab.get_by_text("Flag department bias").click()
        wait_for_app_idle(tab)
        for key in "3333y":
            tab.keyboard.press(key)
        tab.get_by_role("button", name="Submit rating").click()
        tab.get_by_text(re.compile("Nothing left to rate")).first.wait_for()
        no_exception_shown(tab)
        screenshot(tab, "auditor-rate-1280x900")


def test_undo_and_previous_item_bring_back_a_rating_to_change(live: LiveApp, page: Any) -> None:
    """Submit, Undo: the item is back with its scores in the form; a key changes one and Ctrl+Enter saves
    the change, which supersedes the rating (both rows kept). Previous item shows it again as changed;
    Back to the queue goes on where the queue was."""
    auditor, ids = fresh_auditor(live)
    log_in(page, live.server.url, auditor, live.company.password)
    page.get_by_text(re.compile(r"^Item 1 of 3")).wait_for()
    wait_for_app_idle(page)
    press_rating(page, "4444", "y")
    page.keyboard.press("Control+Enter")
    page.get_by_text(re.compile(r"^Item 2 of 3.*Rating saved")).wait_for()
    wait_for_app_idle(page)
    page.get_by_role("button", name="Undo").click()
    page.get_by_text(re.compile(r"^Shown again: an item you rated")).wait_for()
    wait_for_app_idle(page)
    assert item_shown_again(page) == ids[0]
    assert chosen_scores(page) == ["4", "4", "4", "4", "yes"]
    page.keyboard.press("2")  # the first scale again: accuracy 2
    page.keyboard.press("Control+Enter")
    page.get_by_text(re.compile(r"^Item 2 of 3.*the earlier one stays in the history")).wait_for()
    wait_for_app_idle(page)
    assert chosen_scores(page) == [""] * 5  # the queue's item starts empty
    with live.db() as session:
        rows = session.scalars(select(Rating).where(Rating.assignment_id == ids[0]).order_by(Rating.id)).all()
    assert [([getattr(r, d) for d in DIMENSIONS], r.is_current) for r in rows] == [
        ([4, 4, 4, 4], False),
        ([2, 4, 4, 4], True),
    ]
    assert rows[1].supersedes_id == rows[0].id

    page.get_by_role("button", name="Previous item").click()
    page.get_by_text(re.compile(r"^Shown again: an item you rated")).wait_for()
    wait_for_app_idle(page)
    assert item_shown_again(page) == ids[0] and chosen_scores(page) == ["2", "4", "4", "4", "yes"]
    page.get_by_role("button", name="Back to the queue").click()
    page.get_by_text(re.compile(r"^Item 2 of 3")).wait_for()
    wait_for_app_idle(page)
    assert item_shown(page)[1] == ids[1] and chosen_scores(page) == [""] * 5
    no_exception_shown(page)


def item_shown_again(page: Any) -> int:
    return int(page.locator("[data-rate-item]").get_attribute("data-rate-item") or 0)


def test_a_skip_is_undone_and_a_skipped_item_is_reopened_from_the_list(live: LiveApp, page: Any) -> None:
    auditor, ids = fresh_auditor(live)
    log_in(page, live.server.url, auditor, live.company.password)
    page.get_by_text(re.compile(r"^Item 1 of 3")).wait_for()
    wait_for_app_idle(page)

    def skip() -> None:
        page.get_by_text("Skip this item").click()
        page.get_by_role("combobox", name="Reason").wait_for()
        wait_for_app_idle(page)
        page.get_by_role("button", name="Skip", exact=True).click()

    skip()
    page.get_by_text(re.compile(r"^Item 2 of 3.*Item skipped")).wait_for()
    wait_for_app_idle(page)
    page.get_by_text("Skipped items: 1").wait_for()
    page.get_by_role("button", name="Undo").click()
    page.get_by_text(re.compile(r"^Item 1 of 3.*Skip undone")).wait_for()
    wait_for_app_idle(page)
    assert item_shown(page)[1] == ids[0]
    assert page.get_by_text(re.compile("^Skipped items")).count() == 0

    skip()  # the same item again, then reopened from the list
    page.get_by_text(re.compile(r"^Item 2 of 3.*Item skipped")).wait_for()
    wait_for_app_idle(page)
    page.get_by_text("Skipped items: 1").click()  # the list opens
    page.get_by_text(re.compile(r"Fresh question \d+\.0: how long")).wait_for()
    page.get_by_role("button", name="Reopen", exact=True).click()
    page.get_by_text(re.compile(r"^Item 1 of 3.*Skipped item reopened")).wait_for()  # none done again
    wait_for_app_idle(page)
    assert item_shown(page)[1] == ids[0]
    press_rating(page, "5555", "n")
    page.keyboard.press("Control+Enter")
    page.get_by_text(re.compile(r"^Item 2 of 3.*Rating saved")).wait_for()
    wait_for_app_idle(page)
    assert item_shown(page)[1] == ids[1]
    with live.db() as session:
        assert session.get(Assignment, ids[0]).status == "submitted"  # type: ignore[union-attr]
    scores, rating = stored_rating(live, ids[0])
    assert (scores, rating.sources_correct) == ([5, 5, 5, 5], "no")
    no_exception_shown(page)


def test_my_ratings_shows_an_edit_at_once(live: LiveApp, page: Any) -> None:
    """After "Save the edit" the table and the rating list show the new values, and no old ones linger in
    the list's box (the browser kept the edited rating's old label there)."""
    auditor, ids = fresh_auditor(live, items=1)
    log_in(page, live.server.url, auditor, live.company.password)
    page.get_by_text(re.compile(r"^Item 1 of 1")).wait_for()
    wait_for_app_idle(page)
    press_rating(page, "2222", "y")
    page.keyboard.press("Control+Enter")
    page.get_by_text(re.compile("Nothing left to rate")).first.wait_for()
    open_in_sidebar(page, "My ratings")
    page.get_by_role("combobox", name="Rating").click()
    page.get_by_role("option").first.click()
    page.get_by_role("button", name="Save the edit").wait_for()
    wait_for_app_idle(page)
    page.locator('[data-testid="stForm"] button[role="radio"]').filter(has_text="5").first.click()
    page.get_by_role("button", name="Save the edit").click()
    page.get_by_text(re.compile(r"Rating #\d+ updated")).wait_for()
    wait_for_app_idle(page)
    settle(page)
    _, rating = stored_rating_current(live, ids[0])
    assert rating.accuracy == 5
    box = page.locator('[data-testid="stSelectbox"]').first  # the rating list (the form is closed)
    assert "Acc 2" not in box.inner_text()  # the edited rating's old label is gone from the box
    page.get_by_role("combobox", name="Rating").click()
    assert [o.inner_text().split(" · ")[:2] for o in page.get_by_role("option").all()] == [
        [f"#{rating.id}", "Acc 5 Com 2 Rel 2 Coh 2"]
    ]
    no_exception_shown(page)


def stored_rating_current(live: LiveApp, assignment_id: int) -> tuple[list[int | None], Rating]:
    with live.db() as session:
        rating = session.scalars(
            select(Rating).where(Rating.assignment_id == assignment_id, Rating.is_current.is_(True))
        ).one()
    return [getattr(rating, d) for d in DIMENSIONS], rating


def root_cause_shows(page: Any, cause: str, timeout_ms: int = 30_000) -> None:
    """Wait until a select box shows ``cause`` as its value (as text, or in its input while focused)."""
    page.wait_for_function(
        """cause => [...document.querySelectorAll('[data-testid="stSelectbox"]')].some(box =>
            box.innerText.includes(cause) || [...box.querySelectorAll('input')].some(i => i.value === cause))""",
        arg=cause,
        timeout=timeout_ms,
    )


def choose_root_cause(page: Any, cause: str) -> None:
    """Pick the SME's root cause and wait until the app has stored the choice: right after Enter the
    rerun may not have started, and text typed into the correction box meanwhile can race it (on a
    loaded CI machine the choice was then lost and Confirm answered "Choose the root cause first")."""
    root_cause = page.get_by_role("combobox", name="Root cause")
    root_cause.click()
    root_cause.press_sequentially(cause[:6])
    root_cause.press("Enter")
    root_cause_shows(page, cause)
    settle(page)


def test_sme_confirms_a_flagged_item_with_a_correction(live: LiveApp, page: Any) -> None:
    item = live.company.hr_review_item_id
    log_in(page, live.server.url, "sme.hr", live.company.password)
    page.get_by_role("heading", name=f"Item {item}").wait_for()
    wait_for_app_idle(page)
    choose_root_cause(page, "hallucination")
    correction = page.get_by_role("textbox", name="Corrected answer")
    correction.fill("HR records are kept for six years after employment ends, then deleted.")
    correction.press("Control+Enter")  # a text area commits with Ctrl+Enter: the diff follows
    page.get_by_text("+HR records are kept for six years after employment ends, then deleted.").wait_for()
    screenshot(page, "sme-review")
    # the root cause chosen before the correction was typed is still chosen
    root_cause_shows(page, "hallucination", timeout_ms=5_000)
    page.get_by_role("button", name="Confirm the problem").click()
    # the item leaves the page once stored; on a loaded machine the rerun may take a while, and if it
    # never goes the failure says what the page showed instead
    wait_or_show_page(page, page.get_by_role("heading", name=f"Item {item}"), state="detached")
    wait_or_show_page(page, page.get_by_text(re.compile(r"The queue is empty: nothing to review\.|^Item \d+$")))
    no_exception_shown(page)

    with live.db() as session:
        decision = session.scalars(select(ReviewDecision).where(ReviewDecision.review_item_id == item)).one()
    assert (decision.decision, decision.root_cause) == ("confirm", "hallucination")
    assert decision.corrected_answer == "HR records are kept for six years after employment ends, then deleted."


def test_sme_cannot_confirm_a_hallucination_with_the_answer_as_its_correction(live: LiveApp, page: Any) -> None:
    """The corrected-answer box starts with the auditor's suggestion or the model's answer; confirmed as
    it is, with a content cause, the error itself would become a training example. No root cause is
    chosen for the SME, and the model's answer as the correction is refused."""
    item = live.company.review_item_id
    log_in(page, live.server.url, "sme.legal", live.company.password)
    page.get_by_role("heading", name=f"Item {item}").wait_for()
    wait_for_app_idle(page)
    confirm = page.get_by_role("button", name="Confirm the problem")
    confirm.click()  # nothing chosen: no default root cause is stored
    page.get_by_text("Choose the root cause first.").wait_for()
    choose_root_cause(page, "hallucination")
    correction = page.get_by_role("textbox", name="Corrected answer")
    with live.db() as session:
        answer = session.scalars(
            select(Answer.answer_text).join(ReviewItem, ReviewItem.answer_id == Answer.id).where(ReviewItem.id == item)
        ).one()
    correction.fill(answer)  # the model's answer, unedited
    correction.press("Control+Enter")
    wait_for_app_idle(page)
    confirm.click()
    page.get_by_text("the same as the answer", exact=False).wait_for()
    no_exception_shown(page)
    with live.db() as session:
        assert session.scalars(select(ReviewDecision).where(ReviewDecision.review_item_id == item)).all() == []


def test_a_department_named_with_a_url_is_never_a_link(live: LiveApp, page: Any) -> None:
    """Names from the data go through Markdown in captions and warnings, where GFM links bare URLs and
    addresses even when escaped: the SME's item caption and the Fairness page show the name as text."""
    name = "Legal https://legal.example/wiki www.legal.example sme@legal.example"
    with live.db() as session:
        session.execute(update(Department).where(Department.name == "Legal").values(name=name))
        session.commit()
    try:
        log_in(page, live.server.url, "sme.legal", live.company.password)
        page.get_by_role("heading", name=f"Item {live.company.review_item_id}").wait_for()
        wait_for_app_idle(page)
        page.locator('[data-testid="stCaptionContainer"]').filter(has_text="legal.example/wiki").first.wait_for()
        assert page.locator('a[href*="legal.example"]').count() == 0
        page.goto("about:blank")
        log_in(page, live.server.url, "lead", live.company.password)
        open_in_sidebar(page, "Fairness")
        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
        no_exception_shown(page)
        assert page.locator('a[href*="legal.example"]').count() == 0
    finally:
        with live.db() as session:
            session.execute(update(Department).where(Department.name == name).values(name="Legal"))
            session.commit()


def test_lead_dashboards_render_their_charts(live: LiveApp, page: Any) -> None:
    log_in(page, live.server.url, "lead", live.company.password)
    for title, charts in (
        ("Quality", 1),
        ("Fairness", 3),
        ("Agreement", 1),
        ("Fix pipeline", 1),
        ("Models", 0),
        ("Review queue", 0),
        ("Audit log", 0),
    ):
        open_in_sidebar(page, title)
        no_exception_shown(page)
        drawn = page.locator('[data-testid="stVegaLiteChart"]')
        if charts:
            drawn.nth(charts - 1).locator("canvas, svg").first.wait_for(timeout=20_000)
        assert drawn.count() == charts, f"{title}: {drawn.count()} charts"
        screenshot(page, f"lead-{title.lower().replace(' ', '-')}")


def test_admin_pages_render(live: LiveApp, page: Any) -> None:
    log_in(page, live.server.url, "admin", live.company.password)
    for title in ("Users", "Departments", "Policies", "Audit log"):
        open_in_sidebar(page, title)
        no_exception_shown(page)
        screenshot(page, f"admin-{title.lower().replace(' ', '-')}")


def test_login_page_and_a_failed_login(live: LiveApp, page: Any) -> None:
    page.goto(live.server.url)
    page.locator('input[aria-label="Username"]').fill("lead")
    page.locator('input[aria-label="Password"]').fill("certainly-not-it")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Wrong username or password.").wait_for()
    assert page.locator('input[aria-label="Password"]').input_value() == ""
    screenshot(page, "login")


def test_a_session_whose_connection_closed_cannot_be_resumed(live: LiveApp, page: Any) -> None:
    """The browser reconnects with its session id after the connection drops, as anyone holding the id
    could after the tab closed: the server ended that session when the connection closed (Streamlit
    kept it 120 s by default), so the reconnect finds the login page, not the logged-in user."""
    connections: list[Any] = []

    def through(socket: Any) -> None:  # the page's websocket, passed on to the server as it is
        connections.append(socket.connect_to_server())

    page.route_web_socket(re.compile(r"/_stcore/stream"), through)
    log_in(page, live.server.url, "lead", live.company.password)
    wait_for_app_idle(page)
    assert len(connections) == 1
    connections[0].close()  # the server's side of the connection closes; the page reconnects with its id
    deadline = time.monotonic() + 20
    while len(connections) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(connections) == 2
    page.wait_for_timeout(1000)
    # the page still shows what it drew; its next action runs in the session the reconnect got
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Fairness").first.click()
    page.locator('input[aria-label="Username"]').wait_for()
    assert page.get_by_text("(lead)").count() == 0


def test_auditor_typing_the_sme_pages_url_is_refused(live: LiveApp, page: Any) -> None:
    auditor = live.company.keyboard_auditor
    log_in(page, live.server.url, auditor, live.company.password)
    review = next(p for p in PAGES if p.url_path == "review")

    def go_to(path: str) -> None:  # what the browser does on back/forward: navigate inside the session
        page.evaluate(
            f"() => {{ history.pushState({{}}, '', '/{path}'); dispatchEvent(new PopStateEvent('popstate')); }}"
        )
        page.wait_for_timeout(1000)
        wait_for_app_idle(page)

    # within the live session: an allowed page's URL navigates (the control) ...
    go_to("my-ratings")
    page.get_by_role("heading", name="My ratings").wait_for()
    # ... the SME page's URL does not: the navigation was never told about it
    go_to(review.url_path)
    assert page.get_by_role("heading", name="Review queue").count() == 0
    assert page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Review queue").count() == 0
    no_exception_shown(page)

    # typed into the address bar: a new session, which must log in first, and still no review page
    page.goto(f"{live.server.url}/{review.url_path}")
    log_in_here = page.locator('input[aria-label="Username"]')
    log_in_here.wait_for()
    assert page.get_by_role("heading", name="Review queue").count() == 0
    log_in_here.fill(auditor)
    page.locator('input[aria-label="Password"]').fill(live.company.password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Rate answers").wait_for()
    assert page.get_by_role("heading", name="Review queue").count() == 0


def test_a_bookmarked_page_opens_after_the_login(live: LiveApp, page: Any) -> None:
    """/fairness typed or bookmarked while logged out: the login page (no "Page not found"), then Fairness."""
    page.goto(f"{live.server.url}/fairness")
    page.locator('input[aria-label="Username"]').fill("lead")
    page.locator('input[aria-label="Password"]').fill(live.company.password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Fairness").wait_for()
    assert page.get_by_text("Page not found").count() == 0
    no_exception_shown(page)


def test_model_output_makes_the_browser_fetch_nothing(live: LiveApp, page: Any) -> None:
    port = live.canary.port
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if f":{port}" in request.url else None)
    before = list(live.canary.requests)

    # the auditor whose next item is the HR answer full of images, links, HTML and script
    log_in(page, live.server.url, live.company.evil_auditor, live.company.password)
    page.get_by_text("![tracking pixel]", exact=False).first.wait_for()
    page.get_by_text("Full text").first.click()
    wait_for_app_idle(page)
    page.wait_for_timeout(1500)
    page.goto("about:blank")

    # the SME reviewing the Legal answer of the same kind: question, answer, diff, ratings, sources
    log_in(page, live.server.url, "sme.legal", live.company.password)
    page.get_by_role("heading", name=f"Item {live.company.review_item_id}").wait_for()
    page.get_by_text("<img src=", exact=False).first.wait_for()
    wait_for_app_idle(page)
    page.wait_for_timeout(1500)

    assert seen == []
    assert live.canary.requests == before
    assert page.locator(f'img[src*=":{port}"], a[href*=":{port}"], iframe[src*=":{port}"]').count() == 0


# ----------------------------------------------------------------------------- single sign-on


def test_single_sign_on_through_a_real_oidc_provider(sqlite_template: Path, tmp_path: Path, page: Any) -> None:
    """st.login against a running OpenID Connect provider (discovery, code flow, signed ID token
    checked by Authlib): the identity maps to the database user and their role; a reload keeps the
    session (the identity cookie); logging out drops it; an unknown identity is refused."""
    from tests.app.oidc_provider import OIDCProvider

    path = tmp_path / "auditloop.db"
    shutil.copy(sqlite_template, path)
    seed_company(f"sqlite:///{path}")
    with OIDCProvider() as idp:
        server = StreamlitServer(
            script=REPO_ROOT / "app" / "streamlit_app.py",
            env={
                "AUDITLOOP_DATABASE_URL": f"sqlite:///{path}",
                "AUDITLOOP_DATA_DIR": str(tmp_path / "data"),
                "AUDITLOOP_DEMO_MODE": "false",
            },
            log_path=tmp_path / "server.log",
        )
        secrets_file = tmp_path / "secrets.toml"
        secrets_file.write_text(idp.secrets_toml(server.url))
        server.extra_args = ["--secrets.files", str(secrets_file)]
        server.start()
        try:
            idp.claims = {"sub": "idp-lead", "preferred_username": "lead", "name": "The Lead"}
            page.goto(server.url)
            page.get_by_role("button", name="Log in with single sign-on").click()
            page.get_by_text("(lead)").first.wait_for(timeout=30_000)
            assert idp.token_requests == 1
            page.reload()  # the identity cookie signs the new session in again, without the provider
            page.get_by_text("(lead)").first.wait_for(timeout=30_000)
            assert idp.token_requests == 1
            page.get_by_role("button", name="Log out").click()
            page.get_by_role("button", name="Log in with single sign-on").wait_for(timeout=30_000)
            page.reload()
            page.get_by_role("button", name="Log in with single sign-on").wait_for(timeout=30_000)
            assert page.get_by_text("(lead)").count() == 0

            idp.claims = {"sub": "idp-mallory", "preferred_username": "mallory"}
            page.get_by_role("button", name="Log in with single sign-on").click()
            page.get_by_text("has no active account").wait_for(timeout=30_000)
            assert page.get_by_text("(mallory)").count() == 0
            assert idp.token_requests == 2
        finally:
            server.stop()
    with Session(create_engine(f"sqlite:///{path}")) as db:
        from audit.auditlog.models import AuditLogEntry

        entries = db.scalars(select(AuditLogEntry).where(AuditLogEntry.action.in_(["login.success", "login.failed"])))
        oidc = [(e.action, e.actor_name) for e in entries if (e.details or {}).get("method") == "oidc"]
    assert oidc == [("login.success", "lead"), ("login.success", "lead"), ("login.failed", "mallory")]
