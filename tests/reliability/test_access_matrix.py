"""Access: every service function that checks a permission × every role, through the services; the
login rules (lockout, password policy, argon2id with rehash); no default credentials outside demo mode;
model output never rendered as Markdown or HTML on any page.

Pages refusing forced navigation are tested in ``tests/app/test_pages.py`` (AppTest) and
``tests/app/test_browser.py`` (real Chromium, including the canary that catches any fetch caused by
model output); session idle and absolute expiry in ``tests/app/test_pages.py``. Forged widget values
end in the service refusals checked here.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit import daily
from audit.auditlog import repository as auditlog_repo
from audit.demo import seed as demo_seed
from audit.errors import AuditloopError, PermissionDenied, ValidationError
from audit.fixes import service as fixes_service
from audit.fixes.policy import FixesPolicy
from audit.ingest.run import IngestOptions
from audit.ingest.service import ingest_file
from audit.knowledge import datasets
from audit.measures import service as measures
from audit.org import passwords
from audit.org import service as org_service
from audit.org.models import ROLES, User
from audit.permissions import ROLE_ACTIONS, Action
from audit.policy import service as policy_service
from audit.ratings import service as ratings
from audit.review import routing
from audit.review import service as review
from audit.sampling import service as sampling
from audit.sampling.models import SampleItem
from audit.sampling.policy import SamplingPolicy
from audit.triggers import service as triggers
from audit.triggers.policy import TriggersPolicy
from tests import factories as f
from tests.reliability.conftest import changed_tables, fingerprint, report
from training import assistant, gate, jobs

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)
SCORES = {"accuracy": 3, "completeness": 3, "relevance": 3, "coherence": 3}


class MemoryRegistry:
    """The champion alias in memory (the MLflow registry is not what these tests are about)."""

    def __init__(self) -> None:
        self.champion: str | None = None

    def set_champion(self, run_id: str | None) -> None:
        self.champion = run_id

    def champion_run_id(self) -> str | None:
        return self.champion


# ----------------------------------------------------------------------------- the world


@dataclasses.dataclass(frozen=True)
class World:
    users: dict[str, User]  # role -> an active user of that role ("auditor", "sme", "lead", "admin")
    inactive: User  # a deactivated lead
    answer_id: int
    assignment_id: int
    rating_id: int
    batch_id: int
    item_id: int
    row_version: int
    fix_id: int
    job_id: int
    answers_file: Path


def build_world(session: Session, tmp_path: Path) -> World:
    """Data each role would legitimately act on: the auditor's own assignment and rating, an open review
    item of the SME's department, a proposed fix, a queued job, a challenger that passed the gate."""
    hr = f.department(session, "HR")
    users = {
        "auditor": f.user(session, username="ann.auditor"),
        "sme": f.user(session, role="sme", username="sam.sme", departments=[hr]),
        "lead": f.user(session, role="lead", username="lee.lead"),
        "admin": f.user(session, role="admin", username="ada.admin"),
    }
    inactive = f.user(session, role="lead", username="old.lead", active=False)
    model = f.model_version(session, "v0", alias="champion")
    challenger = f.model_version(session, "v1", alias="challenger")
    challenger.gate_result = {"passed": True, "status": "challenger"}
    ans = f.answer(session, dept=hr, model=model, created_at=NOW - dt.timedelta(hours=20))
    assignment = f.assignment(session, ans=ans, auditor=users["auditor"])
    rated = f.answer(session, dept=hr, model=model)
    rating = f.rating(session, ans=rated, auditor=users["auditor"], created_at=NOW)
    flagged = f.answer(session, dept=hr, model=model)
    f.rating(session, ans=flagged, auditor=f.user(session), accuracy=1)
    item = routing.route_answer(session, flagged.id, now=NOW)
    assert item is not None
    example = f.example(session, dept=hr)
    version, _ = datasets.create_version(session, actor=None, change_log=[])
    confirmed = f.confirmed_review(session, ans=rated, sme=users["sme"], root_cause="retrieval_error")
    fix = f.data_fix(session, review=confirmed, status="proposed", kind="quarantine_example")
    fix.payload = {"example_id": example.id}
    job = f.training_job(session, dataset_version_id=version.id)
    session.flush()
    answers_file = tmp_path / "answers.jsonl"
    answers_file.write_text(
        '{"external_id": "new-1", "question": "Q?", "answer": "A.", "asker_department": "HR", "model_version": "v0", '
        '"created_at": "2026-11-27T10:00:00Z", "sources": []}\n'
    )
    return World(
        users=users,
        inactive=inactive,
        answer_id=ans.id,
        assignment_id=assignment.id,
        rating_id=rating.id,
        batch_id=session.get_one(SampleItem, assignment.sample_item_id).batch_id,
        item_id=item.id,
        row_version=item.row_version,
        fix_id=fix.id,
        job_id=job.id,
        answers_file=answers_file,
    )


