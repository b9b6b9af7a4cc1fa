"""The audit trail: every login, rating, review decision, fix, training job and promotion, driven through
its service, is in the audit log with its actor and a timezone-aware time; and nothing but the one
writer (``audit/auditlog/service.py``) writes the log — no module updates or deletes it.

That the database itself refuses UPDATE and DELETE on ``audit_log`` (triggers from the migrations) is
tested in ``tests/audit/test_constraints.py``; logging out is tested in ``tests/app/test_pages.py``.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.auditlog.models import AuditLogEntry
from audit.base import utcnow
from audit.fixes import service as fixes_service
from audit.org import service as org_service
from audit.ratings import service as ratings
from audit.review import routing
from audit.review import service as review
from tests import factories as f
from tests.reliability.conftest import report
from training import gate, jobs

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("audit", "app", "training")
THE_WRITER = "audit/auditlog/service.py"


class Registry:
    def __init__(self) -> None:
        self.champion: str | None = None

    def set_champion(self, run_id: str | None) -> None:
        self.champion = run_id

    def champion_run_id(self) -> str | None:
        return self.champion


def logged(session: Session, action: str, since: dt.datetime) -> list[AuditLogEntry]:
    session.flush()
    return list(
        session.scalars(
            select(AuditLogEntry)
            .where(AuditLogEntry.action == action, AuditLogEntry.at >= since)
            .order_by(AuditLogEntry.id)
        )
    )


def test_every_state_change_worth_auditing_leaves_an_entry_with_actor_and_time(session: Session) -> None:
    started = utcnow() - dt.timedelta(seconds=1)
    hr = f.department(session, "HR")
    alice = f.user(session, username="alice")
    bob = f.user(session, username="bob")
    sme = f.user(session, role="sme", username="sam.sme", departments=[hr])
    lead = f.user(session, role="lead", username="lee.lead")
    model = f.model_version(session, "v0", alias="champion")
    checked: list[str] = []

    def expect(action: str, actor: str, entity: Any = None, **details: Any) -> None:
        """Exactly one new entry of ``action`` by ``actor`` (about ``entity``), stamped with an aware time now."""
        entries = [e for e in logged(session, action, started) if entity is None or e.entity_id == str(entity)]
        assert len(entries) == 1, f"{action}: {len(entries)} entries"
        entry = entries[0]
        assert entry.actor_name == actor, (action, entry.actor_name)
        assert entry.at.tzinfo is not None and started <= entry.at <= utcnow() + dt.timedelta(seconds=1)
        for key, value in details.items():
            assert entry.details.get(key) == value, (action, key, entry.details)
        checked.append(action)

    # ---- logins
    assert org_service.authenticate(session, "alice", f.TEST_PASSWORD).ok
    expect("login.success", "alice", alice.id)
    assert not org_service.authenticate(session, "alice", "not the password").ok
    expect("login.failed", "alice", alice.id)
    assert not org_service.authenticate(session, "nobody.here", "whatever password").ok
    assert any(e.actor_name == "nobody.here" and e.actor_id is None for e in logged(session, "login.failed", started))

    # ---- ratings: submit, edit, skip
    answers = [f.answer(session, dept=hr, model=model) for _ in range(3)]
    first = f.assignment(session, ans=answers[0], auditor=alice)
    second = f.assignment(session, ans=answers[0], auditor=bob, overlap_k=2)
    skipped = f.assignment(session, ans=answers[1], auditor=alice)
    submitted = ratings.submit_rating(
        session, actor=alice, assignment_id=first.id, accuracy=1, completeness=2, relevance=2, coherence=3
    )
    expect("rating.submit", "alice", submitted.rating.id, assignment_id=first.id)
    edited = ratings.edit_rating(
        session, actor=alice, rating_id=submitted.rating.id, accuracy=1, completeness=1, relevance=2, coherence=3
    )
    expect("rating.edit", "alice", edited.rating.id, supersedes=submitted.rating.id)
    ratings.submit_rating(
        session, actor=bob, assignment_id=second.id, accuracy=5, completeness=5, relevance=5, coherence=5
    )
    ratings.skip_assignment(session, actor=alice, assignment_id=skipped.id, reason="needs legal knowledge")
    expect("assignment.skip", "alice", skipped.id, reason="needs legal knowledge")
    item = routing.route_answer(session, answers[0].id)
    assert item is not None
    expect("review.open", "routing", item.id)

    # ---- review decisions: claim, confirm; dismiss another
    review.claim(session, actor=sme, item_id=item.id)
    expect("review.claim", "sam.sme", item.id)
    version = review.current_version(session, actor=sme, item_id=item.id)
    review.confirm(
        session,
        actor=sme,
        item_id=item.id,
        root_cause="hallucination",
        corrected_answer="The corrected answer, with the right number of days.",
        note=None,
        expected_row_version=version,
    )
    expect("review.confirm", "sam.sme", item.id, root_cause="hallucination")
    f.rating(session, ans=answers[2], auditor=bob, accuracy=1)
    other = routing.route_answer(session, answers[2].id)
    assert other is not None
    review.dismiss(
        session, actor=sme, item_id=other.id, note="the answer is right", expected_row_version=other.row_version
    )
    expect("review.dismiss", "sam.sme", other.id)

    # ---- fixes: proposed by the lead's run, applied by the lead (a new dataset version)
    f.example(session, dept=hr)
    proposals = fixes_service.propose_fixes(session, actor=lead)
    fix_ids = list(proposals.proposed)
    assert fix_ids, proposals.as_dict()
    expect("fix.proposed", "lee.lead", fix_ids[0])
    applied = fixes_service.apply_fixes(session, actor=lead, fix_ids=fix_ids, evaluate_triggers=False)
    assert applied.applied
    expect("fix.applied", "lee.lead", fix_ids[0])
    expect("dataset.version_created", "lee.lead")

    # ---- a training job: queued by the lead, claimed, failed and retried, claimed, succeeded
    job = jobs.enqueue(session, actor=lead, reason="enough fixes")
    expect("training.queued", "lee.lead", job.id)
    claimed = jobs.claim_next(session, worker_id="gpu-1:42")
    assert claimed is not None and claimed.id == job.id
    expect("training.claimed", "gpu-1:42", job.id)
    assert (
        jobs.finish_failure(session, job_id=job.id, worker_id="gpu-1:42", error="CUDA out of memory", retry=True)
        == "queued"
    )
    expect("training.retry", "gpu-1:42", job.id)
    assert jobs.claim_next(session, worker_id="gpu-2:7") is not None
    candidate = f.model_version(session, "v1")
    jobs.finish_success(session, job_id=job.id, worker_id="gpu-2:7", model_version_id=candidate.id)
    expect("training.succeeded", "gpu-2:7", job.id, model_version_id=candidate.id)

    # ---- the gate's verdict, a lead's promotion, and the rollback
    candidate.gate_result = {"passed": False, "failed": ["quality"]}
    gate.promote(session, actor=lead, name="v1", registry=Registry(), force=True)
    expect("model.promote", "lee.lead", "v1", retired="v0", forced=True)
    gate.rollback(session, actor=lead, registry=Registry())
    expect("model.rollback", "lee.lead", "v0", demoted="v1", restored="v0")

    # ---- account changes
    org_service.set_role(session, actor=None, username="bob", role="sme", departments=["HR"])
    expect("user.set_role", "system", bob.id)
    org_service.set_active(session, actor=None, username="bob", active=False)
    expect("user.deactivate", "system", bob.id)
    report("audit trail", f"{len(checked)} kinds of state change checked for an entry with actor and time")


def test_the_gate_records_its_verdict_as_the_system(session: Session) -> None:
    from training.evaluation import EvaluationSummary

    started = utcnow() - dt.timedelta(seconds=1)
    candidate = f.model_version(session, "v7")
    scores = EvaluationSummary(
        signature="gold-v1",
        n=4,
        metrics={"rougeL": 0.5, "f1": 0.5},
        by_department={"HR": {"rougeL": 0.5, "f1": 0.5}},
        department_counts={"HR": 4},
        department_gap={"rougeL": 0.0, "f1": 0.0},
    )
    decision = gate.decide(candidate=scores, champion=None, comparison=None)
    gate.apply_decision(session, candidate=candidate, decision=decision, require_approval=True, registry=Registry())
    [entry] = logged(session, "model.gate", started)
    assert (entry.actor_name, entry.actor_id, entry.entity_id) == ("system", None, "v7")
    assert entry.details["status"] == gate.STATUS_AWAITING_APPROVAL


# ----------------------------------------------------------------------------- nobody else writes the log


def python_files() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS for p in (REPO / d).rglob("*.py"))


def test_only_the_audit_log_service_constructs_or_writes_entries() -> None:
    """Every reference to AuditLogEntry outside its model and the one writer is a read (select/where/
    order_by); nothing calls insert/update/delete on it or on the table by name."""
    problems: list[str] = []
    for path in python_files():
        relative = path.relative_to(REPO).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                targets = [a for a in node.args if isinstance(a, ast.Name) and a.id == "AuditLogEntry"]
                if name == "AuditLogEntry" and relative != THE_WRITER:
                    problems.append(f"{relative}:{node.lineno}: constructs AuditLogEntry")
                if targets and name in {"insert", "update", "delete", "add", "merge", "bulk_save_objects"}:
                    problems.append(f"{relative}:{node.lineno}: {name}(AuditLogEntry)")
    assert problems == []


WRITES_THE_TABLE = re.compile(r"\b(?:update|delete\s+from|insert\s+into|truncate)\s+(?:table\s+)?\"?audit_log\b", re.I)


def test_no_sql_text_writes_the_audit_log_table() -> None:
    offenders = [
        f"{p.relative_to(REPO)}:{n}"
        for p in python_files()
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if WRITES_THE_TABLE.search(line)
    ]
    assert offenders == []


def test_the_audit_log_readers_only_read(session: Session) -> None:
    """The app's audit-log page and the CLI read through audit.auditlog.repository, whose functions run
    SELECTs only (no flush of anything pending, no new rows)."""
    from audit.auditlog import repository

    f.user(session, username="reader")
    before = session.scalars(select(AuditLogEntry.id)).all()
    statements: list[str] = []
    from sqlalchemy import event

    connection = session.connection()
    listener: Callable[..., None] = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(connection, "before_cursor_execute", listener)
    try:
        repository.entries(session, actor=None, limit=10)
        repository.actions(session, actor=None)
    finally:
        event.remove(connection, "before_cursor_execute", listener)
    assert statements and all(s.lstrip().upper().startswith("SELECT") for s in statements)
    assert session.scalars(select(AuditLogEntry.id)).all() == before
