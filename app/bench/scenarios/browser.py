"""Browser round trip in real Chromium against the real Streamlit server: an auditor's submit → the next
item fully rendered, vs the same round trip in a minimal Streamlit form app (``app/bench/floor_app.py``);
and a lead's first full render of the Quality dashboard.

Measured at the largest scale on SQLite only: the database's share of a round trip is measured at the
service layer on both backends (the per-item figures); what the browser adds is Streamlit's rerun and
rendering, which does not depend on the backend, and one more Streamlit + Chromium pair per backend and
scale would only add minutes and noise on a small machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.bench.context import Context
from app.bench.harness import Figure, percentile, with_floor
from app.bench.scenarios.per_item import BROWSER_RESERVED_AUDITORS
from audit.org import service as org_service
from audit.org.models import User
from audit.sampling.models import Assignment

REPO_ROOT = Path(__file__).resolve().parents[3]
APP_SCRIPT = REPO_ROOT / "app" / "streamlit_app.py"
FLOOR_SCRIPT = REPO_ROOT / "app" / "bench" / "floor_app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
STARTUP_TIMEOUT_S = 90
STEP_TIMEOUT_MS = 60_000
WARMUP = 2
CLICK_ATTEMPTS = 3
CLICK_CHECK_MS = 5_000
DIMENSIONS = ("accuracy", "completeness", "relevance", "coherence")
MEDIAN_TARGET_MS = 300.0
P95_TARGET_MS = 500.0
FLOOR_RATIO_TARGET = 1.5
DASHBOARD_TARGET_S = 2.0
_ITEM = re.compile(r"Item (\d+) of (\d+)")


def unavailable() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def streamlit_server(script: Path, env: dict[str, str], log_path: Path, *, cwd: Path = REPO_ROOT) -> Iterator[str]:
    """``streamlit run SCRIPT`` on a free port from ``cwd`` (a source tree's root: its
    .streamlit/config.toml, and its packages first on the import path); yields its URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {process.returncode}; see {log_path}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start within {STARTUP_TIMEOUT_S} s; see {log_path}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_idle(page: Any) -> None:
    """Until Streamlit has finished the current script run (its running indicator is gone)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=STEP_TIMEOUT_MS)


def _item_number(page: Any) -> int:
    locator = page.get_by_text(_ITEM).first
    locator.wait_for(timeout=STEP_TIMEOUT_MS)
    match = _ITEM.search(locator.inner_text())
    assert match is not None
    return int(match.group(1))


def _score(page: Any, dimension: str, value: int) -> None:
    """Press segment ``value`` of a scale and see it pressed (a click on a busy page can be lost: retried)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    scale = page.locator(f'[class*="st-key-rate_{dimension}_"]').first
    for _ in range(CLICK_ATTEMPTS):
        scale.locator("button").nth(value - 1).click()
        try:
            scale.locator('button[aria-checked="true"]').first.wait_for(timeout=CLICK_CHECK_MS)
            return
        except PlaywrightTimeout:
            _wait_idle(page)
    raise RuntimeError(f"the {dimension} scale did not take the value {value} after {CLICK_ATTEMPTS} clicks")


# Started in the page before each submit: the time from the press of the mouse button on "Submit rating"
# (the event's own time stamp) to the first frame that shows the next item with the script run finished,
# all on the page's clock. Timed from Python instead, each figure would also hold what Playwright does
# before it presses (finding the button by its role and name, which walks the whole page, and waiting for
# it to hold still for two frames) and its polling afterwards: ~55 ms on the rating page against ~15 ms on
# the floor's in a Chromium trace, time no user spends.
_WATCH_SUBMIT = """([next, timeoutMs]) => {
  const text = `Item ${next} of `;
  const shown = () =>
    [...document.querySelectorAll('[data-testid="stProgress"]')].some((e) => e.textContent.startsWith(text)) &&
    !document.querySelector('[data-testid="stStatusWidget"]');
  window.__benchSubmit = new Promise((resolve) => {
    let pressed = null;
    const observer = new MutationObserver(() => {
      if (pressed === null || !shown()) { return; }
      observer.disconnect();
      requestAnimationFrame(() => resolve(performance.now() - pressed));
    });
    document.addEventListener("mousedown", (event) => { pressed = event.timeStamp; }, { capture: true, once: true });
    observer.observe(document.body, { childList: true, subtree: true, characterData: true });
    setTimeout(() => { observer.disconnect(); resolve(null); }, timeoutMs);
  });
}"""


def _round_trips(page: Any, count: int) -> list[float]:
    """Score the four scales, then time submit → the next item's page fully rendered (ms, the page's clock)."""
    times = []
    for index in range(count + WARMUP):
        number = _item_number(page)
        for dimension in DIMENSIONS:
            _score(page, dimension, 4)
        page.evaluate(_WATCH_SUBMIT, [number + 1, STEP_TIMEOUT_MS])
        page.get_by_role("button", name="Submit rating").click()
        following = page.get_by_text(re.compile(rf"Item {number + 1} of \d+"))
        error = page.locator('[data-testid="stAlert"]').filter(has_text=re.compile("."))
        following.or_(error).first.wait_for(timeout=STEP_TIMEOUT_MS)
        if not following.count():
            raise RuntimeError(f"submit of item {number} was refused: {error.first.inner_text()[:300]}")
        _wait_idle(page)
        elapsed = page.evaluate("window.__benchSubmit")
        if elapsed is None:
            raise RuntimeError(f"item {number + 1} was not seen in the page after the submit of item {number}")
        if index >= WARMUP:
            times.append(float(elapsed))
    return times


