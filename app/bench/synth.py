"""Fill a database with a realistic company at a chosen scale, fast.

Answers go through the ingest bulk path (:func:`audit.ingest.bulk.insert_answers`); the other
tables through the same raw-driver technique (``executemany`` on SQLite, ``COPY`` on PostgreSQL).
Deterministic for a seed and an anchor day. 1M answers / 200k ratings take one to three minutes on
SQLite (two busy cores), a little more on PostgreSQL.

What it writes, for ``answers=N`` (days end at ``anchor``, by default today's UTC midnight):
- 5 departments, 2 model versions (v0 retired, v1 champion), 200 documents, 50 auditors,
  one SME per department, a lead and an admin (password-less: set one to log in);
- N answers spread over ``days`` days (default ``max(7, ceil(N / 50k))``, so one day holds at most
  50k answers);
- ``ratings = N/5`` ratings on the answers of every day but the last: one per rated answer, two
  auditors for a quarter of them (overlap), each through a submitted assignment of that day's
  sample batch (inclusion weights, assignment position = sample item id, as the sampler writes);
  the last day stays unsampled, so ``draw_sample(sample_date=anchor)`` has a fresh day to draw;
- 200 gold items on rated answers (expected scores, questions unlike the others);
- review items for low scores and bias flags (one per ``ratings / 20``), half confirmed with an
  SME's correction, each confirmed one with a proposed ``add_example`` fix carrying the payload the
  fixes service writes (so it can be applied);
- ``min(N/10, 100k)`` curated examples.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import ProgrammingError

from audit.ingest.bulk import AnswerRow, driver_connection, insert_answers, sqlite_timestamp
from audit.knowledge.hashing import example_content_hash

DEPARTMENTS = ("Legal", "Compliance", "Finance", "Engineering", "HR")
# the production mix of askers; Compliance documents are over-cited
ASK_WEIGHTS = (0.2, 0.3, 0.2, 0.2, 0.1)
ANSWERS_PER_DAY_MAX = 50_000
AUDITORS = 50
GOLD_ITEMS = 200
MODEL_NAME = "v1"

_TOPICS = (
    "expense approval",
    "data retention",
    "trade reporting",
    "deploy pipeline",
    "parental leave",
    "vendor onboarding",
    "gift and hospitality",
    "incident response",
    "access review",
    "market abuse",
    "travel booking",
    "contract signature",
    "KYC refresh",
    "code review",
    "overtime pay",
)
_FILLER = (
    "The policy requires the responsible manager to approve the request before the deadline, and the "
    "record is kept in the system of record for the retention period stated in section 4. Exceptions "
    "need a documented justification and the sign-off of the department head. "
)


def default_anchor() -> dt.datetime:
    """Today's UTC midnight: the synthetic history ends where the real calendar is, so the app's
    "today" and "the last 30 days" see it."""
    return dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(0), tzinfo=dt.UTC)


def default_days(answers: int) -> int:
    return max(7, math.ceil(answers / ANSWERS_PER_DAY_MAX))


@dataclass(frozen=True)
class Reference:
    """Ids of the reference data, for the answers and ratings that point at it."""

    department_ids: dict[str, int]
    user_ids: dict[str, int]
    auditor_ids: list[int]
    model_version_id: int


@dataclass(frozen=True)
class SynthResult:
    answers: int
    ratings: int
    examples: int
    proposed_fixes: int
    days: int
    seconds: float
    department_ids: dict[str, int]
    auditor_ids: list[int]
    model_version_id: int
    first_day: dt.date
    last_day: dt.date  # the unsampled day: its answers are drawn by draw_sample(sample_date=anchor)
    anchor: dt.datetime


class SynthAnswer(NamedTuple):
    """One generated answer, before any ids are known (what an ingest line says)."""

    external_id: str
    question: str
    answer: str
    asker_department: str
    top_department: str
    sources: list[dict[str, Any]]
    confidence: float
    latency_ms: int
    created_at: dt.datetime


def bulk_insert(connection: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert rows into ``table`` with the raw driver in the caller's transaction.

    Datetimes must be timezone-aware; on SQLite they are written as UTCDateTime stores them.
    """
    raw = driver_connection(connection)
    count = 0
    if connection.dialect.name == "sqlite":

        def convert(row: Sequence[Any]) -> tuple[Any, ...]:
            return tuple(sqlite_timestamp(v) if isinstance(v, dt.datetime) else v for v in row)

        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608 -- names are code constants
        cursor = raw.cursor()
        try:
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                batch.append(convert(row))
                if len(batch) >= 20_000:
                    cursor.executemany(sql, batch)
                    count += len(batch)
                    batch.clear()
            if batch:
                cursor.executemany(sql, batch)
                count += len(batch)
        finally:
            cursor.close()
        return count
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _answer_text(rng: random.Random, topic: str, n: int, chars: int) -> str:
    # 700 characters by default: with the question and sources a row is ~900 bytes, like production answers
    return (
        f"According to the {topic} policy, the answer to request {n} is that the responsible manager must "
        f"approve it within {rng.randint(2, 30)} business days. " + _FILLER * 3
    )[:chars]


