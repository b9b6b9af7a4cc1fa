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
