"""Property-based fuzzing of the rating and review services with values a form, a forged request or a
script could send: out-of-range and wrong-typed scores, unknown and foreign ids, other users'
assignments and ratings, items of departments the SME does not cover, oversized and unstorable text.

The oracle is written from the services' documented rules, independently of their code: a call with no
problem must succeed; a call with problems must raise one of the errors its problems call for
(ValidationError, NotFoundError, PermissionDenied, ConflictError) — never a database or Python error —
and must refuse before writing anything (every table's fingerprint is unchanged at the moment it raises).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from audit.errors import AuditloopError, ConflictError, NotFoundError, PermissionDenied, ValidationError
from audit.org.models import User
from audit.ratings import service as ratings
from audit.ratings.models import DIMENSIONS, SOURCES_CORRECT
from audit.review import routing
from audit.review import service as review
from audit.review.models import CONTENT_ROOT_CAUSES, ROOT_CAUSES
from tests import factories as f
from tests.reliability.conftest import changed_tables, fingerprint, report

FULL_EXAMPLES = int(os.environ.get("AUDITLOOP_FUZZ_EXAMPLES", "200"))  # per property, in the slow run
QUICK_EXAMPLES = 25  # per property, in the fast suite
BUDGETS = [pytest.param(QUICK_EXAMPLES, id="quick"), pytest.param(FULL_EXAMPLES, id="full", marks=pytest.mark.slow)]
NOW = dt.datetime(2026, 11, 28, 15, tzinfo=dt.UTC)
CALLS: Counter[str] = Counter()

Expect = frozenset[type[Exception]]  # the errors a call's problems allow; empty: it must succeed
V = ValidationError


# ----------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class World:
    alice: User  # an auditor
    bob: User  # another auditor
    sme: User  # covers HR only
    departments: dict[str, int]  # name -> id
    alice_pending: int  # alice's pending assignment
    alice_submitted: int  # alice's submitted assignment
    alice_skipped: int
    bob_pending: int
    alice_rating: int  # alice's current rating, given today
    alice_old_rating: int  # alice's superseded rating
    bob_rating: int
    hr_item: int  # open review item in HR
    hr_item_version: int
    finance_item: int  # open review item in Finance (not the SME's)
    decided_item: int  # an HR item already dismissed
    document: int
    max_ids: int  # every id in the world is below this


@pytest.fixture
def world(session: Session) -> World:
    hr, finance = f.department(session, "HR"), f.department(session, "Finance")
    model = f.model_version(session)
    answers = [f.answer(session, dept=hr if i % 2 == 0 else finance, model=model) for i in range(8)]
    alice, bob = f.user(session, username="alice"), f.user(session, username="bob")
    sme = f.user(session, role="sme", username="sme.hr", departments=[hr])
    pending = f.assignment(session, ans=answers[0], auditor=alice)
    submitted = f.assignment(session, ans=answers[1], auditor=alice, status="submitted")
    skipped = f.assignment(session, ans=answers[2], auditor=alice, status="skipped")
    bob_pending = f.assignment(session, ans=answers[0], auditor=bob)
    old = f.rating(session, ans=answers[3], auditor=alice, created_at=NOW - dt.timedelta(hours=2))
    old.is_current = False
    session.flush()
    current = f.rating(
        session, ans=answers[3], auditor=alice, created_at=NOW - dt.timedelta(hours=1), supersedes_id=old.id
    )
    f.rating(session, ans=answers[1], auditor=alice, created_at=NOW - dt.timedelta(hours=1))
    bob_rating = f.rating(session, ans=answers[5], auditor=bob, created_at=NOW - dt.timedelta(hours=1))
    # low scores route answers 4 (HR), 5 (Finance) and 6 (HR) to review
    f.rating(session, ans=answers[4], auditor=bob, accuracy=1, created_at=NOW - dt.timedelta(hours=1))
    f.rating(session, ans=answers[6], auditor=bob, accuracy=1, created_at=NOW - dt.timedelta(hours=1))
    bob_rating.accuracy = 1
    session.flush()
    hr_item = routing.route_answer(session, answers[4].id, now=NOW)
    finance_item = routing.route_answer(session, answers[5].id, now=NOW)
    decided = routing.route_answer(session, answers[6].id, now=NOW)
    assert hr_item is not None and finance_item is not None and decided is not None
    review.dismiss(
        session, actor=sme, item_id=decided.id, note="fine", expected_row_version=decided.row_version, now=NOW
    )
    document = f.document(session, dept=hr)
    session.flush()
    return World(
        alice=alice,
        bob=bob,
        sme=sme,
        departments={"HR": hr.id, "Finance": finance.id},
        alice_pending=pending.id,
        alice_submitted=submitted.id,
        alice_skipped=skipped.id,
        bob_pending=bob_pending.id,
        alice_rating=current.id,
        alice_old_rating=old.id,
        bob_rating=bob_rating.id,
        hr_item=hr_item.id,
        hr_item_version=hr_item.row_version,
        finance_item=finance_item.id,
        decided_item=decided.id,
        document=document.id,
        max_ids=10_000,
    )


@pytest.fixture(scope="module", autouse=True)
def report_calls() -> Iterator[None]:
    yield
    if CALLS:
        detail = ", ".join(f"{name} {n}" for name, n in sorted(CALLS.items()))
        report("fuzz", f"services: {sum(CALLS.values())} calls ({detail})")


# ----------------------------------------------------------------------------- values and what they call for

Drawn = tuple[Any, Expect]
OK: Expect = frozenset()


def ok(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Drawn]:
    return strategy.map(lambda v: (v, OK))


def bad(strategy: st.SearchStrategy[Any], *errors: type[Exception]) -> st.SearchStrategy[Drawn]:
    allowed = frozenset(errors or (V,))
    return strategy.map(lambda v: (v, allowed))


floats = st.floats(allow_nan=True, allow_infinity=True)
containers = st.one_of(
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)
)
# any text PostgreSQL and SQLite can store; and text neither can (a NUL, a lone UTF-16 surrogate)
storable_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
unstorable_text = st.tuples(storable_text, st.sampled_from(["\x00", "\ud800", "\udfff"]), storable_text).map("".join)


def score() -> st.SearchStrategy[Drawn]:
    return st.one_of(
        ok(st.integers(1, 5)),
        ok(st.none()),
        bad(st.integers().filter(lambda v: not 1 <= v <= 5)),
        bad(st.booleans()),
        bad(floats),
        bad(st.text(max_size=3)),
        bad(containers),
    )


def text_field(limit: int, *, nullable: bool = True) -> st.SearchStrategy[Drawn]:
    """Optional free text up to ``limit`` characters once stripped; too long, unstorable, or not text at all."""
    wrong_types = st.one_of(st.integers(), floats, st.booleans(), containers)
    return st.one_of(
        ok(st.none()) if nullable else bad(st.none()),
        ok(storable_text),
        ok(st.integers(0, 40).map(lambda n: " " * n + "y" * (limit - n // 2) + " " * n)),  # exactly fits once stripped
        bad(st.integers(1, 100).map(lambda n: "z" * (limit + n))),
        bad(unstorable_text),
        bad(wrong_types),
    )


def department_ref(world: World) -> st.SearchStrategy[tuple[Any, Expect, int | None]]:
    """(value, expectation, the department id it names when valid)."""
    names = list(world.departments.items())
    return st.one_of(
        st.just((None, OK, None)),
        st.just(("", OK, None)),
        st.sampled_from([(name, OK, id_) for name, id_ in names]),
        st.sampled_from([(id_, OK, id_) for _, id_ in names]),
        storable_text.filter(lambda t: t not in world.departments and t != "").map(lambda t: (t, frozenset({V}), None)),
        st.integers(world.max_ids, 2**70).map(lambda v: (v, frozenset({V}), None)),
        st.integers(-(2**70), 0).map(lambda v: (v, frozenset({V}), None)),
        st.one_of(st.booleans(), floats, containers).map(lambda v: (v, frozenset({V}), None)),
    )


def entity_id(own: int, foreign: list[tuple[int, type[Exception]]], world: World) -> st.SearchStrategy[Drawn]:
    """An id: the actor's own, someone else's (PermissionDenied/Conflict), unknown (also beyond the key
    column's range: NotFoundError), or not a whole number at all (ValidationError)."""
    return st.one_of(
        ok(st.just(own)),
        st.sampled_from([(id_, frozenset({err})) for id_, err in foreign]) if foreign else st.nothing(),
        bad(st.integers(world.max_ids, 2**70), NotFoundError),
        bad(st.integers(-(2**70), 0), NotFoundError),
        bad(st.one_of(st.booleans(), floats, st.text(max_size=3), containers)),
    )


def rating_fields(world: World) -> st.SearchStrategy[tuple[dict[str, Any], Expect]]:
    @st.composite
    def build(draw: st.DrawFn) -> tuple[dict[str, Any], Expect]:
        expect: set[type[Exception]] = set()
        values: dict[str, Any] = {}
        for dim in DIMENSIONS:
            values[dim], e = draw(score())
            expect |= e
        if all(values[d] is None for d in DIMENSIONS):
            expect.add(V)
        values["sources_correct"], e = draw(
            st.one_of(
                ok(st.none()),
                ok(st.sampled_from(SOURCES_CORRECT)),
                bad(storable_text.filter(lambda t: t not in SOURCES_CORRECT)),
                bad(st.one_of(st.integers(), st.booleans())),
            )
        )
        expect |= e
        values["bias_flag"], e = draw(
            st.one_of(ok(st.booleans()), bad(st.one_of(st.integers(), st.text(max_size=3), st.none())))
        )
        expect |= e
        fav, e_fav, fav_id = draw(department_ref(world))
        dis, e_dis, dis_id = draw(department_ref(world))
        values["favoured_department"], values["disfavoured_department"] = fav, dis
        expect |= e_fav | e_dis
        flag = values["bias_flag"]
        if not e_fav and not e_dis and isinstance(flag, bool):
            named = fav_id is not None or dis_id is not None
            if (flag and not named) or (not flag and named) or (fav_id is not None and fav_id == dis_id):
                expect.add(V)
        values["comment"], e = draw(text_field(ratings.COMMENT_MAX))
        expect |= e
        values["suggested_correction"], e = draw(text_field(ratings.CORRECTION_MAX))
        expect |= e
        values["seconds_spent"], e = draw(
            st.one_of(
                ok(st.none()),
                ok(st.integers(0, ratings.SECONDS_MAX)),
                bad(st.integers().filter(lambda v: not 0 <= v <= ratings.SECONDS_MAX)),
                bad(st.one_of(floats, st.booleans(), st.text(max_size=3))),
            )
        )
        expect |= e
        values["idempotency_key"], e = draw(
            st.one_of(
                ok(st.none()),
                ok(st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=64)),
                bad(st.just("")),
                bad(st.text(st.characters(codec="ascii", categories=("L",)), min_size=65, max_size=80)),
                bad(st.one_of(st.integers(), st.booleans(), containers)),
            )
        )
        expect |= e
        return values, frozenset(expect)

    return build()