def _log_in(page: Any, url: str, username: str, password: str) -> None:
    page.goto(url)
    page.locator('input[aria-label="Username"]').fill(username)
    page.locator('input[aria-label="Password"]').fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(f"({username})").first.wait_for(timeout=STEP_TIMEOUT_MS)
    _wait_idle(page)


def _prepare_users(ctx: Context, password: str) -> tuple[list[str], dict[str, int]]:
    """Passwords for the auditors kept for the browser and for the lead; their pending item counts."""
    assert ctx.synth is not None
    reserved = ctx.synth.auditor_ids[-BROWSER_RESERVED_AUDITORS:]
    session = ctx.session()
    try:
        names = [u.username for u in session.scalars(select(User).where(User.id.in_(reserved)).order_by(User.id))]
        for username in [*names, "lead"]:
            org_service.reset_password(session, actor=None, username=username, password=password)
        pending = dict(
            session.execute(
                select(User.username, func.count())
                .join(Assignment, Assignment.auditor_id == User.id)
                .where(Assignment.status == "pending", User.id.in_(reserved))
                .group_by(User.username)
            ).all()
        )
        session.commit()
    finally:
        session.close()
    return names, {str(k): int(v) for k, v in pending.items()}


def measure(ctx: Context) -> list[Figure]:
    from playwright.sync_api import sync_playwright

    password = f"bench-{uuid.uuid4().hex}"
    auditors, pending = _prepare_users(ctx, password)
    runs = ctx.runs
    ops = min([ctx.options.browser_ops] + [pending.get(a, 0) - WARMUP for a in auditors])
    if ops < 3:
        raise RuntimeError(f"too few pending items for the browser auditors ({pending})")
    work = Path(tempfile.mkdtemp(prefix="auditloop-bench-browser-", dir=ctx.options.work_dir))
    env = {"AUDITLOOP_DATABASE_URL": ctx.db.url, "AUDITLOOP_DATA_DIR": str(work), "AUDITLOOP_DEMO_MODE": "false"}
    app_runs: list[list[float]] = []
    floor_runs: list[list[float]] = []
    dashboard: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            # both servers up at once, their runs taking turns (app/floor, then floor/app, ...): a change of
            # load on a shared machine then weighs on both instead of on whichever ran second
            with (
                streamlit_server(APP_SCRIPT, env, work / "app.log") as url,
                streamlit_server(FLOOR_SCRIPT, env, work / "floor.log") as floor_url,
            ):
                for run in range(runs):
                    for way in ("app", "floor") if run % 2 == 0 else ("floor", "app"):
                        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                        if way == "app":
                            _log_in(page, url, auditors[run % len(auditors)], password)
                            app_runs.append(_round_trips(page, ops))
                        else:
                            page.goto(floor_url)
                            _wait_idle(page)
                            floor_runs.append(_round_trips(page, ops))
                        page.context.close()
                    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                    _log_in(page, url, "lead", password)
                    started = time.perf_counter()
                    page.get_by_role("link", name="Quality").first.click()
                    page.get_by_text("All cells").first.wait_for(timeout=STEP_TIMEOUT_MS)
                    _wait_idle(page)
                    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=STEP_TIMEOUT_MS)
                    dashboard.append(time.perf_counter() - started)
                    page.context.close()
                    ctx.progress(
                        f"browser run {run + 1}/{runs}: submit → next median {statistics.median(app_runs[-1]):.0f} ms "
                        f"(floor app {statistics.median(floor_runs[-1]):.0f} ms), dashboard {dashboard[-1]:.2f} s"
                    )
        finally:
            browser.close()
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    return _figures(ctx, app_runs, floor_runs, dashboard, ops)


def _figures(
    ctx: Context, app_runs: list[list[float]], floor_runs: list[list[float]], dashboard: list[float], ops: int
) -> list[Figure]:
    notes = (
        f"{ops} submits per run, real Chromium, on the page's clock: press of Submit → first frame with the next "
        "item and the script run finished; app and floor runs take turns"
    )
    figures = []
    for q, target in ((50, MEDIAN_TARGET_MS), (95, P95_TARGET_MS)):
        figure = ctx.figure(
            f"browser submit → next item p{q}",
            "ms",
            [percentile(run, q) for run in app_runs],
            target=f"≤ {target:g} ms and ≤ {FLOOR_RATIO_TARGET:g}× the floor",
            notes=notes,
        )
        figure.met = figure.median <= target
        floor = statistics.median(percentile(run, q) for run in floor_runs)
        figures.append(with_floor(figure, floor, "minimal Streamlit form app", max_ratio=FLOOR_RATIO_TARGET))
    lead = ctx.figure(
        "lead dashboard (Quality) first full render",
        "s",
        dashboard,
        target=f"≤ {DASHBOARD_TARGET_S:g} s",
        notes="click in the menu → chart drawn and the script run finished, fresh login each run",
    )
    lead.met = lead.median <= DASHBOARD_TARGET_S
    figures.append(lead)
    return figures