def gold_question(n: int) -> str:
    """Gold questions share no wording with the answers' questions (corrections must not look like a leak)."""
    return f"Calibration case {n}: which {_TOPICS[n % len(_TOPICS)]} rule governs unit {n}?"


def insert_reference_data(conn: Connection, *, now: dt.datetime) -> Reference:
    """Departments, model versions, documents and users: what answers and ratings point at."""
    bulk_insert(conn, "departments", ("name", "created_at"), [(d, now) for d in DEPARTMENTS])
    dept_ids = {name: i for i, name in conn.execute(text("SELECT id, name FROM departments"))}
    dept_list = [dept_ids[d] for d in DEPARTMENTS]
    bulk_insert(
        conn,
        "model_versions",
        ("name", "base_model", "alias", "hyperparameters", "evaluation", "gate_result", "created_at"),
        [
            ("v0", "builtin:tiny", "retired", "{}", "{}", "{}", now),
            (MODEL_NAME, "builtin:tiny", "champion", "{}", "{}", "{}", now),
        ],
    )
    model_id = conn.execute(text("SELECT id FROM model_versions WHERE name = :n"), {"n": MODEL_NAME}).scalar_one()
    docs = []
    for i in range(200):
        dept = DEPARTMENTS[i % 5]
        body = f"{_TOPICS[i % len(_TOPICS)].title()} policy for {dept}. " + _FILLER
        docs.append(
            (
                f"BENCH-{i}@v1",
                f"BENCH-{i}",
                dept_ids[dept],
                f"{_TOPICS[i % len(_TOPICS)].title()} {i}",
                body,
                1,
                dt.date(2026, 1, 1),
                _sha(body + str(i)),
                now,
            )
        )
    bulk_insert(
        conn,
        "documents",
        (
            "external_id",
            "family",
            "department_id",
            "title",
            "body",
            "version",
            "effective_date",
            "content_hash",
            "created_at",
        ),
        docs,
    )
    users = [(f"auditor{i:02d}", f"Auditor {i}", "auditor", dept_list[i % 5], True, 0, now) for i in range(AUDITORS)]
    users += [(f"sme.{d.lower()}", f"SME {d}", "sme", dept_ids[d], True, 0, now) for d in DEPARTMENTS]
    users += [("lead", "Lead", "lead", None, True, 0, now), ("admin", "Admin", "admin", None, True, 0, now)]
    bulk_insert(
        conn,
        "users",
        ("username", "display_name", "role", "home_department_id", "active", "failed_logins", "created_at"),
        users,
    )
    user_ids = {u: i for i, u in conn.execute(text("SELECT id, username FROM users"))}
    bulk_insert(
        conn,
        "user_departments",
        ("user_id", "department_id"),
        [(user_ids[f"sme.{d.lower()}"], dept_ids[d]) for d in DEPARTMENTS],
    )
    return Reference(
        department_ids=dept_ids,
        user_ids=user_ids,
        auditor_ids=[user_ids[f"auditor{i:02d}"] for i in range(AUDITORS)],
        model_version_id=model_id,
    )