# ----------------------------------------------------------------------------- the check


def call_and_check(session: Session, name: str, expect: Expect, call: Callable[[], Any]) -> None:
    """Run ``call`` in a savepoint: with no problem it must succeed; otherwise raise an allowed error
    before writing anything. The savepoint is rolled back either way."""
    CALLS[name] += 1
    before = fingerprint(session) if expect else None  # only a refusal is compared with it
    savepoint = session.begin_nested()
    try:
        try:
            call()
        except AuditloopError as exc:
            assert expect, f"{name}: a valid call was refused: {type(exc).__name__}: {exc}"
            assert type(exc) in expect, (
                f"{name}: {type(exc).__name__}: {exc}; expected one of {sorted(e.__name__ for e in expect)}"
            )
            assert str(exc).strip() and "\n" not in str(exc), "the message must be one line"
            assert before is not None
            assert changed_tables(before, fingerprint(session)) == [], f"{name} wrote before refusing"
        else:
            assert not expect, f"{name}: accepted a call that should raise one of {sorted(e.__name__ for e in expect)}"
    finally:
        savepoint.rollback()


def fuzz(budget: int) -> settings:
    return settings(
        max_examples=budget,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,  # each run explores afresh; a failure prints its reproducing example
    )


@pytest.mark.parametrize("budget", BUDGETS)
def test_submit_rating(session: Session, world: World, budget: int) -> None:
    @fuzz(budget)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        assignment_id, e_id = data.draw(
            entity_id(
                world.alice_pending,
                [(world.bob_pending, PermissionDenied), (world.alice_skipped, ConflictError)],
                world,
            ),
            label="assignment_id",
        )
        values, e_values = data.draw(rating_fields(world), label="fields")
        call_and_check(
            session,
            "submit_rating",
            e_id | e_values,
            lambda: ratings.submit_rating(session, actor=world.alice, assignment_id=assignment_id, now=NOW, **values),
        )

    run()


