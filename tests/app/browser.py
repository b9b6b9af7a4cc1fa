"""Real-browser harness: run ``streamlit run app/streamlit_app.py`` on a free port against a given
database, and drive it with Playwright in the system Chromium.

Used by ``tests/app/test_browser.py`` and for the README's screenshots (``python -m tests.app.browser
screenshots``); the submit-latency figure is ``make bench``'s (``app/bench/scenarios/browser.py``). Nothing
here is mocked: it is the server and the browser a user gets.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.bench.scenarios.browser import CHROMIUM, free_port
from app.bench.scenarios.browser import unavailable as chromium_missing_reason

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT_S = 60


@dataclass
class StreamlitServer:
    """A ``streamlit run`` process; ``url`` is where it listens once ``start()`` returned."""

    script: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)  # more `streamlit run` options
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(self.script),
            "--server.port",
            str(self.port),
            "--server.address",
            "127.0.0.1",
            *self.extra_args,
        ]
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        # cwd = repo root: Streamlit reads .streamlit/config.toml from the working directory
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}; log: {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"streamlit did not become healthy within {STARTUP_TIMEOUT_S} s; log: {self.log_path}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def streamlit_server(
    script: Path, *, database_url: str, data_dir: Path, log_path: Path | None = None
) -> Iterator[StreamlitServer]:
    server = StreamlitServer(
        script=script,
        env={
            "AUDITLOOP_DATABASE_URL": database_url,
            "AUDITLOOP_DATA_DIR": str(data_dir),
            "AUDITLOOP_DEMO_MODE": "false",
        },
        log_path=log_path,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (the system one; Playwright downloads nothing)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class CountingHTTPServer:
    """A tiny HTTP server on 127.0.0.1 that counts every request it gets (the canary for leaks)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                outer.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CountingHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_for_app_idle(page: Any, timeout_ms: int = 20_000) -> None:
    """Wait until Streamlit has finished the current script run (and so removed stale elements).

    Call it after waiting for something the run draws: right after an action, the rerun may not
    have started yet and the app still reads as idle."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=timeout_ms)


def log_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Open the app and log in through the real form; returns once the sidebar shows the user."""
    page.goto(base_url)
    page.locator('input[aria-label="Username"]').fill(username)
    page.locator('input[aria-label="Password"]').fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(f"({username})").first.wait_for(timeout=20_000)


# ----------------------------------------------------------------------------- a small company

AUDITORS = ("auditor1", "auditor2", "auditor3", "auditor4")


@dataclass(frozen=True)
class SeededCompany:
    """What ``seed_company`` created, for the tests to log in and look things up."""

    password: str
    users: dict[str, int]  # username -> id
    review_item_id: int  # an open Legal review item (of the Legal "evil" answer) for sme.legal
    hr_review_item_id: int  # an open HR review item (an ordinary answer) for sme.hr
    evil_answer_ids: tuple[int, ...]  # answers whose text tries to make the browser fetch the canary
    evil_auditor: str  # whose next item is the HR "evil" answer
    keyboard_auditor: str  # an auditor with at least three pending items and no evil one first
    sample_date: str


def evil_answer_text(canary_port: int, department: str) -> str:
    """Model output that would make a browser fetch from the canary if any of it were rendered."""
    base = f"http://127.0.0.1:{canary_port}"
    return (
        f"{department}: the retention period is ten years.\n"
        f"![tracking pixel]({base}/markdown-image.png)\n"
        f"See [the policy]({base}/markdown-link) and <{base}/autolink>.\n"
        f'<img src="{base}/html-img.png" alt="x"> <a href="{base}/html-link">more</a>\n'
        f"<iframe src=\"{base}/iframe\"></iframe><script>fetch('{base}/script')</script>"
    )