# ----------------------------------------------------------------------------- the catalogue

Call = Callable[[Session, User | None, World], Any]


@dataclasses.dataclass(frozen=True)
class Cell:
    function: str  # module:function, as the scan below finds it
    actions: tuple[Action, ...]
    mode: Literal["any", "all"]  # any one of the actions allows it, or all of them are needed
    call: Call

    def allows(self, user: User | None) -> bool:
        if user is None:
            return True
        if not user.active:
            return False
        granted = ROLE_ACTIONS[user.role]
        held = [action in granted for action in self.actions]
        return any(held) if self.mode == "any" else all(held)


def cell(function: str, *actions: Action, mode: Literal["any", "all"] = "any") -> Callable[[Call], Cell]:
    return lambda call: Cell(function, actions, mode, call)


CELLS: list[Cell] = [
    # org
    cell("audit.org.service:create_department", "manage_departments")(
        lambda s, a, w: org_service.create_department(s, actor=a, name="Treasury")
    ),
    cell("audit.org.service:create_user", "manage_users")(
        lambda s, a, w: org_service.create_user(
            s, actor=a, username="new.user", role="auditor", password=f.TEST_PASSWORD
        )
    ),
    cell("audit.org.service:set_role", "manage_users")(
        lambda s, a, w: org_service.set_role(s, actor=a, username="ann.auditor", role="auditor")
    ),
    cell("audit.org.service:set_profile", "manage_users")(
        lambda s, a, w: org_service.set_profile(
            s, actor=a, username="ann.auditor", display_name="Ann", home_department="HR"
        )
    ),
    cell("audit.org.service:set_active", "manage_users")(
        lambda s, a, w: org_service.set_active(s, actor=a, username="ann.auditor", active=True)
    ),
    cell("audit.org.service:reset_password", "manage_users")(
        lambda s, a, w: org_service.reset_password(s, actor=a, username="ann.auditor", password=f.TEST_PASSWORD + "!")
    ),
    # policies
    cell("audit.policy.service:save", "manage_policies")(
        lambda s, a, w: policy_service.save(s, actor=a, name="sampling", settings=SamplingPolicy())
    ),
    cell("audit.fixes.service:save_policy", "manage_policies")(
        lambda s, a, w: fixes_service.save_policy(s, actor=a, policy=FixesPolicy())
    ),
    cell("audit.triggers.service:save_policy", "manage_policies")(
        lambda s, a, w: triggers.save_policy(s, actor=a, policy=TriggersPolicy())
    ),
    # ingest and the demo
    cell("audit.ingest.service:ingest_file", "ingest")(
        lambda s, a, w: ingest_file(s, actor=a, kind="answers", path=w.answers_file, options=IngestOptions())
    ),
    cell("audit.demo.seed:seed_demo", "manage_users", "ingest", mode="all")(
        lambda s, a, w: demo_seed.seed_demo(s, actor=a, today=NOW.date(), days=1)
    ),
    cell("training.assistant:plan_answers", "ingest")(
        lambda s, a, w: assistant.plan_answers(s, actor=a, questions=[], model_version=gate.version_by_name(s, "v0"))
    ),
    cell("training.assistant:store_answers", "ingest")(
        lambda s, a, w: assistant.store_answers(s, actor=a, answers=[], model_version=gate.version_by_name(s, "v0"))
    ),
    cell("training.assistant:answer_questions", "ingest")(
        lambda s, a, w: assistant.answer_questions(
            s,
            actor=a,
            questions=[],
            model_version=gate.version_by_name(s, "v0"),
            backend=None,  # type: ignore[arg-type]  # no question: nothing is generated
            retriever=None,  # type: ignore[arg-type]
        )
    ),
    # sampling and rating
    cell("audit.sampling.service:draw_sample", "run_sampling")(
        lambda s, a, w: sampling.draw_sample(s, actor=a, sample_date=NOW.date(), assign=False, now=NOW)
    ),
    cell("audit.sampling.service:assign_batch", "run_sampling")(
        lambda s, a, w: sampling.assign_batch(s, actor=a, batch_id=w.batch_id, now=NOW)
    ),
    cell("audit.sampling.service:release_expired", "run_sampling")(
        lambda s, a, w: sampling.release_expired(s, NOW, actor=a)
    ),
    cell("audit.sampling.service:return_to_pool", "run_sampling")(
        lambda s, a, w: sampling.return_to_pool(s, actor=a, auditor_id=w.users["auditor"].id, now=NOW)
    ),
    cell("audit.sampling.service:batch_summary", "run_sampling")(
        lambda s, a, w: sampling.batch_summary(s, actor=a, sample_date=dt.date(2026, 11, 28))
    ),
    cell("audit.sampling.service:next_item", "rate")(lambda s, a, w: sampling.next_item(s, actor=a, now=NOW)),  # type: ignore[arg-type]
    cell("audit.sampling.service:queue_state", "rate")(
        lambda s, a, w: sampling.queue_state(s, actor=a, today=NOW.date())  # type: ignore[arg-type]
    ),
    cell("audit.sampling.service:item", "rate")(
        lambda s, a, w: sampling.item(s, actor=a, assignment_id=w.assignment_id, now=NOW)  # type: ignore[arg-type]
    ),
    cell("audit.sampling.service:previous_item", "rate")(
        lambda s, a, w: sampling.previous_item(s, actor=a, now=NOW)  # type: ignore[arg-type]
    ),
    cell("audit.sampling.service:skipped_items", "rate")(lambda s, a, w: sampling.skipped_items(s, actor=a)),  # type: ignore[arg-type]
    cell("audit.sampling.service:auditor_progress", "rate")(
        lambda s, a, w: sampling.auditor_progress(s, actor=a, batch_id=w.batch_id)  # type: ignore[arg-type]
    ),
    cell("audit.ratings.service:submit_rating", "rate")(
        lambda s, a, w: ratings.submit_rating(s, actor=a, assignment_id=w.assignment_id, **SCORES, now=NOW)
    ),
    cell("audit.ratings.service:edit_rating", "rate")(
        lambda s, a, w: ratings.edit_rating(s, actor=a, rating_id=w.rating_id, **SCORES, now=NOW)
    ),
    cell("audit.ratings.service:skip_assignment", "rate")(
        lambda s, a, w: ratings.skip_assignment(s, actor=a, assignment_id=w.assignment_id, reason="unclear", now=NOW)
    ),
    cell("audit.ratings.service:reopen_skipped", "rate")(
        lambda s, a, w: ratings.reopen_skipped(s, actor=a, assignment_id=w.assignment_id)
    ),
    cell("audit.ratings.service:undo_last", "rate")(
        lambda s, a, w: ratings.undo_last(s, actor=a, assignment_id=w.assignment_id, now=NOW)
    ),
    cell("audit.ratings.service:my_ratings", "rate")(lambda s, a, w: ratings.my_ratings(s, actor=a, day=NOW.date())),  # type: ignore[arg-type]
    cell("audit.ratings.service:ratings_for_answer", "rate", "view_ratings_all")(
        lambda s, a, w: ratings.ratings_for_answer(s, actor=a, answer_id=w.answer_id)
    ),
    cell("audit.ratings.service:rating_history", "rate", "view_ratings_all")(
        lambda s, a, w: ratings.rating_history(s, actor=a, answer_id=w.answer_id)
    ),
    # routing and review
    cell("audit.review.routing:route", "run_sampling")(lambda s, a, w: routing.route(s, actor=a, now=NOW)),
    cell("audit.review.service:review_queue", "view_reviews")(lambda s, a, w: review.review_queue(s, actor=a, now=NOW)),
    cell("audit.review.service:review_item_detail", "view_reviews")(
        lambda s, a, w: review.review_item_detail(s, actor=a, item_id=w.item_id)
    ),
    cell("audit.review.service:current_version", "view_reviews")(
        lambda s, a, w: review.current_version(s, actor=a, item_id=w.item_id)
    ),
    cell("audit.review.service:my_decisions", "review")(lambda s, a, w: review.my_decisions(s, actor=a)),
    cell("audit.review.service:claim", "review")(lambda s, a, w: review.claim(s, actor=a, item_id=w.item_id, now=NOW)),
    cell("audit.review.service:release", "review")(lambda s, a, w: review.release(s, actor=a, item_id=w.item_id)),
    cell("audit.review.service:confirm", "review")(
        lambda s, a, w: review.confirm(
            s,
            actor=a,
            item_id=w.item_id,
            root_cause="retrieval_error",
            corrected_answer=None,
            note=None,
            expected_row_version=w.row_version,
            now=NOW,
        )
    ),
    cell("audit.review.service:dismiss", "review")(
        lambda s, a, w: review.dismiss(s, actor=a, item_id=w.item_id, note=None, expected_row_version=w.row_version)
    ),
    cell("audit.review.service:bulk_dismiss", "review")(
        lambda s, a, w: review.bulk_dismiss(s, actor=a, item_ids=[w.item_id], note="duplicate")
    ),
    # fixes, triggers, the daily cycle
    cell("audit.fixes.service:propose_fixes", "approve_fixes")(lambda s, a, w: fixes_service.propose_fixes(s, actor=a)),
    cell("audit.fixes.service:apply_fixes", "approve_fixes")(
        lambda s, a, w: fixes_service.apply_fixes(s, actor=a, fix_ids=[w.fix_id])
    ),
    cell("audit.fixes.service:reject_fixes", "approve_fixes")(
        lambda s, a, w: fixes_service.reject_fixes(s, actor=a, fix_ids=[w.fix_id], note="not needed")
    ),
    cell("audit.fixes.service:list_fixes", "view_reviews")(lambda s, a, w: fixes_service.list_fixes(s, actor=a)),
    cell("audit.fixes.service:get_fix", "view_reviews")(
        lambda s, a, w: fixes_service.get_fix(s, actor=a, fix_id=w.fix_id)
    ),
    cell("audit.triggers.service:evaluate", "queue_training")(lambda s, a, w: triggers.evaluate(s, actor=a, now=NOW)),
    cell("audit.triggers.service:queue_training", "queue_training")(
        lambda s, a, w: triggers.queue_training(s, actor=a, reason="by hand")
    ),
    cell("audit.daily:run_daily", *daily.DAILY_ACTIONS, mode="all")(
        lambda s, a, w: daily.run_daily(s, actor=a, day=NOW.date())
    ),
    # dashboards and the audit log
    *[
        cell(f"audit.measures.service:{name}", "view_dashboards")(
            lambda s, a, w, report=getattr(measures, name): report(s, actor=a)
        )
        for name in ("quality", "agreement", "calibration", "fairness", "funnel", "metrics_vs_humans")
    ],
    cell("audit.measures.service:report", "view_dashboards")(
        lambda s, a, w: measures.report(s, actor=a, name="quality")
    ),
    cell("audit.auditlog.repository:entries", "view_audit_log")(lambda s, a, w: auditlog_repo.entries(s, actor=a)),
    cell("audit.auditlog.repository:actions", "view_audit_log")(lambda s, a, w: auditlog_repo.actions(s, actor=a)),
    # training jobs and the champion
    cell("training.jobs:enqueue", "queue_training")(lambda s, a, w: jobs.enqueue(s, actor=a, reason="by hand")),
    cell("training.jobs:cancel", "queue_training")(lambda s, a, w: jobs.cancel(s, actor=a, job_id=w.job_id)),
    cell("training.gate:promote", "promote_model")(
        lambda s, a, w: gate.promote(s, actor=a, name="v1", registry=MemoryRegistry())
    ),
    cell("training.gate:rollback", "promote_model")(
        lambda s, a, w: gate.rollback(s, actor=a, registry=MemoryRegistry())
    ),
]

