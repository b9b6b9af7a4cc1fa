"""Concurrent auditors rating through the services (next_item → submit_rating), and the figures the
README quotes: throughput (ratings/s) and p95 latency, with a check that nothing was lost or doubled.

    python -m tests.reliability.load_report                       # SQLite: 10 auditors x 100 ratings
    AUDITLOOP_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1/postgres \\
        python -m tests.reliability.load_report --backend postgres   # 50 auditors x 100 ratings

Each auditor is a thread with its own sessions (so its own pooled connection). Like the rating page,
one transaction shows the next item and another submits the rating. Pairs of auditors share every
answer (overlap 2) and reach it at the same moment, so routing races for the same review item.
``tests/reliability/test_load.py`` runs the same harness and asserts the checks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from audit import schema
from audit.answers.models import Answer
from audit.auditlog.models import AuditLogEntry
from audit.db import make_engine, make_session_factory, run_in_transaction
from audit.modelops.models import ModelVersion
from audit.org.models import Department, User
from audit.ratings import service as ratings_service
from audit.ratings.models import Rating
from audit.review import routing
from audit.review.models import ReviewItem
from audit.review.policy import load_routing_policy
from audit.review.repository import current_scores
from audit.sampling import service as sampling_service
from audit.sampling.models import Assignment, SampleBatch, SampleItem

DEPARTMENTS = ("HR", "Finance", "Legal", "IT")
SAMPLE_DATE = dt.date(2026, 11, 28)
ANSWERED_AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)


@dataclass(frozen=True)
class LoadPlan:
    auditors: int
    per_auditor: int  # ratings each auditor submits
    overlap: int = 2  # auditors per answer; must divide ``auditors``

    @property
    def total(self) -> int:
        return self.auditors * self.per_auditor

    @property
    def answers(self) -> int:
        return self.total // self.overlap


@dataclass
class LoadResult:
    backend: str
    auditors: int
    ratings: int
    seconds: float
    submit_latencies_s: list[float] = field(repr=False)
    cycle_latencies_s: list[float] = field(repr=False)  # next_item + submit_rating
    errors: list[str]
    routing_misses: int = 0  # answers whose review item disagrees with the rules on the final ratings

    @property
    def ratings_per_second(self) -> float:
        return self.ratings / self.seconds if self.seconds > 0 else 0.0

    @staticmethod
    def _p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) >= 2 else 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "auditors": self.auditors,
            "ratings": self.ratings,
            "seconds": round(self.seconds, 2),
            "ratings_per_second": round(self.ratings_per_second, 1),
            "submit_p50_ms": round(statistics.median(self.submit_latencies_s) * 1000, 1)
            if self.submit_latencies_s
            else None,
            "submit_p95_ms": round(self._p95(self.submit_latencies_s) * 1000, 1),
            "cycle_p95_ms": round(self._p95(self.cycle_latencies_s) * 1000, 1),
            "errors": len(self.errors),
            "routing_misses": self.routing_misses,
        }

    def line(self) -> str:
        f = self.figures()
        return (
            f"load {f['backend']}: {f['auditors']} auditors, {f['ratings']} ratings in {f['seconds']} s = "
            f"{f['ratings_per_second']} ratings/s; submit p50 {f['submit_p50_ms']} ms, p95 {f['submit_p95_ms']} ms; "
            f"next+submit p95 {f['cycle_p95_ms']} ms; {f['errors']} errors; {f['routing_misses']} routing misses"
        )


# ----------------------------------------------------------------------------- the data


def seed(engine: Engine, plan: LoadPlan) -> list[int]:
    """Departments, auditors, answers, one sample batch and every assignment; returns the auditor ids.

    Answer j goes to auditors j mod (A/2) and j mod (A/2) + A/2 (for overlap 2), so each pair of
    auditors works down the same answers in the same order.
    """
    if plan.auditors % plan.overlap:
        raise ValueError("overlap must divide the number of auditors")
    group = plan.auditors // plan.overlap
    with make_session_factory(engine).begin() as session:
        department_ids = [
            session.scalar(insert(Department).values(name=name).returning(Department.id)) for name in DEPARTMENTS
        ]
        model_id = session.scalar(
            insert(ModelVersion).values(name="load-v1", base_model="builtin:tiny").returning(ModelVersion.id)
        )
        auditor_ids = [
            int(
                session.scalar(
                    insert(User)
                    .values(
                        username=f"load{i:03d}", display_name=f"Load {i}", role="auditor", active=True, failed_logins=0
                    )
                    .returning(User.id)
                )
            )
            for i in range(plan.auditors)
        ]
        session.execute(
            insert(Answer),
            [
                {
                    "external_id": f"load-{j}",
                    "question": f"Load question {j}: how many days of leave?",
                    "answer_text": f"Answer {j}: twenty-five days.",
                    "asker_department_id": department_ids[j % len(department_ids)],
                    "model_version_id": model_id,
                    "sources": [],
                    "cites_other_department": False,
                    "confidence": -1.0,
                    "latency_ms": 100,
                    "created_at": ANSWERED_AT,
                    "content_hash": f"{j:064d}",
                }
                for j in range(plan.answers)
            ],
        )
        answer_ids = list(session.scalars(select(Answer.id).order_by(Answer.id)))
        batch_id = session.scalar(
            insert(SampleBatch)
            .values(
                sample_date=SAMPLE_DATE,
                strategy="load-test",
                parameters={},
                window_start=ANSWERED_AT - dt.timedelta(days=1),
                window_end=ANSWERED_AT + dt.timedelta(days=1),
                population=plan.answers,
            )
            .returning(SampleBatch.id)
        )
        session.execute(
            insert(SampleItem),
            [
                {
                    "batch_id": batch_id,
                    "answer_id": answer_id,
                    "stratum": "load/normal",
                    "inclusion_weight": 1.0,
                    "overlap_k": plan.overlap,
                }
                for answer_id in answer_ids
            ],
        )
        items = session.execute(select(SampleItem.id, SampleItem.answer_id).order_by(SampleItem.id)).all()
        session.execute(
            insert(Assignment),
            [
                {
                    "sample_item_id": item_id,
                    "answer_id": answer_id,
                    "auditor_id": auditor_ids[j % group + k * group],
                    "status": "pending",
                    "position": item_id,
                }
                for j, (item_id, answer_id) in enumerate(items)
                for k in range(plan.overlap)
            ],
        )
        # the hot path reads the batch's item id range from its parameters, as draw_sample stores it
        session.execute(
            SampleBatch.__table__.update()
            .where(SampleBatch.id == batch_id)
            .values(parameters={"item_id_range": [items[0][0], items[-1][0]]})
        )
    return auditor_ids


def scores_for(assignment_id: int, auditor_id: int) -> dict[str, Any]:
    """Deterministic, varied scores: some low, some far apart from the partner's, a few bias flags."""
    rng = random.Random(assignment_id * 7919 + auditor_id)
    scores: dict[str, Any] = {d: rng.randint(1, 5) for d in ("accuracy", "completeness", "relevance", "coherence")}
    if rng.random() < 0.05:
        scores.update(bias_flag=True, disfavoured_department=rng.choice(DEPARTMENTS))
    scores["seconds_spent"] = rng.randint(5, 120)
    return scores