def generate_answers(
    count: int,
    *,
    days: int,
    anchor: dt.datetime,
    seed: int = 7,
    prefix: str = "bench",
    gold: frozenset[int] = frozenset(),
    answer_chars: int = 700,
) -> Iterator[SynthAnswer]:
    """``count`` answers spread evenly over the ``days`` days before ``anchor``; answer ``n`` in
    ``gold`` gets a gold-style question."""
    rng = random.Random(seed)
    per_day = math.ceil(count / days)
    for n in range(count):
        day = n // per_day
        asker = rng.choices(DEPARTMENTS, ASK_WEIGHTS)[0]
        top = "Compliance" if rng.random() < 0.45 else asker
        topic = _TOPICS[n % len(_TOPICS)]
        created = anchor - dt.timedelta(days=days - day) + dt.timedelta(seconds=(n % per_day) * 86_000 / per_day)
        yield SynthAnswer(
            external_id=f"{prefix}-{n}",
            question=gold_question(n) if n in gold else f"How does the {topic} policy apply to request {n}?",
            answer=_answer_text(rng, topic, n, answer_chars),
            asker_department=asker,
            top_department=top,
            sources=[{"document_id": f"BENCH-{(n * 7) % 200}@v1", "department": top, "score": 0.8}],
            confidence=-rng.random() * 2.5,
            latency_ms=rng.randint(200, 3000),
            created_at=created,
        )


def answer_row(answer: SynthAnswer, ref: Reference, now: dt.datetime) -> AnswerRow:
    asker = ref.department_ids[answer.asker_department]
    top = ref.department_ids[answer.top_department]
    return AnswerRow(
        answer.external_id,
        answer.question,
        answer.answer,
        asker,
        ref.model_version_id,
        json.dumps(answer.sources),
        top,
        top != asker,
        answer.confidence,
        answer.latency_ms,
        answer.created_at,
        _sha(answer.external_id),
        now,
    )


def answer_line(answer: SynthAnswer) -> str:
    """The answer as one line of ``auditloop ingest answers`` (about 900 bytes)."""
    return json.dumps(
        {
            "external_id": answer.external_id,
            "question": answer.question,
            "answer": answer.answer,
            "asker_department": answer.asker_department,
            "model_version": MODEL_NAME,
            "created_at": answer.created_at.isoformat(),
            "confidence": answer.confidence,
            "latency_ms": answer.latency_ms,
            "sources": answer.sources,
        }
    )