# Functions that take an actor only to record who did it; who may call them is decided by their callers.
NOT_CHECKED = {
    "audit.auditlog.service:record": "writes the audit log entry of an action its caller already allowed",
    "audit.knowledge.datasets:create_version": "called by apply_fixes (approve_fixes) and the operator's CLI",
    "audit.knowledge.datasets:use_version": "called only by the operator's CLI (`auditloop dataset use`)",
    "audit.ratings.service:can_change": "a predicate the rating page asks: False for a role without rate, no refusal",
}


def functions_taking_an_actor() -> set[str]:
    """Every public module-level function under audit/ and training/ with an ``actor`` parameter."""
    found = set()
    for path in sorted([*REPO.glob("audit/**/*.py"), *REPO.glob("training/**/*.py")]):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            parameters = (
                [a.arg for a in (*node.args.args, *node.args.kwonlyargs)] if isinstance(node, ast.FunctionDef) else []
            )
            if "actor" in parameters and not node.name.startswith("_"):  # type: ignore[attr-defined]
                found.add(f"{module}:{node.name}")
    return found


def test_every_function_taking_an_actor_is_in_the_matrix_or_says_why_not() -> None:
    catalogued = {c.function for c in CELLS}
    assert len(catalogued) == len(CELLS), "a function is catalogued twice"
    assert functions_taking_an_actor() == catalogued | set(NOT_CHECKED)