# ----------------------------------------------------------------------------- the burst


def _auditor(
    engine: Engine,
    auditor_id: int,
    start: threading.Barrier,
    result: LoadResult,
    lock: threading.Lock,
    retries: int,
) -> None:
    factory = make_session_factory(engine)
    submits: list[float] = []
    cycles: list[float] = []
    try:
        start.wait()
        while True:
            began = time.perf_counter()

            def show(session: Session) -> sampling_service.NextItem | None:
                return sampling_service.next_item(session, actor=session.get_one(User, auditor_id))

            item = run_in_transaction(factory, show, retries=retries)
            if item is None:
                break
            shown = time.perf_counter()

            def submit(session: Session, assignment_id: int = item.assignment_id) -> None:
                ratings_service.submit_rating(
                    session,
                    actor=session.get_one(User, auditor_id),
                    assignment_id=assignment_id,
                    idempotency_key=f"load-{assignment_id}",
                    **scores_for(assignment_id, auditor_id),
                )

            run_in_transaction(factory, submit, retries=retries)
            done = time.perf_counter()
            submits.append(done - shown)
            cycles.append(done - began)
    except Exception:
        with lock:
            result.errors.append(f"auditor {auditor_id}: {traceback.format_exc()}")
    finally:
        with lock:
            result.submit_latencies_s.extend(submits)
            result.cycle_latencies_s.extend(cycles)
            result.ratings += len(submits)


def run_burst(engine: Engine, auditor_ids: list[int], *, retries: int = 0) -> LoadResult:
    """Every auditor rates every assignment concurrently; ``retries=0``: any database error surfaces."""
    result = LoadResult(
        backend=engine.dialect.name,
        auditors=len(auditor_ids),
        ratings=0,
        seconds=0.0,
        submit_latencies_s=[],
        cycle_latencies_s=[],
        errors=[],
    )
    start = threading.Barrier(len(auditor_ids) + 1)
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_auditor, args=(engine, a, start, result, lock, retries), name=f"auditor-{a}")
        for a in auditor_ids
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    result.routing_misses = len(routing_misses(engine))
    return result


