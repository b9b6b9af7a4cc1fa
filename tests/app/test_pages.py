"""The Streamlit app in AppTest: login and sessions, every page for each role that may open it, the
refusal of every page for each role that may not, and the actions the pages take — against a migrated
SQLite database seeded with a small company (``tests.app.browser.seed_company``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.orm import Session, selectinload
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from app import session as login_session
from app.components.csv_export import safe_csv
from app.components.guard import REFUSED
from app.components.inert import diff_text, escape_html, escape_markdown, text_html
from app.components.policy_form import field_help, parse_value
from app.components.sources import has_long_text, sources_html
from app.views import PAGES, PageSpec, pages_for
from audit.auditlog import repository as auditlog_repo
from audit.auditlog.models import AuditLogEntry
from audit.db import make_engine
from audit.errors import PermissionDenied, ValidationError
from audit.org import service as org_service
from audit.org.models import ROLES, Department, User
from audit.policy.models import Policy
from audit.ratings.models import DIMENSIONS, Rating
from audit.review.models import ReviewDecision, ReviewItem
from audit.sampling.models import Assignment
from audit.sampling.repository import SourceView
from tests.app.browser import SeededCompany, seed_company

APP = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
ROLE_USERS = {"auditor": "keyboard", "sme": "sme.legal", "lead": "lead", "admin": "admin"}
TIMEOUT = 30


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_component_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each AppTest scans every installed package's metadata for custom components (0.6 s here); the
    app has none (its one script goes through st.html), so the scan is skipped."""
    from streamlit.components.v2.component_manager import BidiComponentManager

    monkeypatch.setattr(BidiComponentManager, "discover_and_register_components", lambda self, **kwargs: None)


@pytest.fixture(scope="module")
def seeded_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SeededCompany]:
    """A migrated SQLite file with the small company in it, seeded once for the module."""
    path = tmp_path_factory.mktemp("seeded") / "company.db"
    shutil.copy(sqlite_template, path)
    company = seed_company(f"sqlite:///{path}")
    make_engine(f"sqlite:///{path}").dispose()
    return path, company


@pytest.fixture
def company(
    seeded_template: tuple[Path, SeededCompany], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SeededCompany]:
    """This test's own copy of the seeded database, which the app under test is pointed at."""
    template, seeded = seeded_template
    path = tmp_path / "auditloop.db"
    shutil.copy(template, path)
    monkeypatch.setenv("AUDITLOOP_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AUDITLOOP_DEMO_MODE", raising=False)
    yield seeded