# ----------------------------------------------------------------------------- the matrix


def actors(world: World) -> dict[str, User | None]:
    return {**world.users, "inactive lead": world.inactive, "operator (None)": None}


def test_every_role_against_every_checked_service_function(session: Session, tmp_path: Path) -> None:
    """Allowed: succeeds or fails for another reason (never PermissionDenied for the role). Forbidden:
    PermissionDenied naming the user, raised before anything was written."""
    world = build_world(session, tmp_path)
    problems: list[str] = []
    checks = 0
    for c in CELLS:
        for who, actor in actors(world).items():
            checks += 1
            allowed = c.allows(actor)
            before = None if allowed else fingerprint(session)
            savepoint = session.begin_nested()
            outcome: BaseException | None = None
            try:
                c.call(session, actor, world)
            except AuditloopError as exc:
                outcome = exc
                if not allowed and isinstance(exc, PermissionDenied) and before is not None:
                    wrote = changed_tables(before, fingerprint(session))
                    if wrote:
                        problems.append(f"{c.function} as {who}: wrote {wrote} before refusing")
            except Exception as exc:  # not a user error: a broken call, whoever makes it
                outcome = exc
                problems.append(f"{c.function} as {who}: {type(exc).__name__}: {exc}")
            finally:
                savepoint.rollback()
            refused = isinstance(outcome, PermissionDenied)
            if allowed and refused:
                problems.append(f"{c.function} as {who}: refused although allowed ({outcome})")
            elif not allowed and not refused:
                problems.append(
                    f"{c.function} as {who}: not refused (got {type(outcome).__name__ if outcome else 'success'})"
                )
            elif refused and actor is not None and actor.username not in str(outcome):
                problems.append(f"{c.function} as {who}: the refusal does not name the user: {outcome}")
    assert problems == []
    report(
        "access",
        f"{checks} service permission checks passed on {session.get_bind().dialect.name} "
        f"({len(CELLS)} functions x {len(actors(world))} actors: 4 roles, an inactive user, the operator)",
    )