@pytest.mark.parametrize("budget", BUDGETS)
def test_edit_rating(session: Session, world: World, budget: int) -> None:
    @fuzz(budget)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        rating_id, e_id = data.draw(
            entity_id(
                world.alice_rating,
                [(world.bob_rating, PermissionDenied), (world.alice_old_rating, ConflictError)],
                world,
            ),
            label="rating_id",
        )
        values, e_values = data.draw(rating_fields(world), label="fields")
        call_and_check(
            session,
            "edit_rating",
            e_id | e_values,
            lambda: ratings.edit_rating(session, actor=world.alice, rating_id=rating_id, now=NOW, **values),
        )

    run()


@pytest.mark.parametrize("budget", BUDGETS)
def test_skip_assignment(session: Session, world: World, budget: int) -> None:
    @fuzz(budget)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        assignment_id, e_id = data.draw(
            entity_id(
                world.alice_pending,
                [(world.bob_pending, PermissionDenied), (world.alice_submitted, ConflictError)],
                world,
            ),
            label="assignment_id",
        )
        reason, e_reason = data.draw(
            st.one_of(
                ok(storable_text.filter(lambda t: t.strip() != "")),
                bad(st.sampled_from(["", "   ", "\n\t"])),
                bad(st.none()),
                bad(st.integers(1, 50).map(lambda n: "r" * (ratings.SKIP_REASON_MAX + n))),
                bad(st.one_of(st.integers(), st.booleans(), containers)),
            ),
            label="reason",
        )
        call_and_check(
            session,
            "skip_assignment",
            e_id | e_reason,
            lambda: ratings.skip_assignment(
                session, actor=world.alice, assignment_id=assignment_id, reason=reason, now=NOW
            ),
        )

    run()


