"""Typed builders for test data, in one place. Each returns a flushed row with sensible defaults."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from typing import Any

from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.knowledge.models import Document, Example
from audit.modelops.models import ModelVersion
from audit.org.models import Department, User
from audit.org.repository import department_by_name
from audit.ratings.models import Rating

_seq = itertools.count(1)
TEST_PASSWORD = "correct-horse-battery"  # meets the 12-character policy
# one cheap argon2id hash reused by every test user (hashing at default cost is ~50 ms)
_cached_hash: str | None = None


def _password_hash() -> str:
    global _cached_hash
    if _cached_hash is None:
        from audit.org.passwords import hash_password

        _cached_hash = hash_password(TEST_PASSWORD)
    return _cached_hash


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def department(session: Session, name: str | None = None) -> Department:
    name = name or f"Dept{next(_seq)}"
    existing = department_by_name(session, name)
    if existing is not None:
        return existing
    dept = Department(name=name)
    session.add(dept)
    session.flush()
    return dept


def user(
    session: Session,
    *,
    role: str = "auditor",
    username: str | None = None,
    departments: list[Department] | None = None,
    home_department: Department | None = None,
    active: bool = True,
) -> User:
    u = User(
        username=username or f"{role}{next(_seq)}",
        display_name=username or role.title(),
        role=role,
        password_hash=_password_hash(),
        active=active,
        failed_logins=0,
        home_department_id=home_department.id if home_department else None,
    )
    u.departments = list(departments or [])
    session.add(u)
    session.flush()
    return u


def model_version(session: Session, name: str | None = None, *, alias: str | None = None) -> ModelVersion:
    mv = ModelVersion(name=name or f"v{next(_seq)}", base_model="builtin:tiny", alias=alias)
    session.add(mv)
    session.flush()
    return mv


def document(
    session: Session,
    *,
    dept: Department,
    family: str | None = None,
    version: int = 1,
    title: str | None = None,
    body: str = "Policy text.",
    effective_date: dt.date = dt.date(2026, 1, 1),
) -> Document:
    n = next(_seq)
    family = family or f"DOC-{n}"
    doc = Document(
        external_id=f"{family}@v{version}",
        family=family,
        department_id=dept.id,
        title=title or f"Document {n}",
        body=body,
        version=version,
        effective_date=effective_date,
        content_hash=sha(f"{family}{version}{body}"),
    )
    session.add(doc)
    session.flush()
    return doc


def example(
    session: Session,
    *,
    dept: Department,
    question: str | None = None,
    answer: str = "An answer.",
    status: str = "active",
    origin: str = "curated",
    sources: list[str] | None = None,
) -> Example:
    question = question or f"Question {next(_seq)}?"
    ex = Example(
        question=question,
        answer=answer,
        department_id=dept.id,
        source_document_ids=sources or [],
        origin=origin,
        status=status,
        content_hash=sha(question + "\x1f" + answer),
    )
    session.add(ex)
    session.flush()
    return ex


def answer(
    session: Session,
    *,
    dept: Department,
    model: ModelVersion,
    question: str | None = None,
    text: str = "The answer.",
    created_at: dt.datetime | None = None,
    confidence: float | None = -1.0,
    sources: list[dict[str, Any]] | None = None,
    external_id: str | None = None,
) -> Answer:
    n = next(_seq)
    a = Answer(
        external_id=external_id or f"ans-{n}",
        question=question or f"What about {n}?",
        answer_text=text,
        asker_department_id=dept.id,
        model_version_id=model.id,
        sources=sources or [],
        cites_other_department=False,
        confidence=confidence,
        latency_ms=100,
        created_at=created_at or dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC),
        content_hash=sha(f"ans-{n}"),
    )
    session.add(a)
    session.flush()
    return a


def rating(
    session: Session,
    *,
    ans: Answer,
    auditor: User,
    accuracy: int | None = 4,
    completeness: int | None = 4,
    relevance: int | None = 4,
    coherence: int | None = 4,
    origin: str = "app",
    created_at: dt.datetime | None = None,
    **extra: Any,
) -> Rating:
    r = Rating(
        answer_id=ans.id,
        auditor_id=auditor.id,
        accuracy=accuracy,
        completeness=completeness,
        relevance=relevance,
        coherence=coherence,
        origin=origin,
        created_at=created_at or dt.datetime(2026, 11, 27, 13, tzinfo=dt.UTC),
        **extra,
    )
    session.add(r)
    session.flush()
    return r


# Appended by the fixes helper (the imports above are not ours to edit, hence the noqa).
from audit.knowledge.hashing import normalise_text  # noqa: E402
from audit.review.models import ReviewDecision, ReviewItem  # noqa: E402
from audit.sampling.models import GoldItem  # noqa: E402


def confirmed_review(
    session: Session,
    *,
    ans: Answer,
    sme: User,
    root_cause: str,
    corrected_answer: str | None = None,
    correct_document: Document | None = None,
    reasons: list[str] | None = None,
) -> ReviewItem:
    """A review item of ``ans`` that ``sme`` confirmed with a root cause (and correction)."""
    item = ReviewItem(
        answer_id=ans.id,
        department_id=ans.asker_department_id,
        reasons=reasons or ["low_score"],
        status="confirmed",
    )
    session.add(item)
    session.flush()
    session.add(
        ReviewDecision(
            review_item_id=item.id,
            sme_id=sme.id,
            decision="confirm",
            root_cause=root_cause,
            corrected_answer=corrected_answer,
            correct_document_id=correct_document.id if correct_document else None,
        )
    )
    session.flush()
    return item


def held_out_gold(session: Session, *, dept: Department, question: str, reference: str = "Reference.") -> GoldItem:
    """A gold item (held-out evaluation question); question_hash = sha256 of the normalised question."""
    gold = GoldItem(
        question=question,
        question_hash=sha(normalise_text(question)),
        reference_answer=reference,
        department_id=dept.id,
        reference_document_ids=[],
    )
    session.add(gold)
    session.flush()
    return gold


# Appended by the recipe helper: gold questions, training jobs, and a small company to train on.
from audit.knowledge import datasets as _datasets  # noqa: E402
from audit.modelops.models import TrainingJob  # noqa: E402

TOPICS = ("retention", "approval", "notice", "review")


def gold_question(
    session: Session,
    *,
    dept: Department,
    question: str,
    reference: str,
    documents: list[Document] | None = None,
    key_values: list[str] | None = None,
) -> GoldItem:
    """A held-out gold question with its reference answer, reference documents and key values."""
    gold = GoldItem(
        question=question,
        question_hash=sha(" ".join(question.split()).casefold()),
        reference_answer=reference,
        department_id=dept.id,
        reference_document_ids=[d.external_id for d in documents or []],
        key_values=key_values or [],
    )
    session.add(gold)
    session.flush()
    return gold


def training_job(
    session: Session,
    *,
    dataset_version_id: int | None = None,
    status: str = "queued",
    config: dict[str, Any] | None = None,
    attempts: int = 0,
    max_attempts: int = 3,
    worker_id: str | None = None,
    heartbeat_at: dt.datetime | None = None,
) -> TrainingJob:
    job = TrainingJob(
        status=status,
        active=True if status in ("queued", "running") else None,
        trigger_reason="test",
        dataset_version_id=dataset_version_id,
        config=config or {},
        attempts=attempts,
        max_attempts=max_attempts,
        worker_id=worker_id,
        heartbeat_at=heartbeat_at,
        claimed_at=heartbeat_at,
    )
    session.add(job)
    session.flush()
    return job


def training_company(
    session: Session, *, departments: tuple[str, ...] = ("Legal", "Finance", "HR"), examples_per_topic: int = 2
) -> dict[str, Any]:
    """A small knowledge base to fine-tune and evaluate on: per department one document per topic
    stating a number of days, curated examples asking for it, and one held-out gold question per
    topic (worded differently). Writes dataset version 1 (current). Returns the rows by kind."""
    docs: list[Document] = []
    examples: list[Example] = []
    gold: list[GoldItem] = []
    for d_index, name in enumerate(departments):
        dept = department(session, name)
        for t_index, topic in enumerate(TOPICS):
            days = 10 + 7 * d_index + 3 * t_index
            doc = document(
                session,
                dept=dept,
                family=f"{name[:3].upper()}-{topic.upper()}",
                title=f"{name} {topic.title()} Policy",
                body=(
                    f"The {name} {topic} period is {days} days. Requests outside the {topic} period need "
                    f"written sign-off by the head of {name}. This policy applies to all {name} staff."
                ),
            )
            docs.append(doc)
            phrasings = [f"What is the {name} {topic} period?", f"How long is the {topic} period in {name}?"]
            for question in phrasings[:examples_per_topic]:
                examples.append(
                    example(
                        session,
                        dept=dept,
                        question=question,
                        answer=f"The {name} {topic} period is {days} days.",
                        sources=[doc.external_id],
                    )
                )
            gold.append(
                gold_question(
                    session,
                    dept=dept,
                    question=f"For {name}, how many days does the {topic} period last?",
                    # worded unlike the training answers: a reference equal to one would leak
                    reference=f"In {name} the {topic} period lasts {days} days.",
                    documents=[doc],
                    key_values=[f"{days} days"],
                )
            )
    version, _ = _datasets.create_version(session, actor=None, change_log=[{"kind": "seed", "note": "test company"}])
    return {"documents": docs, "examples": examples, "gold": gold, "dataset_version": version}


# Appended by the workflow helper (sampling, ratings, review).
from audit.sampling.models import Assignment, SampleBatch, SampleItem  # noqa: E402


def gold_answer(
    session: Session,
    *,
    ans: Answer,
    accuracy: int | None = 5,
    completeness: int | None = 5,
    relevance: int | None = 5,
    coherence: int | None = 5,
    reference: str = "The reference answer.",
) -> GoldItem:
    """A gold item pointing at an existing answer, with its expected scores."""
    gold = GoldItem(
        answer_id=ans.id,
        question=ans.question,
        question_hash=sha(f"gold-{ans.id}-{ans.question}"),
        reference_answer=reference,
        department_id=ans.asker_department_id,
        reference_document_ids=[],
        expected_accuracy=accuracy,
        expected_completeness=completeness,
        expected_relevance=relevance,
        expected_coherence=coherence,
    )
    session.add(gold)
    session.flush()
    return gold


def assignment(
    session: Session,
    *,
    ans: Answer,
    auditor: User,
    sample_date: dt.date = dt.date(2026, 11, 28),
    status: str = "pending",
    overlap_k: int = 1,
) -> Assignment:
    """A pending assignment of ``ans`` to ``auditor`` in the batch of ``sample_date`` (created if missing)."""
    batch = session.query(SampleBatch).filter_by(sample_date=sample_date).one_or_none()
    if batch is None:
        start = dt.datetime.combine(sample_date, dt.time(0), tzinfo=dt.UTC)
        batch = SampleBatch(
            sample_date=sample_date,
            strategy="test",
            parameters={},
            window_start=start - dt.timedelta(days=1),
            window_end=start,
            population=0,
        )
        session.add(batch)
        session.flush()
    item = session.query(SampleItem).filter_by(batch_id=batch.id, answer_id=ans.id).one_or_none()
    if item is None:
        item = SampleItem(
            batch_id=batch.id, answer_id=ans.id, stratum="test/normal", inclusion_weight=1.0, overlap_k=overlap_k
        )
        session.add(item)
        session.flush()
    a = Assignment(
        sample_item_id=item.id,
        answer_id=ans.id,
        auditor_id=auditor.id,
        status=status,
        position=item.id,
        skip_reason="test" if status == "skipped" else None,
    )
    session.add(a)
    session.flush()
    return a


_mlflow_template: Any = None


def mlflow_store(folder: Any) -> str:
    """A ready local MLflow store in ``folder`` (a ``file:`` URI, as the settings give one).

    Creating an MLflow SQLite store runs its migrations (seconds); the first call builds one empty
    store and every call copies its database file.
    """
    import shutil
    import tempfile
    from pathlib import Path

    global _mlflow_template
    if _mlflow_template is None:
        from training.tracking import resolve_tracking_uri

        template_dir = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
        uri, _ = resolve_tracking_uri(template_dir.as_uri())
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=uri).search_experiments()  # creates the tables
        _mlflow_template = template_dir / "mlflow.db"
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(_mlflow_template, target / "mlflow.db")
    return target.as_uri()


# Appended by the measures helper (funnel steps: sample items, dataset versions, fixes).
from audit.fixes.models import DataFix  # noqa: E402
from audit.knowledge.models import DatasetVersion  # noqa: E402


def sample_item(
    session: Session,
    *,
    ans: Answer,
    weight: float = 1.0,
    created_at: dt.datetime | None = None,
    sample_date: dt.date = dt.date(2026, 11, 28),
) -> SampleItem:
    """``ans`` drawn into the batch of ``sample_date`` (created if missing) with an inclusion weight."""
    batch = session.query(SampleBatch).filter_by(sample_date=sample_date).one_or_none()
    if batch is None:
        start = dt.datetime.combine(sample_date, dt.time(0), tzinfo=dt.UTC)
        batch = SampleBatch(
            sample_date=sample_date,
            strategy="test",
            parameters={},
            window_start=start - dt.timedelta(days=1),
            window_end=start,
            population=0,
        )
        session.add(batch)
        session.flush()
    item = SampleItem(
        batch_id=batch.id,
        answer_id=ans.id,
        stratum="test/normal",
        inclusion_weight=weight,
        created_at=created_at or dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
    )
    session.add(item)
    session.flush()
    return item


def dataset_version(session: Session, *, number: int, created_at: dt.datetime | None = None) -> DatasetVersion:
    """A bare dataset version row (no examples) numbered ``number``."""
    version = DatasetVersion(
        number=number,
        content_hash=sha(f"dataset-version-{number}-{next(_seq)}"),
        change_log=[],
        example_count=0,
        counts_by_department={},
        counts_by_origin={},
        created_at=created_at or dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
    )
    session.add(version)
    session.flush()
    return version


def data_fix(
    session: Session,
    *,
    review: ReviewItem,
    status: str = "applied",
    decided_at: dt.datetime | None = None,
    version: DatasetVersion | None = None,
    kind: str = "add_example",
) -> DataFix:
    """A fix of ``review``; an applied one records when and the dataset version it produced."""
    fix = DataFix(
        review_item_id=review.id,
        kind=kind,
        status=status,
        payload={},
        reason="test",
        decided_at=decided_at,
        dataset_version_id=version.id if version else None,
    )
    session.add(fix)
    session.flush()
    return fix