def test_the_role_matrix_itself_keeps_the_blind_and_the_separation_rules() -> None:
    """Auditors only rate (blind: no reading others' ratings, no dashboards); SMEs review but cannot
    approve fixes or promote; leads decide fixes and models but neither rate, review nor manage users;
    admins manage but neither decide fixes nor promote."""
    assert ROLE_ACTIONS["auditor"] == {"rate"}
    assert "view_ratings_all" not in ROLE_ACTIONS["auditor"] and "view_dashboards" not in ROLE_ACTIONS["auditor"]
    assert {"approve_fixes", "promote_model", "manage_users", "rate"}.isdisjoint(ROLE_ACTIONS["sme"])
    assert {"rate", "review", "manage_users", "manage_policies", "ingest"}.isdisjoint(ROLE_ACTIONS["lead"])
    assert {"approve_fixes", "promote_model", "queue_training", "review", "rate"}.isdisjoint(ROLE_ACTIONS["admin"])
    assert set(ROLE_ACTIONS) == set(ROLES)


# ----------------------------------------------------------------------------- logging in


def test_lockout_is_shared_by_every_replica_and_lifts_after_fifteen_minutes(db_url: str) -> None:
    """Failures are counted in the database: five wrong passwords through two "replicas" (two engines)
    lock the account for both, even for the right password; after 15 minutes it opens again."""
    from audit.db import make_engine, make_session_factory

    replicas = [make_engine(db_url), make_engine(db_url)]
    try:
        with make_session_factory(replicas[0]).begin() as s:
            f.user(s, username="victim")
        for attempt in range(5):
            with make_session_factory(replicas[attempt % 2]).begin() as s:
                assert not org_service.authenticate(s, "victim", "wrong password!", now=NOW).ok
        for engine in replicas:
            with make_session_factory(engine).begin() as s:
                result = org_service.authenticate(s, "victim", f.TEST_PASSWORD, now=NOW + dt.timedelta(minutes=14))
                assert (result.ok, result.message) == (False, org_service.GENERIC_FAILURE)
        with make_session_factory(replicas[1]).begin() as s:
            assert org_service.authenticate(
                s, "victim", f.TEST_PASSWORD, now=NOW + dt.timedelta(minutes=15, seconds=1)
            ).ok
    finally:
        for engine in replicas:
            engine.dispose()