def review_item_id(world: World) -> st.SearchStrategy[Drawn]:
    return entity_id(
        world.hr_item, [(world.finance_item, PermissionDenied), (world.decided_item, ConflictError)], world
    )


def row_version(world: World) -> st.SearchStrategy[Drawn]:
    return st.one_of(
        ok(st.just(world.hr_item_version)),
        bad(st.integers().filter(lambda v: v != world.hr_item_version), ConflictError),
        bad(st.one_of(st.text(max_size=3), st.none(), containers), V, ConflictError),
    )


@pytest.mark.parametrize("budget", BUDGETS)
def test_confirm_review(session: Session, world: World, budget: int) -> None:
    @fuzz(budget)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        item_id, e_item = data.draw(review_item_id(world), label="item_id")
        root_cause, e_cause = data.draw(
            st.one_of(
                ok(st.sampled_from(ROOT_CAUSES)),
                bad(storable_text.filter(lambda t: t not in ROOT_CAUSES)),
                bad(st.one_of(st.none(), st.integers(), containers)),
            ),
            label="root_cause",
        )
        corrected, e_corrected = data.draw(text_field(review.CORRECTED_ANSWER_MAX), label="corrected")
        if (
            root_cause in CONTENT_ROOT_CAUSES
            and not e_corrected
            and not (isinstance(corrected, str) and corrected.strip())
        ):
            e_corrected = frozenset({V})  # a content cause needs the corrected answer
        note, e_note = data.draw(text_field(review.NOTE_MAX), label="note")
        version, e_version = data.draw(row_version(world), label="expected_row_version")
        document, e_document = data.draw(
            st.one_of(
                ok(st.none()),
                ok(st.just(world.document)),
                bad(st.integers(world.max_ids, 2**70)),
                bad(st.one_of(st.booleans(), st.text(max_size=3), containers)),
            ),
            label="correct_document_id",
        )
        call_and_check(
            session,
            "review.confirm",
            e_item | e_cause | e_corrected | e_note | e_version | e_document,
            lambda: review.confirm(
                session,
                actor=world.sme,
                item_id=item_id,
                root_cause=root_cause,
                corrected_answer=corrected,
                note=note,
                expected_row_version=version,
                correct_document_id=document,
                now=NOW,
            ),
        )

    run()


@pytest.mark.parametrize("budget", BUDGETS)
def test_dismiss_and_claim_review(session: Session, world: World, budget: int) -> None:
    @fuzz(budget)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        item_id, e_item = data.draw(review_item_id(world), label="item_id")
        if data.draw(st.booleans(), label="claim instead"):
            call_and_check(
                session,
                "review.claim",
                e_item,
                lambda: review.claim(session, actor=world.sme, item_id=item_id, now=NOW),
            )
            return
        note, e_note = data.draw(text_field(review.NOTE_MAX), label="note")
        version, e_version = data.draw(row_version(world), label="expected_row_version")
        call_and_check(
            session,
            "review.dismiss",
            e_item | e_note | e_version,
            lambda: review.dismiss(
                session, actor=world.sme, item_id=item_id, note=note, expected_row_version=version, now=NOW
            ),
        )

    run()


# ----------------------------------------------------------------------------- edge cases, one by one
# The inputs that once reached SQL raw (audit/checks.py now refuses them): each named, on every
# service that takes it, so a regression reads as the field and the service that broke.


def misbehaving(session: Session, cases: dict[str, tuple[Expect, Callable[[], Any]]]) -> list[str]:
    """Run each case through the check; return the ones that do not behave, with what happened."""
    found = []
    for name, (expect, call) in cases.items():
        try:
            call_and_check(session, f"edge: {name}", expect, call)
        except Exception as exc:  # an assertion of the check, or the raw error the service let through
            found.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    return found