@pytest.fixture
def db(company: SeededCompany, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    """A session on the test's database, to check what the pages wrote. A plain engine, not
    ``make_engine``: its BEGIN IMMEDIATE would hold the write lock the app under test needs."""
    import os

    engine = create_engine(os.environ["AUDITLOOP_DATABASE_URL"])
    session = Session(engine)
    yield session
    session.close()
    engine.dispose()


def username_for(role: str, company: SeededCompany) -> str:
    name = ROLE_USERS[role]
    return company.keyboard_auditor if name == "keyboard" else name


def app_as(company: SeededCompany, username: str | None) -> AppTest:
    """The app with ``username`` logged in the way the login page does it (None: nobody)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if username is not None:
        login_session.start(at.session_state, user_id=company.users[username], policy=login_session.AuthPolicy())
    return at


def page_app_as(company: SeededCompany, username: str, page: PageSpec) -> AppTest:
    """One page run on its own (as if reached without the navigation), with ``username`` logged in."""
    at = AppTest.from_file(str(APP.parent / page.path), default_timeout=TIMEOUT)
    login_session.start(at.session_state, user_id=company.users[username], policy=login_session.AuthPolicy())
    return at


def open_page(at: AppTest, page: PageSpec) -> AppTest:
    at.run()
    at.switch_page(page.path)
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def shown(elements: object) -> list[str]:
    """The text of st.error/st.info elements as a reader sees it (Markdown backslash escapes removed)."""
    return [re.sub(r"\\(.)", r"\1", e.value) for e in elements]  # type: ignore[attr-defined]


def log_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login.username").input(username)
    at.text_input(key="login.password").input(password)
    at.button[0].click()
    return at.run()


# ----------------------------------------------------------------------------- pure helpers


def test_session_expires_after_idle_limit_and_after_lifetime() -> None:
    state: dict[str, object] = {}
    policy = login_session.AuthPolicy(idle_timeout_minutes=30, session_lifetime_hours=12)
    login_session.start(state, user_id=7, policy=policy, now=1_000.0)
    assert login_session.check(state, now=1_000.0 + 29 * 60) == "active"
    # activity 29 minutes in renews the idle clock: 58 minutes after login is only 29 idle
    assert login_session.check(state, now=1_000.0 + 58 * 60) == "active"
    assert login_session.check(state, now=1_000.0 + 88 * 60) == "idle_expired"
    assert login_session.user_id(state) is None
    assert "30 minutes" in str(login_session.pop_notice(state))

    login_session.start(state, user_id=7, policy=policy, now=0.0)
    for minute in range(0, 12 * 60, 20):  # active all day long, never idle
        assert login_session.check(state, now=minute * 60.0) == "active"
    assert login_session.check(state, now=12 * 3600.0) == "lifetime_expired"
    assert "12-hour" in str(login_session.pop_notice(state))

    login_session.start(state, user_id=7, policy=login_session.AuthPolicy(idle_timeout_minutes=1), now=0.0)
    assert login_session.check(state, now=61.0) == "idle_expired"
    assert "after 1 minute without activity" in str(login_session.pop_notice(state))  # not "1 minutes"


def test_login_and_logout_forget_every_key_of_the_session_before() -> None:
    state: dict[str, object] = {"rate.message": ("error", "stale"), "login.password": "secret"}
    login_session.start(state, user_id=1, policy=login_session.AuthPolicy(), now=0.0)
    assert set(state) == {
        login_session.USER_ID,
        login_session.STARTED_AT,
        login_session.LAST_SEEN_AT,
        login_session.IDLE_LIMIT_S,
        login_session.LIFETIME_S,
    }
    state["rate_accuracy_3"] = 4
    login_session.end(state, notice=login_session.LOGGED_OUT_NOTICE)
    assert state == {login_session.NOTICE: login_session.LOGGED_OUT_NOTICE}


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (login_session.AuthPolicy(idle_timeout_minutes=0), "idle_timeout_minutes"),
        (login_session.AuthPolicy(session_lifetime_hours=200), "session_lifetime_hours"),
        (login_session.AuthPolicy(idle_timeout_minutes=180, session_lifetime_hours=2), "longer than"),
    ],
)
def test_auth_policy_refuses_out_of_range_limits(policy: login_session.AuthPolicy, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        policy.validate()


def test_csv_export_writes_whole_scores_as_integers() -> None:
    frame = pd.DataFrame({"accuracy": [4, None, 2], "mean": [3.5, 4.0, None]})
    assert safe_csv(frame).decode().splitlines() == ["accuracy,mean", "4,3.5", ",4.0", "2,"]


def test_csv_export_quotes_cells_a_spreadsheet_would_run_as_formulas() -> None:
    frame = pd.DataFrame(
        {
            "comment": ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\tx", "plain", None],
            "score": [1, 2, -3, 4, 5, 6, 7],
        }
    )
    lines = safe_csv(frame).decode().splitlines()
    assert lines[0] == "comment,score"
    assert [line.rsplit(",", 1)[0] for line in lines[1:]] == [
        '"\'=HYPERLINK(""http://x"")"',
        "'+1+1",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "plain",
        "",
    ]
    assert lines[3].endswith(",-3")  # numbers stay numbers, negative ones too


def test_inert_html_holds_untrusted_text_as_text_only() -> None:
    evil = '<img src="http://h/i.png" onerror="x()"> <a href=\'http://h\'>l</a> <script>f()</script> &amp; ![x](http://h/i.png)'
    block = text_html(evil)
    assert "<img" not in block and "<a " not in block and "<script" not in block and "'" not in block[20:]
    assert block == f'<div class="al-text">{escape_html(evil)}</div>'
    assert "&amp;amp;" in block  # an entity in the text stays the text of that entity
    assert text_html("") == '<div class="al-text">(empty)</div>'


def test_sources_html_escapes_what_came_from_the_database() -> None:
    source = SourceView(
        document_id=7,
        external_id='EXT-"1"',
        title="<b>Policy</b>",
        department="<i>HR</i>",
        version=2,
        outdated=True,
        score=0.5,
    )
    block = sources_html([source], {7: "<iframe src='http://h/x'></iframe> body"})
    assert "<b>" not in block and "<i>" not in block and "<iframe" not in block
    assert "&lt;b&gt;Policy&lt;/b&gt;" in block and "outdated: a newer version exists" in block
    assert "<details><summary>Full text</summary>" in block  # the full text only when opened
    assert sources_html([], {}) == '<div class="al-caption">The answer cited no sources.</div>'


def test_a_long_source_text_is_sent_in_full_only_on_demand() -> None:
    source = SourceView(
        document_id=1, external_id="D-1", title="Long", department="HR", version=1, outdated=False, score=None
    )
    body = "word " * 10_000  # 50,000 characters
    cut = sources_html([source], {1: body}, full_text_chars=20_000)
    assert "The first 20,000 of 50,000 characters" in cut and len(cut) < 25_000
    assert body in sources_html([source], {1: body})  # asked for: all of it
    assert has_long_text({1: body}) and not has_long_text({1: "short"})


def test_escape_markdown_leaves_no_markup_and_one_line() -> None:
    escaped = escape_markdown("![x](http://h/i.png) [l](u) <b>*a*</b> :red[x]\nnext", max_length=500)
    assert "\n" not in escaped
    for special in "![]()<>*:":
        assert all(escaped[i - 1] == "\\" for i, c in enumerate(escaped) if c == special)


def test_escape_markdown_breaks_bare_urls_and_addresses() -> None:
    """GFM links bare URLs and addresses after the escapes are resolved: a word joiner breaks each."""
    escaped = escape_markdown("https://a.example/x HTTP://b.example www.c.example d@e.example", max_length=500)
    literal = re.sub(r"\\(.)", r"\1", escaped)  # the text Markdown parses it into
    assert literal.replace("\u2060", "") == "https://a.example/x HTTP://b.example www.c.example d@e.example"
    assert not re.search(r"(?i)https?://|www\.|@[-\w]", literal)


def test_diff_of_one_paragraph_answers_is_by_sentence() -> None:
    diff = diff_text("Keep it 5 years. Ask HR.", "Keep it 10 years. Ask HR.")
    assert "-Keep it 5 years." in diff and "+Keep it 10 years." in diff
    assert " Ask HR." in diff


def test_policy_form_parses_text_into_the_field_type() -> None:
    assert parse_value("threshold", "", float | None) is None
    assert parse_value("threshold", "-1.5", float | None) == -1.5
    assert parse_value("kinds", '["add_example"]', list[str]) == ["add_example"]
    assert parse_value("target", "uniform", str | dict[str, float]) == "uniform"
    assert parse_value("target", '{"HR": 1.0}', str | dict[str, float]) == {"HR": 1.0}
    with pytest.raises(ValidationError, match="kinds: not valid JSON"):
        parse_value("kinds", "[add_example", list[str])
    with pytest.raises(ValidationError, match="threshold: 'low' is not a number"):
        parse_value("threshold", "low", float | None)
    assert field_help(login_session.AuthPolicy)["max_failed_logins"] == (
        "this many wrong passwords in a row lock the account (a successful login or a reset starts the count again)"
    )

    @dataclasses.dataclass
    class Uncommented:
        limit: int = 3

    assert field_help(Uncommented) == {}  # no comments above its fields: no help invented


def test_pages_for_follows_the_permission_matrix() -> None:
    def titles_for(role: str) -> list[str]:
        return [p.title for p in pages_for(User(role=role, active=True, username=role))]

    assert titles_for("auditor") == ["Rate answers", "My ratings"]
    assert titles_for("sme") == ["Review queue"]
    assert "Users" not in titles_for("lead") and "Quality" in titles_for("lead")
    assert "Users" in titles_for("admin") and "Rate answers" not in titles_for("admin")
    assert pages_for(User(role="admin", active=False, username="gone")) == []
    assert pages_for(None) == []


def test_reading_the_audit_log_is_refused_to_auditors_and_smes(db: Session, company: SeededCompany) -> None:
    for username in (company.keyboard_auditor, "sme.legal"):
        with pytest.raises(PermissionDenied):
            auditlog_repo.entries(db, actor=db.get(User, company.users[username]))
    assert auditlog_repo.entries(db, actor=db.get(User, company.users["lead"]), action_prefix="user.")


# ----------------------------------------------------------------------------- login and the session


def test_logged_out_visitor_sees_only_the_login_form(company: SeededCompany) -> None:
    at = app_as(company, None).run()
    assert_clean(at)
    assert titles(at) == ["auditloop"]
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.sidebar.button


def test_wrong_password_and_unknown_user_get_the_same_message(company: SeededCompany, db: Session) -> None:
    wrong_password = log_in(app_as(company, None).run(), "lead", "not-the-password-at-all")
    unknown_user = log_in(app_as(company, None).run(), "nobody", "not-the-password-at-all")
    assert [e.value for e in wrong_password.error] == [org_service.GENERIC_FAILURE]
    assert [e.value for e in unknown_user.error] == [org_service.GENERIC_FAILURE]
    assert db.scalar(select(User.failed_logins).where(User.username == "lead")) == 1


def test_login_opens_the_roles_first_page_and_the_password_is_not_kept(company: SeededCompany) -> None:
    at = log_in(app_as(company, None).run(), "sme.legal", company.password)
    assert_clean(at)
    assert titles(at) == ["Review queue"]
    assert at.session_state[login_session.USER_ID] == company.users["sme.legal"]
    assert "login.password" not in at.session_state
    assert f"({'sme.legal'})" in at.sidebar.text[0].value


def test_five_failures_lock_the_account_even_for_the_right_password(company: SeededCompany, db: Session) -> None:
    at = app_as(company, None).run()
    for _ in range(5):
        log_in(at, "lead", "wrong-password-123")
    log_in(at, "lead", company.password)
    assert [e.value for e in at.error] == [org_service.GENERIC_FAILURE]  # the same words as an unknown name
    assert titles(at) == ["auditloop"]
    locked_until = db.scalar(select(User.locked_until).where(User.username == "lead"))
    assert locked_until is not None and locked_until > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=14)


def test_idle_session_ends_with_a_notice(company: SeededCompany) -> None:
    at = app_as(company, "lead")
    at.session_state[login_session.LAST_SEEN_AT] = time.time() - 31 * 60
    at.run()
    assert titles(at) == ["auditloop"]
    assert "30 minutes without activity" in at.info[0].value
    assert login_session.USER_ID not in at.session_state


def test_a_click_after_the_idle_limit_does_not_act(company: SeededCompany, db: Session) -> None:
    at = app_as(company, company.keyboard_auditor).run()
    for dimension in ("accuracy", "completeness", "relevance", "coherence"):
        next(w for w in at.segmented_control if w.key.startswith(f"rate_{dimension}_")).set_value(4)
    at.session_state[login_session.LAST_SEEN_AT] = time.time() - 31 * 60
    next(b for b in at.button if b.key and b.key.startswith("rate_submit_")).click()
    at.run()  # the submit callback runs before the page's own session check
    assert titles(at) == ["auditloop"]
    assert db.scalar(select(func.count()).select_from(Rating).where(Rating.origin == "app")) == 0


def test_session_ends_at_its_absolute_lifetime(company: SeededCompany) -> None:
    at = app_as(company, "lead")
    at.session_state[login_session.STARTED_AT] = time.time() - 12 * 3600 - 1
    at.run()
    assert titles(at) == ["auditloop"]
    assert "12-hour limit" in at.info[0].value


def test_logout_returns_to_the_login_page_and_is_audited(company: SeededCompany, db: Session) -> None:
    at = app_as(company, "lead").run()
    at.sidebar.button(key="shell.logout").click().run()
    assert titles(at) == ["auditloop"]
    assert at.info[0].value == login_session.LOGGED_OUT_NOTICE
    assert db.scalar(select(func.count()).select_from(AuditLogEntry).where(AuditLogEntry.action == "logout")) == 1


def test_deactivated_account_is_logged_out_on_its_next_click(company: SeededCompany, db: Session) -> None:
    at = app_as(company, company.keyboard_auditor).run()
    assert titles(at) == ["Rate answers"]
    org_service.set_active(db, actor=None, username=company.keyboard_auditor, active=False)
    db.commit()
    at.run()
    assert titles(at) == ["auditloop"]
    assert "no longer active" in at.info[0].value


# ----------------------------------------------------------------------------- every page, every role

ALLOWED = [
    pytest.param(role, page, id=f"{role}-{page.url_path}")
    for role in ROLES
    for page in pages_for(User(role=role, active=True, username=role))
]
REFUSED_CASES = [
    pytest.param(role, page, id=f"{role}-{page.url_path}")
    for role in ROLES
    for page in PAGES
    if page not in pages_for(User(role=role, active=True, username=role))
]


@pytest.mark.parametrize(("role", "page"), ALLOWED)
def test_page_renders_for_a_role_that_may_open_it(company: SeededCompany, role: str, page: PageSpec) -> None:
    at = open_page(app_as(company, username_for(role, company)), page)
    assert_clean(at)
    assert titles(at), f"{page.path} drew no title"
    assert REFUSED not in [e.value for e in at.error]


@pytest.mark.parametrize(("role", "page"), REFUSED_CASES)
def test_page_refuses_a_role_that_may_not_open_it(company: SeededCompany, role: str, page: PageSpec) -> None:
    # the page run directly (reached without the navigation) checks the permission itself ...
    at = page_app_as(company, username_for(role, company), page).run()
    assert_clean(at)
    assert [e.value for e in at.error] == [REFUSED]
    assert not titles(at)
    # ... and the navigation does not know the page: asking for its URL gets "page not found" and the
    # role's own first page. (AppTest has no URL bar; _page_hash is what a requested URL becomes.)
    app = app_as(company, username_for(role, company)).run()
    first_page = titles(app)
    app._page_hash = calc_hash(page.url_path)
    app.run()
    assert_clean(app)
    assert titles(app) == first_page


def test_a_page_refuses_anyone_not_logged_in(company: SeededCompany) -> None:
    at = AppTest.from_file(str(APP.parent / "views" / "users.py"), default_timeout=TIMEOUT).run()
    assert [e.value for e in at.error] == ["Please log in."]


# ----------------------------------------------------------------------------- what the pages do


def item_html(at: AppTest) -> str:
    """The rating page's inert HTML block with the question, the answer and the sources."""
    return next(h.proto.body for h in at.get("html") if "Question, asked by" in h.proto.body)


def _rate(at: AppTest, scores: dict[str, int], sources: str = "yes") -> AppTest:
    for dimension, score in scores.items():
        next(w for w in at.segmented_control if w.key.startswith(f"rate_{dimension}_")).set_value(score)
    next(w for w in at.segmented_control if w.key.startswith("rate_sources_")).set_value(sources)
    next(b for b in at.button if b.key and b.key.startswith("rate_submit_")).click()
    return at.run()


def test_auditor_rates_an_item_and_gets_the_next(company: SeededCompany, db: Session) -> None:
    auditor = company.keyboard_auditor
    at = app_as(company, auditor).run()
    assert at.progress[0].text.startswith("Item 1 of")
    first_item = item_html(at)
    at = _rate(at, {"accuracy": 4, "completeness": 3, "relevance": 5, "coherence": 2})
    assert_clean(at)
    assert at.progress[0].text.startswith("Item 2 of")
    assert item_html(at) != first_item
    # the widgets keep their keys from item to item: the next item's form starts empty all the same
    assert [w.value for w in at.segmented_control if w.key.startswith("rate_")] == [None] * 5
    # the seeded company has simulated ratings by this auditor too: the one the page wrote has origin "app"
    rating = db.scalars(select(Rating).where(Rating.auditor_id == company.users[auditor], Rating.origin == "app")).one()
    assert (rating.accuracy, rating.completeness, rating.relevance, rating.coherence) == (4, 3, 5, 2)
    assert rating.sources_correct == "yes" and rating.origin == "app" and rating.idempotency_key


def test_the_model_output_on_the_rating_page_is_escaped_text(company: SeededCompany) -> None:
    at = app_as(company, company.evil_auditor).run()
    block = item_html(at)
    assert "![tracking pixel]" in block and "&lt;img src=" in block and "&lt;script&gt;" in block
    assert not re.search(r"<(img|a|iframe|script)\b", block)


def _switch(at: AppTest, name: str, on: bool = True) -> AppTest:
    """Turn one of the rating form's switches (bias, notes, skipping) on or off; the panel reruns."""
    at.toggle(key=f"rate_{name}_item").set_value(on)
    return at.run()


def test_the_optional_fields_are_drawn_only_when_their_switch_is_on(company: SeededCompany) -> None:
    at = app_as(company, company.keyboard_auditor).run()
    optional = ("rate_favoured_", "rate_disfavoured_", "rate_comment_", "rate_correction_", "rate_skip_reason_")

    def drawn() -> set[str]:
        return {w.key for w in [*at.selectbox, *at.text_area] if w.key and w.key.startswith(optional)}

    assert drawn() == set()
    assert not [b for b in at.button if b.key and b.key.startswith("rate_skip_")]
    at = _switch(at, "bias")
    assert drawn() == {"rate_favoured_item", "rate_disfavoured_item"}
    at = _switch(at, "notes")
    at = _switch(at, "skipping")
    assert drawn() == {f"rate_{n}_item" for n in ("favoured", "disfavoured", "comment", "correction", "skip_reason")}
    assert [b.label for b in at.button if b.key and b.key.startswith("rate_skip_")] == ["Skip"]
    assert at.progress[0].text.startswith("Item 1 of")  # the same item throughout


def test_a_rating_with_a_bias_flag_and_notes_keeps_them(company: SeededCompany, db: Session) -> None:
    auditor = company.keyboard_auditor
    at = _switch(_switch(app_as(company, auditor).run(), "bias"), "notes")
    next(w for w in at.selectbox if w.key == "rate_favoured_item").select("Legal")
    next(w for w in at.selectbox if w.key == "rate_disfavoured_item").select("HR")
    next(w for w in at.text_area if w.key == "rate_comment_item").input("cites Legal's policy for an HR question")
    next(w for w in at.text_area if w.key == "rate_correction_item").input("HR records are kept for six years.")
    at = _rate(at, {"accuracy": 2, "completeness": 3, "relevance": 2, "coherence": 4})
    assert_clean(at)
    assert at.progress[0].text.startswith("Item 2 of")
    # the switches are off again for the next item
    assert [t.value for t in at.toggle if t.key in {"rate_bias_item", "rate_notes_item", "rate_skipping_item"}] == [
        False
    ] * 3
    rating = db.scalars(select(Rating).where(Rating.auditor_id == company.users[auditor], Rating.origin == "app")).one()
    assert rating.bias_flag and rating.comment == "cites Legal's policy for an HR question"
    assert rating.suggested_correction == "HR records are kept for six years."
    names = {d.id: d.name for d in db.scalars(select(Department))}
    assert (names[rating.favoured_department_id], names[rating.disfavoured_department_id]) == ("Legal", "HR")


def test_notes_hidden_again_by_their_switch_are_not_sent(company: SeededCompany, db: Session) -> None:
    auditor = company.keyboard_auditor
    at = _switch(app_as(company, auditor).run(), "notes")
    next(w for w in at.text_area if w.key == "rate_comment_item").input("second thoughts")
    at = _rate(_switch(at, "notes", on=False), {"accuracy": 4})
    assert_clean(at)
    assert [w.value for w in at.warning] == [
        "Only 1 of 4 scales are scored: submit again to send the rating as it is."
    ]  # asked once
    assert not db.scalars(
        select(Rating).where(Rating.auditor_id == company.users[auditor], Rating.origin == "app")
    ).all()
    next(b for b in at.button if b.key and b.key.startswith("rate_submit_")).click()
    at.run()
    assert_clean(at)
    assert at.progress[0].text.startswith("Item 2 of")
    rating = db.scalars(select(Rating).where(Rating.auditor_id == company.users[auditor], Rating.origin == "app")).one()
    assert rating.comment is None


def test_a_skip_empties_what_was_entered_for_the_skipped_item(company: SeededCompany) -> None:
    at = _switch(_switch(app_as(company, company.keyboard_auditor).run(), "notes"), "skipping")
    next(w for w in at.segmented_control if w.key.startswith("rate_accuracy_")).set_value(2)
    next(w for w in at.text_area if w.key.startswith("rate_comment_")).input("half typed")
    next(b for b in at.button if b.key and b.key.startswith("rate_skip_")).click()
    at.run()
    assert_clean(at)
    assert at.progress[0].text.startswith("Item 2 of")
    assert next(w for w in at.segmented_control if w.key.startswith("rate_accuracy_")).value is None
    assert not [w for w in at.text_area if w.key.startswith("rate_comment_")]  # its switch is off again
    at = _switch(at, "notes")
    assert next(w for w in at.text_area if w.key.startswith("rate_comment_")).value == ""


def test_a_long_source_shows_in_full_when_the_auditor_asks(company: SeededCompany, db: Session) -> None:
    from audit.knowledge.models import Document

    long_body = "Signed contracts are kept for ten years. " * 1_000  # 41,000 characters
    db.execute(update(Document).values(body=long_body))
    db.commit()
    at = app_as(company, company.keyboard_auditor).run()
    assert "The first 20,000 of 41,000 characters" in item_html(at)
    at.toggle(key="rate_long_sources_item").set_value(True).run()
    assert_clean(at)
    assert at.progress[0].text.startswith("Item 1 of")  # the same item
    assert long_body.strip() in item_html(at) and "The first 20,000" not in item_html(at)


def test_auditor_sees_why_an_incomplete_bias_flag_is_refused(company: SeededCompany, db: Session) -> None:
    at = _switch(app_as(company, company.keyboard_auditor).run(), "bias")
    at = _rate(at, {"accuracy": 3, "completeness": 3, "relevance": 3, "coherence": 3})
    assert at.error and "department" in shown(at.error)[0]
    assert at.progress[0].text.startswith("Item 1 of")  # still the same item, nothing stored
    assert next(w for w in at.segmented_control if w.key.startswith("rate_accuracy_")).value == 3  # kept
    assert db.scalar(select(func.count()).select_from(Rating).where(Rating.origin == "app")) == 0


def test_auditor_skips_an_item_with_a_reason(company: SeededCompany, db: Session) -> None:
    auditor = company.keyboard_auditor
    at = _switch(app_as(company, auditor).run(), "skipping")
    next(b for b in at.button if b.key and b.key.startswith("rate_skip_")).click()
    at.run()
    assert_clean(at)
    skipped = db.scalars(
        select(Assignment).where(Assignment.auditor_id == company.users[auditor], Assignment.status == "skipped")
    ).all()
    assert [a.skip_reason for a in skipped] == ["Needs knowledge I do not have"]


def _scores_in_form(at: AppTest) -> list[object]:
    """The four scales and "sources correct?" as the form holds them."""
    return [
        next(w for w in at.segmented_control if w.key == f"rate_{name}_item").value for name in (*DIMENSIONS, "sources")
    ]


def _shown_assignment(at: AppTest) -> int:
    return int(re.search(r'data-rate-item="(\d+)"', item_html(at)).group(1))  # type: ignore[union-attr]


def test_undo_of_a_submit_brings_the_rating_back_and_a_change_supersedes_it(
    company: SeededCompany, db: Session
) -> None:
    auditor = company.keyboard_auditor
    at = app_as(company, auditor).run()
    rated = _shown_assignment(at)
    at = _rate(at, {"accuracy": 2, "completeness": 2, "relevance": 3, "coherence": 4})
    assert at.progress[0].text.startswith("Item 2 of") and at.progress[0].text.endswith("Rating saved.")
    at.button(key="rate.undo").click().run()
    assert_clean(at)
    assert at.progress[0].text.startswith("Shown again: an item you rated")
    assert _shown_assignment(at) == rated
    assert _scores_in_form(at) == [2, 2, 3, 4, "yes"]  # the rating as it was sent, in the form again
    assert not at.get("toggle") or "rate_skipping_item" not in [t.key for t in at.toggle]  # a rated item: no skip
    mine = select(Rating).where(Rating.auditor_id == company.users[auditor], Rating.origin == "app")
    assert [(r.accuracy, r.is_current) for r in db.scalars(mine)] == [(2, True)]  # nothing written by the undo

    next(w for w in at.segmented_control if w.key == "rate_accuracy_item").set_value(5)
    save = next(b for b in at.button if b.key == "rate_submit_item")
    assert save.label == "Save the change"
    save.click().run()
    assert_clean(at)
    assert at.progress[0].text.startswith("Item 2 of")  # back in the queue where it was
    assert "the earlier one stays in the history" in at.progress[0].text
    db.expire_all()
    rows = db.scalars(mine.order_by(Rating.id)).all()
    assert [(r.accuracy, r.coherence, r.is_current) for r in rows] == [(2, 4, False), (5, 4, True)]
    assert rows[1].supersedes_id == rows[0].id and rows[1].assignment_id == rated


def test_undo_of_a_skip_and_previous_item_show_the_item_again(company: SeededCompany, db: Session) -> None:
    auditor = company.keyboard_auditor
    at = _rate(app_as(company, auditor).run(), {"accuracy": 4, "completeness": 4, "relevance": 4, "coherence": 4})
    first = db.scalars(
        select(Rating.assignment_id).where(Rating.auditor_id == company.users[auditor], Rating.origin == "app")
    ).one()
    skipped = _shown_assignment(at)
    at = _switch(at, "skipping")
    next(b for b in at.button if b.key == "rate_skip_item").click().run()
    assert at.progress[0].text.startswith("Item 3 of") and "Item skipped." in at.progress[0].text
    assert [e.label for e in at.expander] == ["Skipped items: 1"]

    at.button(key="rate.undo").click().run()
    assert_clean(at)
    assert at.progress[0].text.startswith("Item 2 of") and _shown_assignment(at) == skipped
    assert db.get(Assignment, skipped).status == "pending"
    assert not at.expander  # nothing skipped any more
    assert not [b for b in at.button if b.key == "rate.undo"]  # one undo, for the last action

    # Previous item: the item rated before, its rating in the form; then back to the queue
    at.button(key="rate.previous").click().run()
    assert at.progress[0].text.startswith("Shown again: an item you rated") and _shown_assignment(at) == first
    assert _scores_in_form(at) == [4, 4, 4, 4, "yes"]
    at.button(key="rate.previous").click().run()
    assert [i.value for i in at.info] == [
        "No earlier item finished today (UTC): ratings can be changed on the day they were given."
    ]
    at.button(key="rate.queue").click().run()
    assert_clean(at)
    assert at.progress[0].text.startswith("Item 2 of") and _shown_assignment(at) == skipped
    assert _scores_in_form(at) == [None] * 5  # the form is empty for the item of the queue


def test_skipped_items_are_listed_and_one_is_reopened_and_rated(company: SeededCompany, db: Session) -> None:
    auditor = company.evil_auditor  # the seed skipped the items before the evil one in this auditor's queue
    seeded_skips = db.scalars(
        select(Assignment.id).where(Assignment.auditor_id == company.users[auditor], Assignment.status == "skipped")
    ).all()
    if not seeded_skips:
        pytest.skip("the evil answer came first in this auditor's queue: nothing was skipped by the seed")
    at = app_as(company, auditor).run()
    assert [e.label for e in at.expander] == [f"Skipped items: {len(seeded_skips)}"]
    reopen = at.button(key=f"rate.reopen.{seeded_skips[0]}")
    assert any("skipped: seeded skip" in h.proto.body for h in at.get("html"))
    reopen.click().run()
    assert_clean(at)
    assert _shown_assignment(at) == seeded_skips[0] and at.progress[0].text.startswith("Item ")
    assert db.get(Assignment, seeded_skips[0]).status == "pending"
    at = _rate(at, {"accuracy": 3, "completeness": 3, "relevance": 3, "coherence": 3})
    assert_clean(at)
    db.expire_all()
    assert db.get(Assignment, seeded_skips[0]).status == "submitted"
    rating = db.scalars(select(Rating).where(Rating.assignment_id == seeded_skips[0])).one()
    assert (rating.accuracy, rating.is_current) == (3, True)
    assert _shown_assignment(at) != seeded_skips[0]  # the queue goes on


def test_auditor_edits_todays_rating_and_history_stays(company: SeededCompany, db: Session) -> None:
    auditor = company.keyboard_auditor
    _rate(app_as(company, auditor).run(), {"accuracy": 2, "completeness": 2, "relevance": 2, "coherence": 2})
    at = open_page(app_as(company, auditor), next(p for p in PAGES if p.url_path == "my-ratings"))
    assert_clean(at)
    assert all(q.startswith("How long do we keep") for q in at.dataframe[0].value["question"])
    at.selectbox(key="my_ratings.chosen").select_index(0).run()
    at.segmented_control[0].set_value(5)
    next(b for b in at.button if b.label == "Save the edit").click().run()
    assert_clean(at)
    # the page's rating and its edit (the seeded company has simulated ratings by this auditor too)
    mine = select(Rating).where(Rating.auditor_id == company.users[auditor], Rating.origin != "simulated")
    rows = db.scalars(mine.order_by(Rating.id)).all()
    assert [(r.accuracy, r.is_current) for r in rows] == [(2, False), (5, True)]
    assert rows[1].supersedes_id == rows[0].id
    # the table and the edit list show the rating as it is now, at once
    assert list(at.dataframe[0].value["Accuracy"]) == [5]
    assert at.selectbox(key="my_ratings.chosen").options[0].startswith(f"#{rows[1].id} · Acc 5 Com 2 Rel 2 Coh 2")
    assert at.selectbox(key="my_ratings.chosen").value is None


def test_sme_confirms_an_item_with_a_correction(company: SeededCompany, db: Session) -> None:
    at = open_page(app_as(company, "sme.legal"), next(p for p in PAGES if p.url_path == "review"))
    item = company.review_item_id
    assert at.selectbox(key="review.item").value.item_id == item
    at.selectbox(key=f"review.root_cause.{item}").select("outdated_source")
    at.text_area(key=f"review.corrected.{item}").input("Signed contracts are kept for ten years.")
    at.run()
    assert any("+Signed contracts are kept for ten years." in c.value for c in at.code)  # the inert diff
    at.button(key=f"review.confirm.{item}").click().run()
    assert_clean(at)
    decision = db.scalars(select(ReviewDecision).where(ReviewDecision.review_item_id == item)).one()
    assert (decision.decision, decision.root_cause) == ("confirm", "outdated_source")
    assert decision.corrected_answer == "Signed contracts are kept for ten years."
    mine = next(d for d in at.dataframe if "root cause" in d.value.columns).value  # "My decisions"
    assert list(mine[["item", "decision", "root cause"]].itertuples(index=False, name=None)) == [
        (item, "confirm", "outdated source")
    ]


def test_lead_sees_the_review_queue_but_cannot_decide(company: SeededCompany) -> None:
    at = open_page(app_as(company, "lead"), next(p for p in PAGES if p.url_path == "review"))
    assert_clean(at)
    assert not [b for b in at.button if b.key and b.key.startswith("review.confirm")]
    assert "Only SMEs of this department decide it." in [c.value for c in at.caption]


def test_a_cut_off_review_queue_says_so(company: SeededCompany, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page lists the oldest QUEUE_SHOWN items; with more waiting it says so instead of a count."""
    from audit.review import service as review_service

    at = open_page(app_as(company, "lead"), next(p for p in PAGES if p.url_path == "review"))
    waiting = len(at.dataframe[0].value)
    assert [c.value for c in at.caption][0] == f"{waiting} open or claimed items, oldest first"
    monkeypatch.setattr(review_service, "QUEUE_SHOWN", waiting - 1)
    at.run()
    assert_clean(at)
    assert len(at.dataframe[0].value) == waiting - 1
    assert at.caption[0].value.startswith(f"The oldest {waiting - 1} open or claimed items; more are waiting.")


def test_admin_creates_a_user(company: SeededCompany, db: Session) -> None:
    at = open_page(app_as(company, "admin"), next(p for p in PAGES if p.url_path == "users"))
    at.text_input(key="users.new.username").input("auditor9")
    at.text_input(key="users.new.display_name").input("Auditor Nine")
    at.text_input(key="users.new.password").input("a-long-enough-password")
    at.text_input(key="users.new.repeat").input("a-long-enough-password")
    at.button[0].click().run()
    assert_clean(at)
    created = db.scalars(select(User).where(User.username == "auditor9")).one()
    assert created.role == "auditor" and created.password_hash and created.password_hash.startswith("$argon2id$")


def test_a_password_mismatch_keeps_what_else_the_admin_typed(company: SeededCompany, db: Session) -> None:
    at = open_page(app_as(company, "admin"), next(p for p in PAGES if p.url_path == "users"))
    at.text_input(key="users.new.username").input("sme.finance")
    at.text_input(key="users.new.display_name").input("Finance Expert")
    at.selectbox(key="users.new.role").select("sme")
    at.selectbox(key="users.new.home").select("Finance")
    at.multiselect(key="users.new.covered").select("Finance")
    at.text_input(key="users.new.password").input("a-long-enough-password")
    at.text_input(key="users.new.repeat").input("a-long-enough-passwort")
    at.button[0].click().run()
    assert_clean(at)
    assert shown(at.error) == ["The two passwords differ: type them again."]
    kept = [at.text_input(key="users.new.username").value, at.text_input(key="users.new.display_name").value]
    assert kept == ["sme.finance", "Finance Expert"]
    assert (at.selectbox(key="users.new.role").value, at.selectbox(key="users.new.home").value) == ("sme", "Finance")
    assert at.multiselect(key="users.new.covered").value == ["Finance"]
    # the passwords are typed again (and never kept in the session)
    assert [at.text_input(key=f"users.new.{k}").value for k in ("password", "repeat")] == ["", ""]
    assert db.scalar(select(func.count()).select_from(User).where(User.username == "sme.finance")) == 0

    at.text_input(key="users.new.password").input("a-long-enough-password")
    at.text_input(key="users.new.repeat").input("a-long-enough-password")
    at.button[0].click().run()
    assert_clean(at)
    assert not at.error
    created = db.scalars(
        select(User).where(User.username == "sme.finance").options(selectinload(User.departments))
    ).one()
    assert (created.role, created.display_name, [d.name for d in created.departments]) == (
        "sme",
        "Finance Expert",
        ["Finance"],
    )
    # created: the form is empty for the next account
    assert at.text_input(key="users.new.username").value == "" and at.multiselect(key="users.new.covered").value == []


def test_admin_sets_the_lockout_in_the_login_policy(company: SeededCompany, db: Session) -> None:
    at = open_page(app_as(company, "admin"), next(p for p in PAGES if p.url_path == "policies"))
    at.number_input(key="policy_form.auth.max_failed_logins").set_value(3)
    at.number_input(key="policy_form.auth.lockout_minutes").set_value(60)
    at.button(key="FormSubmitter:policy_form.auth-Save policy").click().run()
    assert_clean(at)
    settings = db.get(Policy, "auth").settings
    assert (settings["max_failed_logins"], settings["lockout_minutes"]) == (3, 60)
    at.number_input(key="policy_form.auth.max_failed_logins").set_value(50)
    at.button(key="FormSubmitter:policy_form.auth-Save policy").click().run()
    assert shown(at.error) == ["auth policy: max_failed_logins must be a whole number between 1 and 20"]


def test_admin_changes_a_display_name_and_home_department(company: SeededCompany, db: Session) -> None:
    at = open_page(app_as(company, "admin"), next(p for p in PAGES if p.url_path == "users"))
    at.selectbox(key="users.target").select_index(
        next(i for i, u in enumerate(at.selectbox(key="users.target").options) if u.startswith("auditor1 "))
    ).run()
    user_id = company.users["auditor1"]
    at.text_input(key=f"users.profile.name.{user_id}").input("Auditor One")
    at.selectbox(key=f"users.profile.home.{user_id}").select("HR")
    next(b for b in at.button if b.label == "Save name and home department").click().run()
    assert_clean(at)
    user = db.scalars(select(User).where(User.username == "auditor1")).one()
    hr = db.scalars(select(Department.id).where(Department.name == "HR")).one()
    assert (user.display_name, user.home_department_id) == ("Auditor One", hr)


def test_admin_gets_the_services_message_for_a_short_password(company: SeededCompany, db: Session) -> None:
    at = open_page(app_as(company, "admin"), next(p for p in PAGES if p.url_path == "users"))
    at.text_input(key="users.new.username").input("auditor9")
    at.text_input(key="users.new.password").input("short")
    at.text_input(key="users.new.repeat").input("short")
    at.button[0].click().run()
    assert shown(at.error) == ["password: must be at least 12 characters"]
    assert db.scalar(select(func.count()).select_from(User).where(User.username == "auditor9")) == 0


def test_admin_saves_a_policy_and_an_invalid_one_is_refused(company: SeededCompany, db: Session) -> None:
    at = open_page(app_as(company, "admin"), next(p for p in PAGES if p.url_path == "policies"))
    assert_clean(at)
    at.number_input(key="policy_form.routing.low_accuracy_max").set_value(3)
    at.button(key="FormSubmitter:policy_form.routing-Save policy").click().run()
    assert_clean(at)
    assert db.get(Policy, "routing").settings["low_accuracy_max"] == 3

    at.number_input(key="policy_form.routing.disagreement_min").set_value(9)
    at.button(key="FormSubmitter:policy_form.routing-Save policy").click().run()
    assert "disagreement_min" in shown(at.error)[0]
    db.expire_all()
    assert db.get(Policy, "routing").settings["disagreement_min"] == 2


def test_admin_adds_a_department(company: SeededCompany, db: Session) -> None:
    at = open_page(app_as(company, "admin"), next(p for p in PAGES if p.url_path == "departments"))
    at.text_input[0].input("Procurement")
    at.button[0].click().run()
    assert_clean(at)
    assert any(row == "Procurement" for row in at.dataframe[0].value["department"])


def test_audit_log_lists_the_seeded_account_creations(company: SeededCompany) -> None:
    at = open_page(app_as(company, "admin"), next(p for p in PAGES if p.url_path == "audit-log"))
    at.selectbox(key="audit_log.action").select("user").run()
    assert_clean(at)
    log = at.dataframe[0].value
    assert set(log["action"]) == {"user.create"}
    assert len(log) == len(company.users)


def _confirm_as_sme(
    db: Session, company: SeededCompany, *, root_cause: str, corrected_answer: str | None = None
) -> None:
    from audit.review import service as review_service

    sme = db.get(User, company.users["sme.hr"])
    item = company.hr_review_item_id
    version = review_service.review_item_detail(db, actor=sme, item_id=item).row_version
    review_service.confirm(
        db,
        actor=sme,
        item_id=item,
        root_cause=root_cause,
        corrected_answer=corrected_answer,
        note=None,
        expected_row_version=version,
    )


def test_an_empty_review_queue_says_whether_the_filters_or_the_queue_are_empty(
    company: SeededCompany, db: Session
) -> None:
    at = open_page(app_as(company, "sme.legal"), next(p for p in PAGES if p.url_path == "review"))
    at.multiselect(key="review.reasons").select("gold_miss").run()
    assert_clean(at)
    assert [i.value for i in at.info] == ["Nothing matches these filters; 1 open or claimed items without them."]
    db.execute(update(ReviewItem).values(status="dismissed"))
    db.commit()
    at.multiselect(key="review.reasons").unselect("gold_miss").run()
    assert [i.value for i in at.info] == ["The queue is empty: nothing to review."]


def test_sme_claims_and_releases_an_item_in_the_page(company: SeededCompany, db: Session) -> None:
    item = company.review_item_id
    at = open_page(app_as(company, "sme.legal"), next(p for p in PAGES if p.url_path == "review"))
    at.button(key=f"review.claim.{item}").click().run()
    assert_clean(at)
    state = db.execute(select(ReviewItem.status, ReviewItem.claimed_by_id).where(ReviewItem.id == item)).one()
    assert tuple(state) == ("claimed", company.users["sme.legal"])
    assert at.button(key=f"review.claim.{item}").label == "Release"
    at.button(key=f"review.claim.{item}").click().run()
    assert_clean(at)
    db.expire_all()
    state = db.execute(select(ReviewItem.status, ReviewItem.claimed_by_id).where(ReviewItem.id == item)).one()
    assert tuple(state) == ("open", None)


def test_sme_bulk_dismisses_the_ticked_items(company: SeededCompany, db: Session) -> None:
    at = open_page(app_as(company, "sme.legal"), next(p for p in PAGES if p.url_path == "review"))
    # AppTest cannot click cells: a keyed data_editor takes its edits through the session state
    at.session_state["review.bulk_editor"] = {
        "edited_rows": {0: {"dismiss": True}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.text_input(key="review.bulk_note").input("Duplicate of an item already fixed.")
    at.button(key="FormSubmitter:review.bulk-Dismiss the ticked items").click().run()
    assert_clean(at)
    decision = db.scalars(select(ReviewDecision).where(ReviewDecision.review_item_id == company.review_item_id)).one()
    assert (decision.decision, decision.note) == ("dismiss", "Duplicate of an item already fixed.")


def test_lead_applies_a_waiting_fix_only_after_confirming(company: SeededCompany, db: Session) -> None:
    from audit.fixes import service as fixes_service
    from audit.fixes.models import DataFix

    _confirm_as_sme(db, company, root_cause="department_bias")  # a rebalance: the policy waits for a lead
    fixes_service.propose_fixes(db)
    db.commit()
    fix_id = db.scalars(select(DataFix.id).where(DataFix.status == "proposed")).one()

    at = open_page(app_as(company, "lead"), next(p for p in PAGES if p.url_path == "pipeline"))
    at.session_state["pipeline.fixes"] = {"edited_rows": {0: {"select": True}}, "added_rows": [], "deleted_rows": []}
    at.run()
    at.button(key="confirm.pipeline.apply.ask").click().run()
    assert db.scalar(select(DataFix.status).where(DataFix.id == fix_id)) == "proposed"  # asked, not done
    at.button(key="confirm.pipeline.apply.yes").click().run()
    assert_clean(at)
    db.expire_all()
    fix = db.get(DataFix, fix_id)
    assert fix is not None and fix.status == "applied" and fix.decided_by_id == company.users["lead"]


def test_fixes_waiting_for_automatic_application_are_shown_as_such(company: SeededCompany, db: Session) -> None:
    from audit.fixes import service as fixes_service
    from audit.fixes.models import DataFix

    _confirm_as_sme(db, company, root_cause="hallucination", corrected_answer="HR records are kept for six years.")
    fixes_service.propose_fixes(db)
    db.commit()
    kinds = db.scalars(select(DataFix.kind).where(DataFix.status == "proposed")).all()
    assert "add_example" in kinds  # a kind the default policy applies without a lead

    at = open_page(app_as(company, "lead"), next(p for p in PAGES if p.url_path == "pipeline"))
    assert_clean(at)
    waiting = [i.value for i in at.info if "wait for automatic application" in i.value]
    assert waiting and waiting[0].startswith(f"{len(kinds)} proposed fixes")
    assert any(c.value.startswith("No fix waits for a lead") for c in at.caption)


def test_lead_queues_one_retraining_job(company: SeededCompany, db: Session) -> None:
    from audit.knowledge import datasets
    from audit.modelops.models import TrainingJob

    datasets.create_version(db, actor=None, change_log=[{"kind": "seed", "note": "test"}])
    db.commit()
    at = open_page(app_as(company, "lead"), next(p for p in PAGES if p.url_path == "models"))
    ask = at.button(key="confirm.models.queue.ask")
    assert ask.disabled and "Say why first" in (ask.help or "")  # there before a reason is typed
    at.text_input(key="models.reason").input("HR corrections applied")
    at.run()
    assert not at.button(key="confirm.models.queue.ask").disabled
    at.button(key="confirm.models.queue.ask").click().run()
    at.button(key="confirm.models.queue.yes").click().run()
    assert_clean(at)
    jobs = db.scalars(select(TrainingJob)).all()
    assert [(j.status, j.trigger_reason, j.requested_by_id) for j in jobs] == [
        ("queued", "HR corrections applied", company.users["lead"])
    ]
    # a second request while one is queued is refused with the service's one line
    at.button(key="confirm.models.queue.ask").click().run()
    at.button(key="confirm.models.queue.yes").click().run()
    assert at.error and "already queued or running" in shown(at.error)[0]
    assert db.scalar(select(func.count()).select_from(TrainingJob)) == 1


@pytest.mark.postgres
@pytest.mark.slow
def test_every_page_renders_and_an_item_is_rated_on_postgresql(
    migrated_postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = seed_company(migrated_postgres_url)
    monkeypatch.setenv("AUDITLOOP_DATABASE_URL", migrated_postgres_url)
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(tmp_path / "data"))
    try:
        for role in ROLES:
            for page in pages_for(User(role=role, active=True, username=role)):
                at = open_page(app_as(seeded, username_for(role, seeded)), page)
                assert_clean(at)
        at = _rate(
            app_as(seeded, seeded.keyboard_auditor).run(),
            {"accuracy": 4, "completeness": 4, "relevance": 4, "coherence": 4},
        )
        assert_clean(at)
        assert at.progress[0].text.startswith("Item 2 of")
    finally:
        import streamlit as st

        st.cache_resource.clear()  # forget the cached engine of a database that is dropped after the test


def test_auditor_with_nothing_left_is_told_so(company: SeededCompany, db: Session) -> None:
    auditor = db.get(User, company.users[company.keyboard_auditor])
    for assignment in db.scalars(
        select(Assignment).where(Assignment.auditor_id == auditor.id, Assignment.status == "pending")
    ):
        assignment.status, assignment.skip_reason = "skipped", "test"
    db.commit()
    at = app_as(company, company.keyboard_auditor).run()
    assert_clean(at)
    assert len(at.success) == 1 and at.success[0].value.startswith("Nothing left to rate: all ")
    assert at.success[0].value.endswith("of your items in today's sample are done. Thank you!")
    assert not at.get("form")


def test_auditor_who_finished_an_earlier_sample_is_told_nothing_is_left(company: SeededCompany, db: Session) -> None:
    """Everything of an older sample done and no sample today: "Nothing left to rate", and why nothing
    new came (not only "no sample has been drawn")."""
    from audit.sampling.models import SampleBatch

    today = dt.datetime.now(dt.UTC).date()
    db.execute(update(SampleBatch).values(sample_date=today - dt.timedelta(days=2)))
    auditor = db.get(User, company.users[company.keyboard_auditor])
    mine = db.scalars(select(Assignment).where(Assignment.auditor_id == auditor.id)).all()
    for assignment in mine:
        assignment.status, assignment.skip_reason = "skipped", "test"
    db.commit()
    at = app_as(company, company.keyboard_auditor).run()
    assert_clean(at)
    assert [s.value for s in at.success] == [
        f"Nothing left to rate: all {len(mine)} of your items in the sample of "
        f"{today - dt.timedelta(days=2):%Y-%m-%d} are done. Thank you!"
    ]
    assert len(at.info) == 1 and at.info[0].value.startswith(f"No sample has been drawn for today ({today:%Y-%m-%d})")


def _new_auditor(db: Session, username: str) -> None:
    org_service.create_user(db, actor=None, username=username, role="auditor", password="a-long-enough-password")
    db.commit()


def test_a_new_auditor_is_told_that_nothing_is_assigned_to_them(company: SeededCompany, db: Session) -> None:
    _new_auditor(db, "auditor9")
    users = {**company.users, "auditor9": db.scalars(select(User.id).where(User.username == "auditor9")).one()}
    at = app_as(dataclasses.replace(company, users=users), "auditor9").run()
    assert_clean(at)
    assert not at.success and "has nothing assigned to you" in at.info[0].value


def test_with_no_sample_today_the_auditor_is_told_and_the_lead_draws_it(company: SeededCompany, db: Session) -> None:
    from audit.answers.models import Answer
    from audit.sampling.models import SampleBatch

    today = dt.datetime.now(dt.UTC).date()
    db.execute(update(SampleBatch).values(sample_date=today - dt.timedelta(days=1)))  # today's is yesterday's now
    # answers from yesterday, not sampled yet, for today's sample
    template = db.scalars(select(Answer).order_by(Answer.id)).first()
    assert template is not None
    for n in range(3):
        db.add(
            Answer(
                external_id=f"fresh-{n}",
                question=f"A fresh question {n}?",
                answer_text="A fresh answer.",
                asker_department_id=template.asker_department_id,
                model_version_id=template.model_version_id,
                sources=[],
                cites_other_department=False,
                confidence=-1.0,
                latency_ms=100,
                created_at=dt.datetime.combine(today - dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC),
                content_hash=f"fresh-{n}",
            )
        )
    _new_auditor(db, "auditor9")
    users = {**company.users, "auditor9": db.scalars(select(User.id).where(User.username == "auditor9")).one()}
    with_new = dataclasses.replace(company, users=users)
    at = app_as(with_new, "auditor9").run()
    assert_clean(at)
    assert "No sample has been drawn for today" in at.info[0].value

    lead = open_page(app_as(company, "lead"), next(p for p in PAGES if p.url_path == "pipeline"))
    assert_clean(lead)
    assert "No sample has been drawn for today" in lead.info[0].value
    lead.button(key="daily_sample.draw").click().run()
    assert_clean(lead)
    assert any(c.value.startswith(f"Today's sample ({today:%Y-%m-%d}): 3 items") for c in lead.caption)
    assert db.scalar(select(func.count()).select_from(SampleBatch).where(SampleBatch.sample_date == today)) == 1


# ----------------------------------------------------------------------------- single sign-on (st.login)
# AppTest seeds ``st.user`` the way Streamlit fills it from a verified ID token; the mapping to the
# users table, the refusals and the logout are the app's own.


def sso_app(company: SeededCompany, **claims: object) -> AppTest:
    at = app_as(company, None)
    at.user = {"is_logged_in": bool(claims), **claims}
    return at


def sso_entries(db: Session, action: str) -> list[AuditLogEntry]:
    entries = db.scalars(select(AuditLogEntry).where(AuditLogEntry.action == action)).all()
    return [e for e in entries if (e.details or {}).get("method") == "oidc"]


def test_without_an_auth_section_there_is_no_single_sign_on_button(company: SeededCompany) -> None:
    at = app_as(company, None).run()
    assert not [b for b in at.button if b.key == "login.sso"]


def test_with_an_auth_section_the_login_page_offers_single_sign_on(company: SeededCompany) -> None:
    at = sso_app(company).run()
    assert_clean(at)
    assert [b.label for b in at.button if b.key == "login.sso"] == ["Log in with single sign-on"]
    assert [t.label for t in at.text_input] == ["Username", "Password"]  # passwords still work


def test_a_provider_identity_naming_a_user_opens_that_users_pages(company: SeededCompany, db: Session) -> None:
    at = sso_app(company, sub="idp-42", preferred_username="SME.Legal", email="x@example.com").run()
    assert_clean(at)
    assert at.session_state[login_session.USER_ID] == company.users["sme.legal"]
    assert titles(at) == ["Review queue"]  # the role from the database, not from the provider
    assert len(sso_entries(db, "login.success")) == 1
    at.run()  # later runs reuse the session: one login, not one per run
    assert len(sso_entries(db, "login.success")) == 1


def test_the_username_claim_is_configurable(company: SeededCompany, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITLOOP_OIDC_USERNAME_CLAIM", "email")
    at = sso_app(company, sub="idp-1", preferred_username="lead", email="admin").run()
    assert at.session_state[login_session.USER_ID] == company.users["admin"]


@pytest.mark.parametrize("case", ["unknown", "inactive", "no claim"])
def test_an_identity_without_an_active_account_is_refused_once_and_recorded(
    company: SeededCompany, db: Session, case: str
) -> None:
    if case == "inactive":
        db.get_one(User, company.users["lead"]).active = False
        db.commit()
    claims = {"sub": "idp-7"} if case == "no claim" else {"sub": "idp-7", "preferred_username": "lead"}
    if case == "unknown":
        claims["preferred_username"] = "mallory"
    at = sso_app(company, **claims).run()
    assert_clean(at)
    assert login_session.USER_ID not in at.session_state
    assert titles(at) == ["auditloop"]
    expected = "sent no 'preferred_username' claim" if case == "no claim" else "has no active account"
    assert len(at.error) == 1 and expected in at.error[0].value.replace("\\", "")
    assert [b.key for b in at.button if b.key.startswith("login.sso")] == ["login.sso_logout"]
    at.run()
    assert len(sso_entries(db, "login.failed")) == 1  # refused once per tab, not on every run


def test_a_locked_account_stays_locked_for_single_sign_on(company: SeededCompany, db: Session) -> None:
    db.get_one(User, company.users["lead"]).locked_until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    db.commit()
    at = sso_app(company, sub="idp-1", preferred_username="lead").run()
    assert login_session.USER_ID not in at.session_state
    assert [e.value.replace("\\", "") for e in at.error] == [org_service.LOCKED]


def test_logout_also_drops_the_provider_identity(company: SeededCompany, db: Session) -> None:
    at = sso_app(company, sub="idp-1", preferred_username="lead").run()
    assert at.session_state[login_session.USER_ID] == company.users["lead"]
    at.sidebar.button(key="shell.logout").click().run()
    assert at.user["is_logged_in"] is False  # st.logout ran: the identity cookie goes too
    assert titles(at) == ["auditloop"]
    assert login_session.USER_ID not in at.session_state


def test_the_idle_limit_ends_a_single_sign_on_session_too(company: SeededCompany) -> None:
    at = sso_app(company, sub="idp-1", preferred_username="lead").run()
    at.session_state[login_session.LAST_SEEN_AT] = time.time() - 31 * 60
    at.run()
    assert at.user["is_logged_in"] is False
    assert login_session.USER_ID not in at.session_state
    assert titles(at) == ["auditloop"]