def _rated_indexes(answers: int, ratings: int, days: int) -> list[int]:
    """Which answers get rated: evenly spread over every day but the last (left for a fresh sample)."""
    per_day = math.ceil(answers / days)
    eligible = min(answers, per_day * (days - 1))
    rated_answers = min(eligible, max(1, round(ratings / 1.25))) if ratings else 0
    if not rated_answers:
        return []
    step = max(1, eligible // rated_answers)
    return list(range(0, eligible, step))[:rated_answers]


def synthesize(
    engine: Engine,
    *,
    answers: int,
    ratings: int | None = None,
    days: int | None = None,
    anchor: dt.datetime | None = None,
    seed: int = 7,
    progress: Callable[[str], None] = lambda _msg: None,
) -> SynthResult:
    """Fill an empty, migrated database. Returns what it wrote (ids the bench needs)."""
    started = time.perf_counter()
    rng = random.Random(seed + 1)
    ratings = answers // 5 if ratings is None else ratings
    days = days or default_days(answers)
    if days < 2:
        raise ValueError("days: at least 2 (the last day is left unsampled)")
    anchor = anchor or default_anchor()
    first_day = (anchor - dt.timedelta(days=days)).date()
    per_day = math.ceil(answers / days)
    now = anchor
    chosen = _rated_indexes(answers, ratings, days)
    gold_indexes = chosen[:: max(1, len(chosen) // GOLD_ITEMS)][:GOLD_ITEMS]
    gold_set = frozenset(gold_indexes)
    with engine.begin() as conn:
        # -- reference data ----------------------------------------------------------------------
        progress("reference data")
        ref = insert_reference_data(conn, now=now)
        dept_ids = ref.department_ids
        user_ids = ref.user_ids
        auditor_ids = ref.auditor_ids

        # -- answers -----------------------------------------------------------------------------
        chunk: list[AnswerRow] = []
        asker_of: list[int] = []
        question_of: dict[int, str] = {}
        for n, answer in enumerate(generate_answers(answers, days=days, anchor=anchor, seed=seed, gold=gold_set)):
            row = answer_row(answer, ref, now)
            chunk.append(row)
            asker_of.append(row.asker_department_id)
            if n in gold_set:
                question_of[n] = answer.question
            if len(chunk) >= 50_000:
                insert_answers(conn, chunk)
                chunk.clear()
                progress(f"answers {n + 1:,}/{answers:,}")
        insert_answers(conn, chunk)
        chunk.clear()
        first_answer_id = conn.execute(text("SELECT MIN(id) FROM answers")).scalar_one()

        # -- samples, assignments, ratings -------------------------------------------------------
        progress("samples and ratings")
        overlap_every = 4  # a quarter of rated answers get a second auditor
        per_day_counts: dict[int, int] = {}
        for idx in chosen:
            per_day_counts[idx // per_day] = per_day_counts.get(idx // per_day, 0) + 1
        batches = [
            (
                first_day + dt.timedelta(days=d + 1),
                "stratified",
                "{}",
                anchor - dt.timedelta(days=days - d),
                anchor - dt.timedelta(days=days - d - 1),
                per_day,
                now,
            )
            for d in sorted(per_day_counts)
        ]
        bulk_insert(
            conn,
            "sample_batches",
            ("sample_date", "strategy", "parameters", "window_start", "window_end", "population", "created_at"),
            batches,
        )
        batch_ids = [r[0] for r in conn.execute(text("SELECT id FROM sample_batches ORDER BY sample_date"))]
        batch_of_day = dict(zip(sorted(per_day_counts), batch_ids, strict=True))
        item_rows = []
        for idx in chosen:
            d = idx // per_day
            k = 2 if idx % overlap_every == 0 else 1
            sampled_at = anchor - dt.timedelta(days=days - d - 1)
            item_rows.append(
                (
                    batch_of_day[d],
                    first_answer_id + idx,
                    DEPARTMENTS[[dept_ids[x] for x in DEPARTMENTS].index(asker_of[idx])] + "/normal",
                    per_day / per_day_counts[d],
                    idx in gold_set,
                    False,
                    k,
                    sampled_at,
                )
            )
        bulk_insert(
            conn,
            "sample_items",
            (
                "batch_id",
                "answer_id",
                "stratum",
                "inclusion_weight",
                "is_gold",
                "low_confidence",
                "overlap_k",
                "created_at",
            ),
            item_rows,
        )
        item_ids = [r[0] for r in conn.execute(text("SELECT id FROM sample_items ORDER BY id"))]
        assignment_rows = []
        rating_plan = []
        written = 0
        for position, (idx, item_id) in enumerate(zip(chosen, item_ids, strict=True)):
            k = 2 if idx % overlap_every == 0 else 1
            for j in range(k):
                if written >= ratings:
                    break
                auditor = auditor_ids[(position + j * 17) % len(auditor_ids)]
                sampled_at = anchor - dt.timedelta(days=days - idx // per_day - 1)
                created = sampled_at + dt.timedelta(hours=10, seconds=position % 3600)
                assignment_rows.append(
                    (item_id, first_answer_id + idx, auditor, "submitted", item_id, sampled_at, created)
                )
                rating_plan.append((idx, auditor, created))
                written += 1
        bulk_insert(
            conn,
            "assignments",
            ("sample_item_id", "answer_id", "auditor_id", "status", "position", "assigned_at", "completed_at"),
            assignment_rows,
        )
        assignment_ids = [r[0] for r in conn.execute(text("SELECT id FROM assignments ORDER BY id"))]
        rating_rows = []
        for (idx, auditor, created), assignment_id in zip(rating_plan, assignment_ids, strict=True):
            weak = asker_of[idx] == dept_ids["HR"]
            base = rng.choice((2, 3, 4, 4, 5)) - (1 if weak and rng.random() < 0.4 else 0)
            acc = min(5, max(1, base + rng.choice((-1, 0, 0, 1))))
            flag = rng.random() < 0.03
            rating_rows.append(
                (
                    first_answer_id + idx,
                    auditor,
                    assignment_id,
                    acc,
                    min(5, max(1, base)),
                    min(5, max(1, base + 1)),
                    min(5, max(1, base)),
                    rng.choice(("yes", "yes", "no", "unsure")),
                    flag,
                    dept_ids["Compliance"] if flag else None,
                    asker_of[idx] if flag else None,
                    "v1",
                    rng.randint(20, 200),
                    "simulated",
                    True,
                    created,
                )
            )
        bulk_insert(
            conn,
            "ratings",
            (
                "answer_id",
                "auditor_id",
                "assignment_id",
                "accuracy",
                "completeness",
                "relevance",
                "coherence",
                "sources_correct",
                "bias_flag",
                "favoured_department_id",
                "disfavoured_department_id",
                "rubric_version",
                "seconds_spent",
                "origin",
                "is_current",
                "created_at",
            ),
            rating_rows,
        )

        # -- gold items on rated answers -----------------------------------------------------------
        progress("gold items")
        gold_rows = []
        for i, idx in enumerate(gold_indexes):
            expected = 2 + i % 3
            gold_rows.append(
                (
                    first_answer_id + idx,
                    question_of[idx],
                    _sha(question_of[idx]),
                    f"Gold reference answer {i}: the owner approves within {i % 30 + 1} days.",
                    asker_of[idx],
                    "[]",
                    expected,
                    expected,
                    min(5, expected + 1),
                    expected,
                    now,
                )
            )
        bulk_insert(
            conn,
            "gold_items",
            (
                "answer_id",
                "question",
                "question_hash",
                "reference_answer",
                "department_id",
                "reference_document_ids",
                "expected_accuracy",
                "expected_completeness",
                "expected_relevance",
                "expected_coherence",
                "created_at",
            ),
            gold_rows,
        )

        # -- reviews, decisions, fixes -----------------------------------------------------------
        progress("reviews and fixes")
        flagged: dict[int, tuple[list[str], dt.datetime]] = {}
        for rating in rating_rows:
            if rating[0] - first_answer_id in gold_set:
                continue  # a correction of a gold answer would be refused as an evaluation-set leak
            reasons = (["low_score"] if rating[3] <= 2 else []) + (["bias_flag"] if rating[8] else [])
            if reasons:
                known, created = flagged.get(rating[0], ([], rating[15]))
                flagged[rating[0]] = (sorted(set(known + reasons)), created)
        review_rows = [
            (answer_id, asker_of[answer_id - first_answer_id], json.dumps(reasons), "open", 1, created, created)
            for answer_id, (reasons, created) in list(flagged.items())[: max(1, ratings // 20)]
        ]
        bulk_insert(
            conn,
            "review_items",
            ("answer_id", "department_id", "reasons", "status", "row_version", "created_at", "updated_at"),
            review_rows,
        )
        reviews = list(conn.execute(text("SELECT id, answer_id, department_id FROM review_items ORDER BY id")))
        decided = reviews[::2]
        if decided:
            parity = decided[0][0] % 2
            conn.execute(
                text("UPDATE review_items SET status = 'confirmed' WHERE id % 2 = :parity"), {"parity": parity}
            )
        sme_of = {dept_ids[d]: user_ids[f"sme.{d.lower()}"] for d in DEPARTMENTS}
        corrections = {
            rid: f"Request {answer_id - first_answer_id}: the responsible manager approves within 5 business days."
            for rid, answer_id, _ in decided
        }
        bulk_insert(
            conn,
            "review_decisions",
            ("review_item_id", "sme_id", "decision", "root_cause", "corrected_answer", "created_at"),
            [(rid, sme_of[dept], "confirm", "wrong_training_data", corrections[rid], now) for rid, _, dept in decided],
        )
        questions = _questions(conn, [answer_id for _, answer_id, _ in decided])
        department_name = {i: name for name, i in dept_ids.items()}
        fix_rows = []
        for rid, answer_id, dept in decided:
            question = questions[answer_id]
            payload = {
                "question": question,
                "answer": corrections[rid],
                "department_id": dept,
                "department": department_name[dept],
                "source_document_ids": [f"BENCH-{((answer_id - first_answer_id) * 7) % 200}@v1"],
                "origin": "correction",
                "origin_review_id": rid,
                "content_hash": example_content_hash(question, corrections[rid]),
            }
            fix_rows.append(
                (rid, "add_example", "proposed", json.dumps(payload), f"review {rid} confirmed (synthetic)", now)
            )
        bulk_insert(
            conn, "data_fixes", ("review_item_id", "kind", "status", "payload", "reason", "proposed_at"), fix_rows
        )

        # -- examples ----------------------------------------------------------------------------
        progress("examples")
        n_examples = min(100_000, max(100, answers // 10))
        example_rows = []
        for i in range(n_examples):
            dept = DEPARTMENTS[min(4, int(rng.random() ** 1.6 * 5))]
            q = f"What does the {_TOPICS[i % len(_TOPICS)]} policy say about case {i}?"
            a = f"Case {i}: the {dept} owner approves within {i % 30 + 1} days. " + _FILLER[:160]
            example_rows.append(
                (
                    f"bench-ex-{i}",
                    q,
                    a,
                    dept_ids[dept],
                    json.dumps([f"BENCH-{i % 200}@v1"]),
                    "curated",
                    "active",
                    example_content_hash(q, a),
                    now,
                )
            )
        bulk_insert(
            conn,
            "examples",
            (
                "external_id",
                "question",
                "answer",
                "department_id",
                "source_document_ids",
                "origin",
                "status",
                "content_hash",
                "created_at",
            ),
            example_rows,
        )
    progress("settling: statistics, write-back of the load")
    analyze(engine, progress=progress)
    return SynthResult(
        answers=answers,
        ratings=len(rating_rows),
        examples=n_examples,
        proposed_fixes=len(fix_rows),
        days=days,
        seconds=time.perf_counter() - started,
        department_ids=dept_ids,
        auditor_ids=auditor_ids,
        model_version_id=ref.model_version_id,
        first_day=first_day,
        last_day=(anchor - dt.timedelta(days=1)).date(),
        anchor=anchor,
    )


def _questions(conn: Connection, answer_ids: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for start in range(0, len(answer_ids), 5_000):
        part = list(answer_ids[start : start + 5_000])
        if not part:
            continue
        placeholders = ", ".join(f":a{i}" for i in range(len(part)))
        rows = conn.execute(
            text(f"SELECT id, question FROM answers WHERE id IN ({placeholders})"),  # noqa: S608 -- bound names only
            {f"a{i}": v for i, v in enumerate(part)},
        )
        found.update({int(i): q for i, q in rows})
    return found


def analyze(engine: Engine, *, progress: Callable[[str], None] = lambda _msg: None) -> None:
    """Settle the database after the bulk load, as a DBA would before letting users in: refresh the
    planner statistics and write the load out, so that what the bench measures next is the service,
    not the tail end of its own setup.

    - PostgreSQL: VACUUM, as autovacuum would after a bulk insert: it sets the visibility map, without
      which no index-only scan is planned (the reports read answers through a covering index). Then
      CHECKPOINT: at 1M answers the load leaves ~1.2 GiB of written pages in the OS cache, and
      whenever the spread checkpoint (``max_wal_size`` reached near the end of the load) or the
      kernel flushes them, every commit's WAL fsync queues behind that write-back. Measured on a
      fresh 1M database: next/submit p95 4.3/5.4 ms after a CHECKPOINT, 12.3/14.0 ms with the same
      flush running during the measurement (the full bench had 16.4/21.3 ms at 1M against 7.6/9.6 at
      10k; whether a flush falls into the figures depends on timing, so it is a tail, not a median,
      effect). A database that grew over months has long been written out.
    - SQLite: ANALYZE. Its commit checkpoints the WAL, which writes the load into the file and syncs
      it, so nothing of the load is left to write back (measured: 1 MiB dirty after a 1M load).
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            try:
                conn.exec_driver_sql("CHECKPOINT")
            except ProgrammingError as exc:  # a role without pg_checkpoint (or superuser): say so, go on
                progress(
                    f"CHECKPOINT refused ({str(exc.orig).strip()}): the load's write-back may fall into the figures"
                )
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