def test_a_weaker_hash_is_replaced_on_the_next_login(session: Session) -> None:
    """Passwords are argon2id at the current parameters; an older, cheaper hash still verifies once and
    is rehashed on that login."""
    user = f.user(session, username="old.hash")
    user.password_hash = PasswordHasher(type=Type.ID, time_cost=1, memory_cost=8, parallelism=1).hash(f.TEST_PASSWORD)
    session.flush()
    assert passwords.needs_rehash(user.password_hash)
    assert org_service.authenticate(session, "old.hash", f.TEST_PASSWORD, now=NOW).ok
    session.flush()
    session.expire_all()
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert not passwords.needs_rehash(user.password_hash)
    assert passwords.verify_password(user.password_hash, f.TEST_PASSWORD)


@pytest.mark.parametrize("bad", ["short-pw-11", "", " leading-space-password", "trailing-space-password ", "x" * 1025])
def test_the_password_policy_holds_for_new_users_and_resets(session: Session, bad: str) -> None:
    f.user(session, username="someone")
    with pytest.raises(ValidationError, match="^password: "):
        org_service.create_user(session, actor=None, username="newbie", role="auditor", password=bad)
    with pytest.raises(ValidationError, match="^password: "):
        org_service.reset_password(session, actor=None, username="someone", password=bad)
    assert passwords.MIN_PASSWORD_LENGTH == 12
    assert passwords.hash_password("a" * 12).startswith("$argon2id$v=19$")