def seed_company(database_url: str, *, canary_port: int = 9, answers_per_department: int = 5) -> SeededCompany:
    """Departments, one user per role and four auditors, documents with an outdated version, a day of
    answers sampled and assigned for today (two of them "evil": their text links to the canary port),
    two weeks of simulated ratings for the dashboards, and an open review item — written through the
    real services wherever one exists. Deterministic apart from password salts."""
    import datetime as dt

    from sqlalchemy import func, select

    from audit.answers.models import Answer
    from audit.db import make_engine, make_session_factory
    from audit.org import repository as org_repo
    from audit.org import service as org_service
    from audit.policy import service as policy_service
    from audit.ratings import service as ratings_service
    from audit.review import routing
    from audit.review import service as review_service
    from audit.sampling import service as sampling_service
    from audit.sampling.models import Assignment, GoldItem
    from audit.sampling.policy import SamplingPolicy
    from tests import factories

    password = factories.TEST_PASSWORD
    engine = make_engine(database_url)
    session = make_session_factory(engine)()
    try:
        departments = {name: factories.department(session, name) for name in ("Legal", "HR", "Finance")}
        users = {}
        for username, role, covered in (
            ("admin", "admin", ()),
            ("lead", "lead", ()),
            ("sme.legal", "sme", ("Legal",)),
            ("sme.hr", "sme", ("HR",)),
            *((name, "auditor", ()) for name in AUDITORS),
        ):
            users[username] = org_service.create_user(
                session, actor=None, username=username, role=role, password=password, departments=covered
            )
        model = factories.model_version(session, "v0", alias="champion")
        documents = {}
        for name, dept in departments.items():
            family = f"{name.upper()}-POL"
            old = factories.document(session, dept=dept, family=family, version=1, title=f"{name} Policy", body="v1.")
            new = factories.document(
                session,
                dept=dept,
                family=family,
                version=2,
                title=f"{name} Policy",
                body=f"{name} policy, version 2. " + "Signed contracts are kept for ten years. " * 12,
            )
            old.superseded_by_id = new.id
            documents[name] = (old, new)
        session.flush()

        today = dt.datetime.now(dt.UTC).date()
        yesterday_noon = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
        evil: dict[str, int] = {}
        for index in range(answers_per_department):
            for name, dept in departments.items():
                old, new = documents[name]
                is_evil = index == 0 and name in ("Legal", "HR")
                answer = factories.answer(
                    session,
                    dept=dept,
                    model=model,
                    question=(
                        f"How long do we keep {name.lower()} records? ![q](http://127.0.0.1:{canary_port}/question.png)"
                        if is_evil
                        else f"How long do we keep {name.lower()} records ({index})?"
                    ),
                    text=evil_answer_text(canary_port, name) if is_evil else f"{name} answer {index}: ten years.",
                    created_at=yesterday_noon + dt.timedelta(minutes=index),
                    confidence=-0.5 - index * 0.1,
                    sources=[
                        {"document_id": new.external_id, "department": name, "score": 0.8},
                        {"document_id": old.external_id, "department": name, "score": 0.5},
                    ],
                )
                if is_evil:
                    evil[name] = answer.id

        # two weeks of simulated ratings so the dashboards have history (HR rated lower, some flags,
        # every fourth day's answers gold items with expected scores, for the calibration view)
        for day in range(2, 16):
            created = dt.datetime.combine(today - dt.timedelta(days=day), dt.time(10), tzinfo=dt.UTC)
            for name, dept in departments.items():
                past = factories.answer(session, dept=dept, model=model, created_at=created - dt.timedelta(hours=2))
                if day % 4 == 0:
                    session.add(
                        GoldItem(
                            answer_id=past.id,
                            question=past.question,
                            question_hash=factories.sha(past.question),
                            reference_answer="The reference answer.",
                            department_id=dept.id,
                            expected_accuracy=4,
                            expected_completeness=4,
                            expected_relevance=5,
                            expected_coherence=4,
                        )
                    )
                flagged = name == "HR" and day % 3 == 0
                for auditor, harshness in (("auditor2", 0), ("auditor3", 1)):
                    score = max(1, min(5, (2 if name == "HR" else 4) + day % 2 - harshness))
                    factories.rating(
                        session,
                        ans=past,
                        auditor=users[auditor],
                        accuracy=score,
                        completeness=score,
                        relevance=5,
                        coherence=4,
                        origin="simulated",
                        created_at=created,
                        bias_flag=flagged,
                        favoured_department_id=departments["Legal"].id if flagged else None,
                        disfavoured_department_id=dept.id if flagged else None,
                    )

        policy_service.save(
            session,
            actor=None,
            name="sampling",
            settings=SamplingPolicy(
                sample_size=3 * answers_per_department, per_department_min=1, gold_share=0.0, overlap_share=0.0
            ),
        )
        sampling_service.draw_sample(session, actor=None, sample_date=today)

        def holder(answer_id: int) -> str:
            auditor_id = session.scalar(select(Assignment.auditor_id).where(Assignment.answer_id == answer_id))
            return next(name for name, user in users.items() if user.id == auditor_id)

        def skip_until(username: str, answer_id: int) -> Any:
            auditor = org_repo.user_by_id(session, users[username].id)
            item = sampling_service.next_item(session, actor=auditor)
            while item is not None and item.answer_id != answer_id:
                ratings_service.skip_assignment(
                    session, actor=auditor, assignment_id=item.assignment_id, reason="seeded skip"
                )
                item = sampling_service.next_item(session, actor=auditor)
            assert item is not None, f"seed: {answer_id} is not in {username}'s queue"
            return auditor, item

        # an imported (assignment-less) low rating of the Legal evil answer: routing opens a review item
        factories.rating(
            session,
            ans=session.get(Answer, evil["Legal"]),
            auditor=users["auditor1"],
            accuracy=1,
            completeness=2,
            relevance=3,
            coherence=4,
            origin="import",
            sources_correct="no",
            suggested_correction="Signed contracts are kept for ten years (Legal Policy, version 2).",
            created_at=dt.datetime.now(dt.UTC),
        )
        routing.route_answer(session, evil["Legal"])
        # and an ordinary HR answer rated low the same way, for sme.hr
        hr_answer = session.scalar(
            select(Answer.id)
            .where(Answer.asker_department_id == departments["HR"].id, Answer.id != evil["HR"])
            .order_by(Answer.id)
        )
        factories.rating(
            session,
            ans=session.get(Answer, hr_answer),
            auditor=users["auditor1"],
            accuracy=2,
            completeness=2,
            relevance=4,
            coherence=4,
            origin="import",
            suggested_correction="HR records are kept for six years after employment ends.",
            created_at=dt.datetime.now(dt.UTC),
        )
        routing.route_answer(session, hr_answer)
        # the HR evil answer becomes the next item of whoever has it
        evil_auditor = holder(evil["HR"])
        skip_until(evil_auditor, evil["HR"])

        pending = {
            name: session.scalar(
                select(func.count()).where(Assignment.auditor_id == users[name].id, Assignment.status == "pending")
            )
            for name in AUDITORS
            if name != evil_auditor
        }
        keyboard_auditor = max(pending, key=lambda name: (pending[name], name))
        if pending[keyboard_auditor] < 3:
            raise RuntimeError(f"seed: no auditor has three pending items ({pending})")
        queue = review_service.review_queue(session, actor=None)
        session.commit()
        return SeededCompany(
            password=password,
            users={name: user.id for name, user in users.items()},
            review_item_id=next(e.item_id for e in queue if e.answer_id == evil["Legal"]),
            hr_review_item_id=next(e.item_id for e in queue if e.answer_id == hr_answer),
            evil_answer_ids=tuple(evil.values()),
            evil_auditor=evil_auditor,
            keyboard_auditor=keyboard_auditor,
            sample_date=today.isoformat(),
        )
    finally:
        session.close()
        engine.dispose()


