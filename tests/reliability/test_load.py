"""Concurrent auditors through the services: every submission stored exactly once, no deadlock, no
"database is locked", no error surfaced; throughput and p95 go to the figures summary.

The spec loads (50 auditors x 100 ratings on PostgreSQL, 10 x 100 on SQLite) are ``slow``; a small
burst on each backend runs with the fast suite. The harness is ``tests/reliability/load_report.py``.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.db import make_engine, make_session_factory
from audit.org.models import User
from audit.ratings import service as ratings_service
from audit.review import routing
from audit.review.models import ReviewItem
from tests import factories as f
from tests.reliability.conftest import report
from tests.reliability.load_report import LoadPlan, LoadResult, StoredState, measure


def assert_nothing_lost_or_doubled(plan: LoadPlan, result: LoadResult, state: StoredState) -> None:
    assert result.errors == [], result.errors[0]
    assert not any("database is locked" in e or "deadlock" in e for e in result.errors)
    assert result.ratings == plan.total  # every submit acknowledged
    assert state.ratings == plan.total  # ... and stored
    assert state.duplicate_answer_auditor_pairs == 0
    assert state.assignments_not_submitted == 0
    assert state.submitted_without_one_rating == 0
    assert state.ratings_not_matching_assignment == 0
    assert state.rating_audit_entries == plan.total


@pytest.mark.postgres
@pytest.mark.slow
def test_fifty_auditors_rate_a_hundred_items_each_on_postgres(migrated_postgres_url: str) -> None:
    plan = LoadPlan(auditors=50, per_auditor=100)
    result, state = measure(migrated_postgres_url, plan)
    report("load", result.line())
    assert_nothing_lost_or_doubled(plan, result, state)
    # routing locks the answer row: a submit sees every committed partner rating
    assert result.routing_misses == 0


@pytest.mark.slow
def test_ten_auditors_rate_a_hundred_items_each_on_sqlite(sqlite_url: str) -> None:
    plan = LoadPlan(auditors=10, per_auditor=100)
    result, state = measure(sqlite_url, plan)
    report("load", result.line())
    assert_nothing_lost_or_doubled(plan, result, state)


@pytest.mark.postgres
def test_a_small_burst_on_postgres(migrated_postgres_url: str) -> None:
    plan = LoadPlan(auditors=10, per_auditor=10)
    result, state = measure(migrated_postgres_url, plan)
    report("load (small)", result.line())
    assert_nothing_lost_or_doubled(plan, result, state)
    assert result.routing_misses == 0


def test_a_small_burst_on_sqlite(sqlite_url: str) -> None:
    plan = LoadPlan(auditors=4, per_auditor=10)
    result, state = measure(sqlite_url, plan)
    report("load (small)", result.line())
    assert_nothing_lost_or_doubled(plan, result, state)
    # SQLite serialises writers (BEGIN IMMEDIATE): routing always sees the partner's rating
    assert result.routing_misses == 0


# ----------------------------------------------------------------------------- what the load found


@pytest.fixture
def two_auditors_one_answer(migrated_postgres_url: str) -> Iterator[tuple[Engine, int, int, int, int]]:
    """Committed: one answer assigned to two auditors. Yields (engine, auditor ids, assignment ids, answer id)."""
    engine = make_engine(migrated_postgres_url)
    with make_session_factory(engine).begin() as session:
        ans = f.answer(session, dept=f.department(session, "HR"), model=f.model_version(session))
        first, second = f.user(session), f.user(session)
        a1 = f.assignment(session, ans=ans, auditor=first, overlap_k=2)
        a2 = f.assignment(session, ans=ans, auditor=second, overlap_k=2)
        ids = (first.id, second.id, a1.id, a2.id, ans.id)
    yield engine, *ids  # type: ignore[misc]
    engine.dispose()


def submit_in_open_transaction(session: Session, auditor_id: int, assignment_id: int, score: int) -> None:
    ratings_service.submit_rating(
        session,
        actor=session.get_one(User, auditor_id),
        assignment_id=assignment_id,
        accuracy=score,
        completeness=score,
        relevance=score,
        coherence=score,
    )


def review_reasons(engine: Engine, answer_id: int) -> tuple[str, ...]:
    with Session(engine) as session:
        item = session.scalars(select(ReviewItem).where(ReviewItem.answer_id == answer_id)).one_or_none()
        return tuple(item.reasons) if item is not None else ()


def waiting_on_a_lock(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).scalar_one()
        )


def race_two_submits(engine: Engine, first: int, second: int, a1: int, a2: int) -> bool:
    """Both submits start before either commits (as two auditors pressing Submit at the same moment):
    the second runs in its own thread while the first's transaction is still open. Returns whether
    the second had to wait for the first (routing serialises per answer)."""
    factory = make_session_factory(engine)
    failures: list[BaseException] = []
    with factory() as one, factory() as two:
        submit_in_open_transaction(one, first, a1, 5)  # alone: nothing to route

        def second_submit() -> None:
            try:
                submit_in_open_transaction(two, second, a2, 3)  # together with the first: 5 vs 3
                two.commit()
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        thread = threading.Thread(target=second_submit)
        thread.start()
        deadline, waited = time.monotonic() + 30, False
        while thread.is_alive() and time.monotonic() < deadline and not waited:
            waited = waiting_on_a_lock(engine) > 0
            time.sleep(0.02)
        one.commit()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the second submit never finished"
    assert failures == []
    return waited


@pytest.mark.postgres
def test_a_disagreement_between_two_simultaneous_submits_is_routed_at_once(two_auditors_one_answer) -> None:
    engine, first, second, a1, a2, answer_id = two_auditors_one_answer
    # the second submit's routing waits for the first to commit, then sees its rating
    assert race_two_submits(engine, first, second, a1, a2) is True
    assert review_reasons(engine, answer_id) == ("disagreement",)


@pytest.mark.postgres
def test_the_daily_routing_pass_agrees_with_routing_at_submit(two_auditors_one_answer) -> None:
    engine, first, second, a1, a2, answer_id = two_auditors_one_answer
    race_two_submits(engine, first, second, a1, a2)
    with make_session_factory(engine).begin() as session:
        routing.route(session, actor=None)
    assert review_reasons(engine, answer_id) == ("disagreement",)


# ----------------------------------------------------------------------------- real browsers

STEP_MS = 120_000  # one step of one session (a shared two-core machine running ten browsers is slow)
KEYBOARD_READY = """() => {
  const box = document.querySelector('[class*="st-key-rate_accuracy_"]');
  return window.__auditloopRatingInstalled === true && box !== null && box.style.outline !== "";
}"""
# keys 1-5 go to the scale holding the focus, then move on: start at accuracy (and blur before
# Ctrl+Enter, which Streamlit's submit shortcut ignores while a segment button has the focus)
FOCUS_FIRST_SCALE = """() => {
  const first = document.querySelector('[class*="st-key-rate_accuracy_"] button[role="radio"]');
  if (first) { first.focus(); }
  return first !== null;
}"""
# the segments "4352" and "yes" are selected, as the keys asked
FORM_FILLED = """() => [["accuracy", "4"], ["completeness", "3"], ["relevance", "5"], ["coherence", "2"], ["sources", "yes"]]
  .every(([name, option]) => {
    const box = document.querySelector(`[class*="st-key-rate_${name}_"]`);
    const chosen = box && box.querySelector('button[role="radio"][aria-checked="true"]');
    return chosen !== null && chosen.innerText.trim() === option;
  })"""
BROWSER_SESSIONS = int(os.environ.get("AUDITLOOP_BROWSER_SESSIONS", "10"))
ITEMS_PER_SESSION = 5


def seed_browser_auditors(database_url: str) -> list[str]:
    """Ten auditors (the test password), each with five pending answers of their own."""
    import datetime as dt

    from audit.org import service as org_service

    engine = make_engine(database_url)
    names = [f"browser{i:02d}" for i in range(BROWSER_SESSIONS)]
    with make_session_factory(engine).begin() as session:
        dept = f.department(session, "Operations")
        model = f.model_version(session, "browser-v1")
        for name in names:
            auditor = org_service.create_user(
                session, actor=None, username=name, role="auditor", password=f.TEST_PASSWORD
            )
            for item in range(ITEMS_PER_SESSION):
                ans = f.answer(
                    session, dept=dept, model=model, question=f"{name} question {item}?", text=f"Answer {item}."
                )
                f.assignment(session, ans=ans, auditor=auditor, sample_date=dt.date(2026, 11, 27))
    engine.dispose()
    return names


@pytest.mark.browser
@pytest.mark.slow
def test_ten_browser_sessions_rate_at_once_against_one_server(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Ten real Chromium sessions log in to one Streamlit server and rate with the keyboard at the same
    time; every rating is stored once and no page shows an error."""
    import asyncio
    import re
    import time

    from tests.app.browser import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, chromium_missing_reason, streamlit_server

    reason = chromium_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    names = seed_browser_auditors(sqlite_url)
    latencies: list[float] = []
    page_errors: list[str] = []
    lost_keystrokes: list[str] = []

    async def rate_as(browser, base_url: str, username: str) -> None:  # type: ignore[no-untyped-def]
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.on("pageerror", lambda exc: page_errors.append(f"{username}: {exc}"))
        try:
            await page.goto(base_url)
            await page.locator('input[aria-label="Username"]').fill(username, timeout=STEP_MS)
            await page.locator('input[aria-label="Password"]').fill(f.TEST_PASSWORD, timeout=STEP_MS)
            await page.get_by_role("button", name="Log in").click(timeout=STEP_MS)
            await page.get_by_text(f"({username})").first.wait_for(timeout=STEP_MS)
            await rate_items(page)
        except Exception as exc:
            await page.screenshot(path=str(tmp_path / f"{username}.png"))
            body = (await page.inner_text("body"))[:300]
            page_errors.append(f"{username}: {type(exc).__name__}: {str(exc).splitlines()[0]}; page: {body!r}")
        if await page.locator('[data-testid="stException"]').count():
            page_errors.append(f"{username}: {await page.inner_text('body')}"[:500])
        await context.close()

    async def rate_items(page) -> None:  # type: ignore[no-untyped-def]
        for number in range(1, ITEMS_PER_SESSION + 1):
            await page.get_by_text(re.compile(rf"^Item {number} of \d+")).wait_for(timeout=STEP_MS)
            await page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=STEP_MS)
            for _attempt in range(5):
                # the keyboard is live once its script highlights the first scale (what the auditor sees)
                await page.wait_for_function(KEYBOARD_READY, timeout=STEP_MS)
                if await page.evaluate(FOCUS_FIRST_SCALE):
                    for key in "4352y":
                        await page.keyboard.press(key)
                    await page.evaluate("() => document.activeElement && document.activeElement.blur()")
                    if await page.evaluate(FORM_FILLED):
                        break
                # a rerun replaced the form as the keys went in: the auditor sees empty scales and types again
                lost_keystrokes.append(f"item {number}")
                await page.wait_for_timeout(1000)
            else:
                raise AssertionError(f"item {number}: the keys never filled the form")
            pressed = time.perf_counter()
            await page.keyboard.press("Control+Enter")
            # after the last item: the empty state (its wording depends on whether today's sample holds it)
            following = rf"^Item {number + 1} of \d+" if number < ITEMS_PER_SESSION else r"[Nn]othing (left )?to rate"
            await page.get_by_text(re.compile(following)).first.wait_for(timeout=STEP_MS)
            latencies.append(time.perf_counter() - pressed)

    async def all_sessions(base_url: str) -> float:
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                began = time.perf_counter()
                await asyncio.gather(*(rate_as(browser, base_url, name) for name in names))
                return time.perf_counter() - began
            finally:
                await browser.close()

    with streamlit_server(
        REPO_ROOT / "app" / "streamlit_app.py",
        database_url=sqlite_url,
        data_dir=tmp_path / "data",
        log_path=tmp_path / "server.log",
    ) as server:
        seconds = asyncio.run(all_sessions(server.url))

    assert page_errors == []
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        from audit.ratings.models import Rating
        from audit.sampling.models import Assignment

        ids = [session.scalars(select(User.id).where(User.username == n)).one() for n in names]
        per_auditor = [
            session.scalars(select(Rating.answer_id).where(Rating.auditor_id == i, Rating.is_current)).all()
            for i in ids
        ]
        given = set(
            session.execute(
                select(
                    Rating.accuracy, Rating.completeness, Rating.relevance, Rating.coherence, Rating.sources_correct
                ).where(Rating.auditor_id.in_(ids))
            ).tuples()
        )
        pending = session.scalars(
            select(Assignment.id).where(Assignment.auditor_id.in_(ids), Assignment.status != "submitted")
        ).all()
    engine.dispose()
    assert [len(set(r)) for r in per_auditor] == [ITEMS_PER_SESSION] * BROWSER_SESSIONS
    assert [len(r) for r in per_auditor] == [ITEMS_PER_SESSION] * BROWSER_SESSIONS
    assert pending == []
    assert given == {(4, 3, 5, 2, "yes")}  # what the keys said, for every rating
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    report(
        "load",
        f"browser: {BROWSER_SESSIONS} Chromium sessions x {ITEMS_PER_SESSION} ratings on one Streamlit server (SQLite) "
        f"in {seconds:.1f} s; submit-to-next-item p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms; "
        f"every rating stored once; keys typed during a rerun were lost and typed again {len(lost_keystrokes)} times "
        f"({', '.join(f'{k}: {n}' for k, n in sorted(Counter(lost_keystrokes).items())) or 'never'})",
    )