# ----------------------------------------------------------------------------- no default credentials


def test_a_freshly_migrated_database_has_no_account_at_all(sqlite_url: str) -> None:
    """`auditloop db upgrade` creates no user: there is no default login to guess."""
    from audit.db import make_engine

    engine = make_engine(sqlite_url)
    with Session(engine) as s:
        assert s.scalars(select(User)).all() == []
    engine.dispose()


@pytest.mark.slow
def test_demo_accounts_come_only_from_demo_seed_with_random_passwords(tmp_path: Path, sqlite_template: Path) -> None:
    """Two demo seeds with the same content seed give the same accounts but different passwords; each
    password logs in to its own database only."""
    import shutil

    from audit.db import make_engine, make_session_factory

    credentials = []
    for name in ("one", "two"):
        path = tmp_path / f"{name}.db"
        shutil.copy(sqlite_template, path)
        engine = make_engine(f"sqlite:///{path}")
        with make_session_factory(engine).begin() as s:
            credentials.append(demo_seed.seed_demo(s, actor=None, today=NOW.date(), days=1).credentials)
        engine.dispose()
    first, second = ({c.username: c.password for c in creds} for creds in credentials)
    assert first.keys() == second.keys() and len(first) >= 4
    assert all(first[u] != second[u] for u in first)
    assert all(len(p) >= passwords.MIN_PASSWORD_LENGTH for p in [*first.values(), *second.values()])
    engine = make_engine(f"sqlite:///{tmp_path / 'two.db'}")
    with make_session_factory(engine).begin() as s:
        username = next(iter(first))
        assert not org_service.authenticate(s, username, first[username], now=NOW).ok
        assert org_service.authenticate(s, username, second[username], now=NOW).ok
    engine.dispose()


# ----------------------------------------------------------------------------- model output stays inert

# Markdown or HTML that would make a browser fetch or link, unless escaped with a backslash
LIVE_MARKUP = re.compile(
    r"(?<!\\)!\[|(?<!\\)\]\((?:https?|javascript):|(?<!\\)<(?:img|iframe|script|a\s|https?:)", re.I
)
# The seeded "evil" answers point every image, link and script at this address (tests/app/browser.py);
# app-authored markup (the keyboard script) never mentions it. Escaped text shows it as "127\.0\.0\.1\:9".
CANARY = "http://127.0.0.1:9/"
# Elements whose text Streamlit shows as plain text, never parsed
INERT_TYPES = {"text", "code", "arrow_data_frame", "dataframe", "json"}
# Proto fields that hold values (what the widget contains) rather than Markdown to render
VALUE_FIELDS = {"default", "value", "raw_value", "id", "form_id", "data", "placeholder"}
# Option lists shown as plain text: Streamlit documents Markdown for st.radio options, not for the
# options of st.selectbox and st.multiselect
PLAIN_OPTIONS = {"selectbox", "multiselect"}


class _MarkupWithCanary(HTMLParser):
    """Collects every tag or attribute of an HTML block that carries the canary address."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.live: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or tag
        if CANARY in raw or any(CANARY in (value or "") for _, value in attrs):
            self.live.append(raw)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data: str) -> None:
        if CANARY in data:
            self.live.append(f"<!--{data}-->")


def is_live(where: str, text: str) -> bool:
    """Would this string, as the page renders it, make the browser fetch or link the canary address?
    ``st.html`` bodies are HTML (Markdown syntax in them is plain text): the address may appear in text
    only, never inside a tag, an attribute or a comment. Everything else may be parsed as Markdown."""
    if CANARY not in text:
        return False
    if where.endswith("/html.body"):
        parser = _MarkupWithCanary()
        parser.feed(text)
        parser.close()
        return bool(parser.live)
    return bool(LIVE_MARKUP.search(text))


def markdown_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(where, text) for every string of the page that Streamlit may render as Markdown."""
    children = getattr(node, "children", None)
    node_type = getattr(node, "type", "")
    if node_type not in INERT_TYPES and getattr(node, "proto", None) is not None:
        for where, text in _proto_strings(node.proto, f"{path}/{node_type}"):
            if not (node_type in PLAIN_OPTIONS and where.endswith(".options")):
                yield where, text
    if isinstance(children, dict):
        for index, child in children.items():
            yield from markdown_strings(child, f"{path}/{index}")


