"""Write the demo company into an empty database (``auditloop demo seed``).

``seed_demo`` fills every table the dashboards read from the objects of ``corpus.build_corpus`` and
``traffic.simulate_traffic``: departments, one account per role (random passwords, argon2id), documents
with superseded versions, curated examples and dataset version 1, model ``v0`` (champion), answers,
held-out and calibration gold items, and simulated past ratings. Content depends only on the seed and
``today``; passwords come from ``secrets``. Bulk Core inserts; the caller commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.auditlog import service as auditlog
from audit.demo.corpus import DEFAULT_SEED, DemoCorpus, DemoDocument, build_corpus
from audit.demo.traffic import (
    DEFAULT_DAYS,
    DEMO_AUDITORS,
    MAX_DAYS,
    MODEL_VERSION,
    DemoRating,
    DemoTraffic,
    simulate_traffic,
)
from audit.errors import ConflictError, ValidationError
from audit.ingest.answers import answer_content_hash
from audit.ingest.records import AnswerRecord, SourceRecord
from audit.knowledge import datasets
from audit.knowledge.hashing import example_content_hash, question_hash
from audit.knowledge.models import Document, Example
from audit.modelops.models import ModelVersion
from audit.org import service as org_service
from audit.org.models import Department, User
from audit.permissions import require
from audit.ratings.models import Rating
from audit.ratings.rubric import RUBRIC_VERSION
from audit.sampling.models import GoldItem
from audit.settings import BUILTIN_TINY

PASSWORD_BYTES = 15  # token_urlsafe(15) gives 20 characters

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Credential:
    username: str
    role: str
    departments: list[str]  # covered (SME) or home (auditor) departments
    password: str


@dataclass
class SeedReport:
    seed: int
    days: int
    today: dt.date
    counts: dict[str, int]
    by_department: dict[str, dict[str, Any]]
    dataset_version: int
    credentials: list[Credential] = field(repr=False)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "days": self.days,
            "today": self.today.isoformat(),
            "counts": self.counts,
            "by_department": self.by_department,
            "dataset_version": self.dataset_version,
            "seconds": round(self.seconds, 2),
        }


def _sha256_json(record: dict[str, Any]) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def ensure_empty(session: Session) -> None:
    """Refuse to seed a database that already holds data: demo rows must never mix with real ones."""
    held = {
        "departments": session.scalar(select(func.count()).select_from(Department)) or 0,
        "users": session.scalar(select(func.count()).select_from(User)) or 0,
        "documents": session.scalar(select(func.count()).select_from(Document)) or 0,
        "examples": session.scalar(select(func.count()).select_from(Example)) or 0,
        "answers": session.scalar(select(func.count()).select_from(Answer)) or 0,
    }
    present = ", ".join(f"{n} {table}" for table, n in held.items() if n)
    if present:
        raise ConflictError(
            f"the database already holds data ({present}): demo seed only fills an empty database "
            "(point AUDITLOOP_DATABASE_URL at a new one and run `auditloop db upgrade`)"
        )


def seed_demo(
    session: Session,
    *,
    actor: User | None,
    today: dt.date,
    seed: int = DEFAULT_SEED,
    days: int = DEFAULT_DAYS,
    progress: Progress | None = None,
) -> SeedReport:
    """Fill an empty database with the demo company. The caller commits."""
    require(actor, "manage_users")
    require(actor, "ingest")
    if not 1 <= days <= MAX_DAYS:
        raise ValidationError(f"days: {days} is out of range (1 to {MAX_DAYS})")
    say = progress or (lambda _stage: None)
    started = time.perf_counter()
    ensure_empty(session)

    say("generating corpus and traffic")
    corpus = build_corpus(seed)
    traffic = simulate_traffic(corpus, days=days, today=today)

    say("departments and users (argon2id)")
    department_ids = {
        name: org_service.create_department(session, actor=actor, name=name).id for name in corpus.departments
    }
    credentials = _create_users(session, actor=actor, departments=corpus.departments)

    say(f"documents ({len(corpus.documents)})")
    _insert_documents(session, corpus.documents, department_ids)

    say(f"examples ({len(corpus.examples)}) and dataset version 1")
    session.execute(
        insert(Example),
        [
            {
                "external_id": e.external_id,
                "question": e.question,
                "answer": e.answer,
                "department_id": department_ids[e.department],
                "source_document_ids": list(e.source_document_ids),
                "origin": e.origin,
                "status": e.status,
                "content_hash": example_content_hash(e.question, e.answer),
            }
            for e in corpus.examples
        ],
    )
    version, _ = datasets.create_version(
        session, actor=actor, change_log=[{"kind": "seed", "note": "demo curated examples"}]
    )

    window_start = dt.datetime.combine(today - dt.timedelta(days=days), dt.time(), tzinfo=dt.UTC)
    model = ModelVersion(
        name=MODEL_VERSION,
        base_model=BUILTIN_TINY,
        dataset_version_id=version.id,
        hyperparameters={"note": "the built-in base model, pretrained on the demo corpus; no adapter"},
        alias="champion",
        created_at=window_start - dt.timedelta(days=1),
        promoted_at=window_start - dt.timedelta(days=1),
    )
    session.add(model)
    session.flush()

    say(f"answers ({len(traffic.answers)})")
    answer_ids = _insert_answers(session, traffic, department_ids, model_id=model.id)

    say(f"gold items ({len(corpus.gold) + len(traffic.calibration)})")
    _insert_gold(session, corpus, traffic, department_ids, answer_ids)

    say(f"simulated ratings ({len(traffic.ratings)})")
    insert_ratings(session, traffic.ratings, answer_ids)

    report = SeedReport(
        seed=seed,
        days=days,
        today=today,
        counts=_counts(corpus, traffic, credentials),
        by_department=_by_department(corpus, traffic),
        dataset_version=version.number,
        credentials=credentials,
    )
    auditlog.record(
        session, actor=actor, action="demo.seed", entity_type="database", details={"seed": seed, **report.counts}
    )
    session.flush()
    report.seconds = time.perf_counter() - started
    return report


def insert_ratings(session: Session, ratings: Sequence[DemoRating], answer_ids: Mapping[str, int]) -> None:
    """Store simulated ratings (origin ``simulated``) of the answers ``answer_ids`` names (external id →
    id); the auditors and departments are looked up by name."""
    if not ratings:
        return
    department_ids = dict(session.execute(select(Department.name, Department.id)).tuples().all())
    user_ids = dict(session.execute(select(User.username, User.id)).tuples().all())
    session.execute(
        insert(Rating),
        [
            {
                "answer_id": answer_ids[r.answer_external_id],
                "auditor_id": user_ids[r.auditor],
                "accuracy": r.accuracy,
                "completeness": r.completeness,
                "relevance": r.relevance,
                "coherence": r.coherence,
                "sources_correct": r.sources_correct,
                "bias_flag": r.bias_flag,
                "favoured_department_id": department_ids[r.favoured_department] if r.favoured_department else None,
                "disfavoured_department_id": (
                    department_ids[r.disfavoured_department] if r.disfavoured_department else None
                ),
                "comment": r.comment,
                "suggested_correction": r.suggested_correction,
                "rubric_version": RUBRIC_VERSION,
                "seconds_spent": r.seconds_spent,
                "origin": "simulated",
                "is_current": True,
                "created_at": r.created_at,
            }
            for r in ratings
        ],
    )


def _create_users(session: Session, *, actor: User | None, departments: Sequence[str]) -> list[Credential]:
    accounts: list[tuple[str, str, str, list[str], str | None]] = [
        ("admin", "admin", "Demo Administrator", [], None),
        ("lead", "lead", "Research Lead", [], None),
    ]
    accounts += [(f"sme.{name.lower()}", "sme", f"{name} Subject-Matter Expert", [name], name) for name in departments]
    accounts += [
        (
            a.username,
            "auditor",
            f"Auditor {a.username.removeprefix('auditor')} ({a.home_department})",
            [],
            a.home_department,
        )
        for a in DEMO_AUDITORS
    ]
    credentials = []
    for username, role, display_name, covered, home in accounts:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        org_service.create_user(
            session,
            actor=actor,
            username=username,
            role=role,
            password=password,
            display_name=display_name,
            departments=covered,
            home_department=home,
        )
        credentials.append(Credential(username, role, covered or ([home] if home else []), password))
    return credentials


def _insert_documents(
    session: Session, documents: Sequence[DemoDocument], department_ids: dict[str, int]
) -> dict[str, int]:
    session.execute(
        insert(Document),
        [
            {
                "external_id": d.external_id,
                "family": d.family,
                "department_id": department_ids[d.department],
                "title": d.title,
                "body": d.body,
                "version": d.version,
                "effective_date": d.effective_date,
                "content_hash": _sha256_json(
                    {"family": d.family, "version": d.version, "title": d.title, "body": d.body}
                ),
            }
            for d in documents
        ],
    )
    ids = dict(session.execute(select(Document.external_id, Document.id)).tuples().all())
    # The newer version exists only now, so the old one is pointed at it in a second pass.
    superseded = [
        {"id": ids[d.external_id], "superseded_by_id": ids[d.superseded_by]} for d in documents if d.superseded_by
    ]
    if superseded:
        session.execute(update(Document), superseded)
    return ids


def _insert_answers(
    session: Session, traffic: DemoTraffic, department_ids: dict[str, int], *, model_id: int
) -> dict[str, int]:
    encoder = msgspec.json.Encoder()
    rows = []
    for a in traffic.answers:
        rows.append(
            {
                "external_id": a.external_id,
                "question": a.question,
                "answer_text": a.answer_text,
                "asker_department_id": department_ids[a.department],
                "model_version_id": model_id,
                "sources": a.sources,
                "top_source_department_id": department_ids[a.sources[0]["department"]],
                "cites_other_department": any(s["department"] != a.department for s in a.sources),
                "confidence": a.confidence,
                "latency_ms": a.latency_ms,
                "created_at": a.created_at,
                # the ingest hash of the same record, so re-ingesting an exported demo answer is a no-op
                "content_hash": answer_content_hash(
                    AnswerRecord(
                        external_id=a.external_id,
                        question=a.question,
                        answer=a.answer_text,
                        asker_department=a.department,
                        model_version=MODEL_VERSION,
                        created_at=a.created_at,
                        sources=[SourceRecord(**source) for source in a.sources],
                        confidence=a.confidence,
                        latency_ms=a.latency_ms,
                    ),
                    encoder,
                ),
            }
        )
    session.execute(insert(Answer), rows)
    return dict(session.execute(select(Answer.external_id, Answer.id)).tuples().all())


def _insert_gold(
    session: Session,
    corpus: DemoCorpus,
    traffic: DemoTraffic,
    department_ids: dict[str, int],
    answer_ids: dict[str, int],
) -> None:
    rows: list[dict[str, Any]] = [
        {
            "answer_id": None,
            "question": g.question,
            "question_hash": question_hash(g.question),
            "reference_answer": g.reference_answer,
            "department_id": department_ids[g.department],
            "reference_document_ids": list(g.reference_document_ids),
            "key_values": list(g.key_values),
        }
        for g in corpus.gold
    ]
    rows += [
        {
            "answer_id": answer_ids[c.answer_external_id],
            "question": c.question,
            "question_hash": question_hash(c.question),
            "reference_answer": c.reference_answer,
            "department_id": department_ids[c.department],
            "reference_document_ids": list(c.reference_document_ids),
            "key_values": list(c.key_values),
            "expected_accuracy": c.expected.accuracy,
            "expected_completeness": c.expected.completeness,
            "expected_relevance": c.expected.relevance,
            "expected_coherence": c.expected.coherence,
        }
        for c in traffic.calibration
    ]
    session.execute(insert(GoldItem), rows)


def _counts(corpus: DemoCorpus, traffic: DemoTraffic, credentials: Sequence[Credential]) -> dict[str, int]:
    planted = Counter(e.planted for e in corpus.examples if e.planted)
    return {
        "departments": len(corpus.departments),
        "users": len(credentials),
        "documents": len(corpus.documents),
        "documents_superseded": sum(1 for d in corpus.documents if d.superseded_by),
        "examples": len(corpus.examples),
        "examples_conflicting": planted["conflicting"],
        "examples_outdated": planted["outdated"],
        "dataset_versions": 1,
        "model_versions": 1,
        "answers": len(traffic.answers),
        "answers_wrong": sum(1 for a in traffic.answers if not a.correct),
        "gold_items": len(corpus.gold) + len(traffic.calibration),
        "gold_items_with_answer": len(traffic.calibration),
        "ratings": len(traffic.ratings),
        "ratings_bias_flagged": sum(1 for r in traffic.ratings if r.bias_flag),
    }


def _by_department(corpus: DemoCorpus, traffic: DemoTraffic) -> dict[str, dict[str, Any]]:
    asker_of = {a.external_id: a.department for a in traffic.answers}
    table: dict[str, dict[str, Any]] = {}
    for name in corpus.departments:
        answers = [a for a in traffic.answers if a.department == name]
        accuracies = [r.accuracy for r in traffic.ratings if asker_of[r.answer_external_id] == name]
        table[name] = {
            "documents": sum(1 for d in corpus.documents if d.department == name),
            "examples": sum(1 for e in corpus.examples if e.department == name),
            "gold": sum(1 for g in corpus.gold if g.department == name),
            "answers": len(answers),
            "answers_correct_share": round(sum(a.correct for a in answers) / len(answers), 3) if answers else None,
            "mean_rated_accuracy": round(statistics.fmean(accuracies), 2) if accuracies else None,
        }
    return table


def write_credentials(path: Path, credentials: Sequence[Credential], *, seed: int) -> Path:
    """Write the demo accounts' passwords to ``path``, readable by the owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width = max(len(c.username) for c in credentials)
    lines = [
        f"# auditloop demo accounts (seed {seed}). Change these passwords or delete this file after use.",
        *(
            f"{c.username.ljust(width)}  {c.role.ljust(7)}  {c.password}  {','.join(c.departments)}".rstrip()
            for c in credentials
        ),
    ]
    # Created 0600 from the start (never briefly world-readable); fchmod also fixes a pre-existing file.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write("\n".join(lines) + "\n")
    return path