# ----------------------------------------------------------------------------- submit latency


# (user, page titles) in the order a README tells the story; the first page is where the login lands
SCREENSHOT_TOUR = (
    ("auditor1", ("Rate answers", "My ratings")),
    ("sme.hr", ("Review queue",)),
    ("lead", ("Quality", "Fairness", "Agreement", "Fix pipeline", "Models")),
    ("admin", ("Users", "Departments", "Policies", "Audit log")),
)


def _demo_credentials(path: Path) -> dict[str, str]:
    """username -> password from the demo seeder's credentials file (``username role password [dept]``)."""
    accounts = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            accounts[fields[0]] = fields[2]
    return accounts


def take_screenshots(out_dir: Path, work_dir: Path) -> list[Path]:
    """Seed the demo company (``auditloop demo seed``, today's sample, routing) into a fresh data
    directory and photograph every page for its role: the README's pictures, from realistic data."""
    env = {
        **os.environ,
        "AUDITLOOP_DATA_DIR": str(work_dir),
        "AUDITLOOP_DATABASE_URL": f"sqlite:///{work_dir / 'demo.db'}",
    }
    auditloop = [sys.executable, "-m", "app.cli.main"]
    for step in (["db", "upgrade"], ["demo", "seed"], ["sample"], ["route"]):
        subprocess.run([*auditloop, *step], cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    accounts = _demo_credentials(work_dir / "demo-credentials.txt")
    out_dir.mkdir(parents=True, exist_ok=True)
    taken = []
    with (
        streamlit_server(
            REPO_ROOT / "app" / "streamlit_app.py",
            database_url=env["AUDITLOOP_DATABASE_URL"],
            data_dir=work_dir,
            log_path=work_dir / "app.log",
        ) as server,
        chromium() as browser,
    ):
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(server.url)
        page.locator('input[aria-label="Username"]').wait_for()
        settle(page)
        page.screenshot(path=str(out_dir / "login.png"))
        taken.append(out_dir / "login.png")
        page.close()
        for username, titles in SCREENSHOT_TOUR:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            log_in(page, server.url, username, accounts[username])
            for title in titles:
                link = page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title)
                if link.count():  # a role with one page has no menu: it is already there
                    link.first.click()
                page.get_by_role("heading", name=title.split()[0], exact=False).first.wait_for(timeout=30_000)
                settle(page)
                path = out_dir / f"{username.split('.')[0]}-{title.lower().replace(' ', '-')}.png"
                page.screenshot(path=str(path))
                taken.append(path)
            page.close()
    return taken


def settle(page: Any) -> None:
    """Until the run is over and every element has painted (skeletons gone, charts drawn)."""
    page.wait_for_timeout(300)
    wait_for_app_idle(page)
    page.wait_for_function("() => !document.querySelector('[data-testid*=\"Skeleton\"]')", timeout=20_000)
    page.wait_for_timeout(500)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="The auditloop app in a real browser.")
    sub = parser.add_subparsers(dest="command", required=True)
    shots_parser = sub.add_parser("screenshots", help="photograph every page on the demo company (for the README)")
    shots_parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    reason = chromium_missing_reason()
    if reason:
        raise SystemExit(f"cannot run the browser: {reason}")
    with tempfile.TemporaryDirectory(prefix="auditloop-screenshots-") as folder:
        for path in take_screenshots(args.out, Path(folder)):
            print(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


if __name__ == "__main__":
    main()