# ----------------------------------------------------------------------------- the checks


@dataclass(frozen=True)
class StoredState:
    ratings: int
    duplicate_answer_auditor_pairs: int
    assignments_not_submitted: int
    submitted_without_one_rating: int  # submitted assignments without exactly one rating of theirs
    ratings_not_matching_assignment: int  # answer or auditor differs from the assignment's
    rating_audit_entries: int


def stored_state(engine: Engine) -> StoredState:
    with Session(engine) as session:
        duplicates = session.scalar(
            select(func.count()).select_from(
                select(Rating.answer_id, Rating.auditor_id)
                .group_by(Rating.answer_id, Rating.auditor_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
        per_assignment = select(Rating.assignment_id, func.count().label("n")).group_by(Rating.assignment_id).subquery()
        without_one = session.scalar(
            select(func.count())
            .select_from(Assignment)
            .outerjoin(per_assignment, per_assignment.c.assignment_id == Assignment.id)
            .where(Assignment.status == "submitted", func.coalesce(per_assignment.c.n, 0) != 1)
        )
        mismatched = session.scalar(
            select(func.count())
            .select_from(Rating)
            .join(Assignment, Assignment.id == Rating.assignment_id)
            .where((Rating.answer_id != Assignment.answer_id) | (Rating.auditor_id != Assignment.auditor_id))
        )
        return StoredState(
            ratings=int(session.scalar(select(func.count()).select_from(Rating)) or 0),
            duplicate_answer_auditor_pairs=int(duplicates or 0),
            assignments_not_submitted=int(
                session.scalar(select(func.count()).select_from(Assignment).where(Assignment.status != "submitted"))
                or 0
            ),
            submitted_without_one_rating=int(without_one or 0),
            ratings_not_matching_assignment=int(mismatched or 0),
            rating_audit_entries=int(
                session.scalar(
                    select(func.count()).select_from(AuditLogEntry).where(AuditLogEntry.action == "rating.submit")
                )
                or 0
            ),
        )


def routing_misses(engine: Engine) -> list[int]:
    """Answers whose review item (reasons, or its absence) is not what the routing rules give for the
    final current ratings: an item missed when two submits of one answer raced."""
    with Session(engine) as session:
        policy = load_routing_policy(session)
        answer_ids = list(session.scalars(select(Answer.id)))
        scores = current_scores(session, answer_ids)
        items = {i.answer_id: tuple(i.reasons) for i in session.scalars(select(ReviewItem))}
        return [
            answer_id
            for answer_id in answer_ids
            if routing.reasons_for(scores.get(answer_id, []), None, policy) != items.get(answer_id, ())
        ]


# ----------------------------------------------------------------------------- databases for the script


@contextmanager
def sqlite_database() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="auditloop-load-"))
    url = f"sqlite:///{folder / 'load.db'}"
    engine = make_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    name = f"auditloop_load_{uuid.uuid4().hex[:10]}"
    admin = make_engine(admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure(url: str, plan: LoadPlan) -> tuple[LoadResult, StoredState]:
    """Seed ``plan`` into the migrated database at ``url``, run the burst, read back what was stored."""
    engine = make_engine(url, pool_size=plan.auditors)
    try:
        auditor_ids = seed(engine, plan)
        result = run_burst(engine, auditor_ids)
        return result, stored_state(engine)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--auditors", type=int, help="default: 10 on SQLite, 50 on PostgreSQL")
    parser.add_argument("--ratings-per-auditor", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    rows = []
    for backend in backends:
        plan = LoadPlan(
            auditors=args.auditors or (10 if backend == "sqlite" else 50), per_auditor=args.ratings_per_auditor
        )
        if backend == "sqlite":
            database = sqlite_database()
        else:
            admin_url = os.environ.get("AUDITLOOP_TEST_POSTGRES_URL")
            if not admin_url:
                print(
                    "error: set AUDITLOOP_TEST_POSTGRES_URL to a PostgreSQL server for --backend postgres",
                    file=sys.stderr,
                )
                return 1
            database = postgres_database(admin_url)
        with database as url:
            result, state = measure(url, plan)
        lost_or_doubled = state.ratings != plan.total or state.duplicate_answer_auditor_pairs or result.errors
        rows.append({**result.figures(), "stored": asdict(state), "expected_ratings": plan.total})
        if not args.json:
            print(result.line())
            print(
                f"  stored: {asdict(state)}"
                + ("  <-- PROBLEM" if lost_or_doubled else "  (nothing lost, nothing doubled)")
            )
            for error in result.errors[:3]:
                print("  " + error.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0 if all(not r["errors"] and r["stored"]["ratings"] == r["expected_ratings"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