def _proto_strings(message: Any, where: str) -> Iterator[tuple[str, str]]:
    for descriptor, value in message.ListFields():
        if descriptor.name in VALUE_FIELDS or descriptor.name in INERT_TYPES:
            continue
        here = f"{where}.{descriptor.name}"
        if isinstance(value, str):
            yield here, value
        elif hasattr(value, "ListFields"):  # one nested message
            yield from _proto_strings(value, here)
        elif isinstance(value, bytes | int | float | bool):
            continue
        else:  # a repeated field: messages or scalars
            for item in value:
                if isinstance(item, str):
                    yield here, item
                elif hasattr(item, "ListFields"):
                    yield from _proto_strings(item, here)


@pytest.fixture(scope="module")
def seeded_company(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    import shutil

    from tests.app.browser import seed_company

    path = tmp_path_factory.mktemp("inert") / "company.db"
    shutil.copy(sqlite_template, path)
    return path, seed_company(f"sqlite:///{path}")


@pytest.mark.slow
def test_no_page_renders_model_output_as_markdown_or_html(
    seeded_company: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page each role may open, in AppTest, with answers whose text is full of images, links,
    HTML and script: that text reaches the page only through plain-text elements."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from app import session as login_session
    from app.views import pages_for

    template, company = seeded_company
    database = tmp_path / "auditloop.db"
    shutil.copy(template, database)
    monkeypatch.setenv("AUDITLOOP_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("AUDITLOOP_DATA_DIR", str(tmp_path / "data"))
    app = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
    who = {"auditor": company.evil_auditor, "sme": "sme.legal", "lead": "lead", "admin": "admin"}
    live: list[str] = []
    shown_plain = 0
    pages = 0
    for role, username in who.items():
        for page in pages_for(User(role=role, active=True, username=username)):
            at = AppTest.from_file(str(app), default_timeout=60)
            login_session.start(at.session_state, user_id=company.users[username], policy=login_session.AuthPolicy())
            at.run()
            at.switch_page(page.path)
            at.run()
            assert not at.exception, [e.message for e in at.exception]
            pages += 1
            live += [
                f"{role} {page.url_path} {where}: {text[:120]!r}"
                for where, text in markdown_strings(at._tree)
                if is_live(where, text)
            ]
            shown_plain += sum("![tracking pixel]" in t.value for t in at.text)
    assert live == []
    assert shown_plain >= 2, "the evil answers were never shown: the check above proved nothing"
    report("access", f"model output inert: {pages} pages x roles rendered, no live Markdown/HTML from answers")


def test_the_markup_check_sees_markdown_and_ignores_plain_text() -> None:
    """The walker above, on a page that does it wrong and right: st.markdown, an st.info, a radio
    option and raw st.html are caught; st.text, st.code, a selectbox option and st.html of the escaped
    text (``app.components.inert.text_html``) are not."""
    from streamlit.testing.v1 import AppTest

    def page() -> None:
        import streamlit as st

        evil = "![pixel](http://127.0.0.1:9/x.png) <img src='http://127.0.0.1:9/y.png'>"
        st.text(evil)
        st.code(evil)
        st.selectbox("Pick", [evil])
        st.markdown(evil)
        st.info(evil)
        st.radio("Choose", [evil])
        st.html(f"<div>{evil}</div>")
        st.html("<div><a href='http://127.0.0.1:9/z'>plain words</a></div>")

        from app.components.inert import text_html

        st.html(text_html(evil))

    at = AppTest.from_function(page).run()
    caught = sorted(where.split("/")[-1] for where, text in markdown_strings(at._tree) if is_live(where, text))
    assert caught == ["html.body", "html.body", "info.body", "markdown.body", "radio.options"]