def _submit(world: World, session: Session, **changes: Any) -> Callable[[], Any]:
    values: dict[str, Any] = {"assignment_id": world.alice_pending, **dict.fromkeys(DIMENSIONS, 3), **changes}
    return lambda: ratings.submit_rating(session, actor=world.alice, now=NOW, **values)


def test_an_id_beyond_the_column_range_is_not_found(session: Session, world: World) -> None:
    huge = 2**63
    not_found = frozenset({NotFoundError})
    cases: dict[str, tuple[Expect, Callable[[], Any]]] = {
        "submit_rating": (not_found, _submit(world, session, assignment_id=huge)),
        "edit_rating": (
            not_found,
            lambda: ratings.edit_rating(
                session, actor=world.alice, rating_id=huge, **dict.fromkeys(DIMENSIONS, 3), now=NOW
            ),
        ),
        "skip_assignment": (
            not_found,
            lambda: ratings.skip_assignment(session, actor=world.alice, assignment_id=huge, reason="x", now=NOW),
        ),
        "review.claim": (not_found, lambda: review.claim(session, actor=world.sme, item_id=huge, now=NOW)),
        "review.dismiss": (
            not_found,
            lambda: review.dismiss(session, actor=world.sme, item_id=huge, note=None, expected_row_version=1, now=NOW),
        ),
        "review.confirm correct_document_id": (
            frozenset({V}),
            lambda: review.confirm(
                session,
                actor=world.sme,
                item_id=world.hr_item,
                root_cause="retrieval_error",
                corrected_answer=None,
                note=None,
                expected_row_version=world.hr_item_version,
                correct_document_id=huge,
                now=NOW,
            ),
        ),
    }
    assert misbehaving(session, cases) == []


def test_an_id_that_is_not_an_integer_is_refused(session: Session, world: World) -> None:
    refused = frozenset({V, NotFoundError})
    cases: dict[str, tuple[Expect, Callable[[], Any]]] = {
        "submit_rating": (refused, _submit(world, session, assignment_id=[])),
        "skip_assignment": (
            refused,
            lambda: ratings.skip_assignment(session, actor=world.alice, assignment_id=[], reason="x", now=NOW),
        ),
        "review.claim": (refused, lambda: review.claim(session, actor=world.sme, item_id=[], now=NOW)),
    }
    assert misbehaving(session, cases) == []


@pytest.mark.parametrize("bad_char", ["\x00", "\ud800"], ids=["nul", "lone-surrogate"])
def test_text_that_cannot_be_stored_is_refused(session: Session, world: World, bad_char: str) -> None:
    text = f"before{bad_char}after"
    refused = frozenset({V})
    cases: dict[str, tuple[Expect, Callable[[], Any]]] = {
        "comment": (refused, _submit(world, session, comment=text)),
        "suggested_correction": (refused, _submit(world, session, suggested_correction=text)),
        "skip reason": (
            refused,
            lambda: ratings.skip_assignment(
                session, actor=world.alice, assignment_id=world.alice_pending, reason=text, now=NOW
            ),
        ),
        "review note": (
            refused,
            lambda: review.dismiss(
                session,
                actor=world.sme,
                item_id=world.hr_item,
                note=text,
                expected_row_version=world.hr_item_version,
                now=NOW,
            ),
        ),
        "corrected_answer": (
            refused,
            lambda: review.confirm(
                session,
                actor=world.sme,
                item_id=world.hr_item,
                root_cause="hallucination",
                corrected_answer=text,
                note=None,
                expected_row_version=world.hr_item_version,
                now=NOW,
            ),
        ),
    }
    assert misbehaving(session, cases) == []


def test_a_department_of_the_wrong_type_is_refused(session: Session, world: World) -> None:
    cases: dict[str, tuple[Expect, Callable[[], Any]]] = {
        f"favoured_department={value!r}": (
            frozenset({V}),
            _submit(world, session, bias_flag=True, favoured_department=value),
        )
        for value in (True, {})
    }
    assert misbehaving(session, cases) == []


def test_a_corrected_answer_that_is_not_text_is_refused(session: Session, world: World) -> None:
    call_and_check(
        session,
        "edge: corrected_answer 123",
        frozenset({V}),
        lambda: review.confirm(
            session,
            actor=world.sme,
            item_id=world.hr_item,
            root_cause="retrieval_error",
            corrected_answer=123,
            note=None,
            expected_row_version=world.hr_item_version,
            now=NOW,
        ),
    )
