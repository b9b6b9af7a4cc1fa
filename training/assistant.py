"""The assistant: retrieve current documents → build the prompt → generate → store the answers.

``auditloop answer`` drives it: the champion (or a named) model version answers a JSONL file of
questions; answers are stored through the ingest fast path with the same derived columns and
content hash as ``auditloop ingest answers``, idempotent on their external id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import ConfigurationError, NotFoundError, ValidationError
from audit.ingest import bulk
from audit.ingest.answers import answer_content_hash
from audit.ingest.records import AnswerRecord, SourceRecord
from audit.modelops.models import ModelVersion
from audit.org import repository as org_repo
from audit.org.models import User
from audit.permissions import require
from audit.settings import Settings
from training.choices import ANSWER_BATCH_SIZE, ANSWER_MAX_NEW_TOKENS, ANSWER_TOP_K
from training.generation import GenerationBackend, choose_backend
from training.prompts import DEFAULT_CONTEXT_CHARS, build_prompt, fit_prompt
from training.reranking import RerankedRetriever, load_reranker
from training.retrieval import Hit, RetrievalDocument, Retriever

MAX_ERRORS_SHOWN = 20


@dataclass(frozen=True)
class Question:
    question: str
    asker_department: str
    external_id: str | None = None
    line: int = 0  # line in the questions file, for error messages


def read_questions(path: Path) -> list[Question]:
    """Questions from a JSONL file: ``{"question", "asker_department", "external_id"?}`` per line.

    Blank lines are skipped. Any bad line rejects the file, every problem reported as
    ``FILE:LINE: field: problem``.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise ValidationError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    questions: list[Question] = []
    errors: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            errors.append(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            continue
        problems = []
        for name in ("question", "asker_department"):
            value = obj.get(name)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{name}: required, a non-empty string")
        external_id = obj.get("external_id")
        if external_id is not None and (
            not isinstance(external_id, str) or not external_id.strip() or len(external_id) > 128
        ):
            problems.append("external_id: a string of 1 to 128 characters, or absent")
        unknown = sorted(set(obj) - {"question", "asker_department", "external_id"})
        if unknown:
            problems.append(f"{unknown[0]}: unknown field (expected question, asker_department, external_id)")
        if problems:
            errors.extend(f"{path}:{number}: {p}" for p in problems)
            continue
        questions.append(Question(obj["question"].strip(), obj["asker_department"].strip(), external_id, number))
    if errors:
        raise ValidationError(_error_list(errors))
    if not questions:
        raise ValidationError(f"{path}: no questions (expected one JSON object per line)")
    return questions


def _error_list(errors: list[str]) -> str:
    shown = errors[:MAX_ERRORS_SHOWN]
    more = f"\n... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
    return "\n".join(shown) + more


def default_external_id(question: str, asker_department: str, model_version: str) -> str:
    """``gen-`` + sha256 of (model version, department, question): asking the same model the same
    question again finds the stored answer instead of adding a second one."""
    key = "\x1f".join([model_version, asker_department, " ".join(question.split()).casefold()])
    return "gen-" + hashlib.sha256(key.encode()).hexdigest()[:24]


# --------------------------------------------------------------------------- model versions


def resolve_model_version(session: Session, name: str | None) -> ModelVersion:
    """The named model version, or the champion when ``name`` is None."""
    if name is not None:
        version = session.scalars(select(ModelVersion).where(ModelVersion.name == name)).one_or_none()
        if version is None:
            raise NotFoundError(f"model version {name!r} does not exist (see `auditloop model list`)")
        return version
    champion = session.scalars(select(ModelVersion).where(ModelVersion.alias == "champion")).one_or_none()
    if champion is None:
        raise NotFoundError("no champion model version: name one with --model-version")
    return champion


def adapter_path(adapter_uri: str) -> Path:
    """A local directory for a model version's adapter: a path, a ``file:`` URI, or an MLflow
    artifact URI (``runs:/...``, ``models:/...``; downloaded from the tracking server)."""
    parsed = urlparse(adapter_uri)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # one letter: a Windows drive
        path = Path(url2pathname(parsed.path)) if parsed.scheme == "file" else Path(adapter_uri)
        if not (path / "adapter_config.json").is_file():
            raise ConfigurationError(f"adapter {adapter_uri!r}: no adapter_config.json there")
        return path
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=adapter_uri))


def backend_for_version(
    settings: Settings,
    version: ModelVersion,
    *,
    prefer: str = "auto",
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> GenerationBackend:
    """A generation backend for a model version: its base model plus its LoRA adapter, if any."""
    from training.models import resolve_model_dir

    base_dir = resolve_model_dir(version.base_model or settings.base_model, settings.data_dir, progress=progress)
    adapter_dir = adapter_path(version.adapter_uri) if version.adapter_uri else None
    return choose_backend(base_dir, adapter_dir=adapter_dir, prefer=prefer, device=device)


def retriever_for_version(version: ModelVersion, documents: Sequence[RetrievalDocument]) -> RerankedRetriever:
    """What ``version`` retrieves with: the TF-IDF first stage over ``documents``, reranked by the
    reranker trained with its adapter (``reranker.json`` beside it), if it has one."""
    adapter_dir = adapter_path(version.adapter_uri) if version.adapter_uri else None
    return RerankedRetriever(Retriever(documents), load_reranker(adapter_dir))


# --------------------------------------------------------------------------- answering


@dataclass(frozen=True)
class PendingAnswer:
    """A question to answer, with the answer's external id and the asker's department id."""

    external_id: str
    question: Question
    asker_department_id: int


@dataclass(frozen=True)
class GeneratedAnswer:
    pending: PendingAnswer
    text: str
    sources: list[Hit]
    confidence: float | None
    latency_ms: int
    new_tokens: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "external_id": self.pending.external_id,
            "question": self.pending.question.question,
            "asker_department": self.pending.question.asker_department,
            "answer": self.text,
            "confidence": self.confidence,
            "latency_ms": self.latency_ms,
            "sources": [
                {"document_id": h.document_id, "department": h.department, "score": h.score} for h in self.sources
            ],
        }


@dataclass
class AnswerRunSummary:
    model_version: str
    questions: int
    inserted: int = 0
    already_stored: int = 0
    seconds: float = 0.0
    generated_tokens: int = 0
    answers: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"answers: {self.questions} questions, {self.inserted} answered and stored, "
            f"{self.already_stored} already stored, model {self.model_version}, in {self.seconds:.1f} s"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "questions": self.questions,
            "inserted": self.inserted,
            "already_stored": self.already_stored,
            "generated_tokens": self.generated_tokens,
            "seconds": round(self.seconds, 3),
            "answers": self.answers,
        }


def plan_answers(
    session: Session,
    *,
    actor: User | None,
    questions: Sequence[Question],
    model_version: ModelVersion,
    source_name: str = "questions",
) -> tuple[list[PendingAnswer], int]:
    """(questions still to answer, how many are already stored). Unknown asker departments reject the
    whole request, each reported as ``SOURCE:LINE: asker_department: ...``."""
    require(actor, "ingest")
    departments = org_repo.department_ids_by_name(session)
    errors = [
        f"{source_name}:{q.line}: asker_department: unknown department {q.asker_department!r} "
        f"(known: {', '.join(sorted(departments))})"
        for q in questions
        if q.asker_department not in departments
    ]
    if errors:
        raise ValidationError(_error_list(errors))
    # the same external id twice in one request is one answer: the first question wins
    wanted: dict[str, Question] = {}
    for q in questions:
        wanted.setdefault(q.external_id or default_external_id(q.question, q.asker_department, model_version.name), q)
    stored = bulk.existing_answers(session.connection(), list(wanted))
    pending = [
        PendingAnswer(external_id, q, departments[q.asker_department])
        for external_id, q in wanted.items()
        if external_id not in stored
    ]
    return pending, len(questions) - len(pending)


def _prompt_builder(backend: GenerationBackend, max_new_tokens: int) -> Callable[[str, list[Hit]], str]:
    """Prompts that fit the model's window where the backend can count tokens, else by characters."""
    tokenizer = getattr(backend, "tokenizer", None)
    max_prompt_tokens = getattr(backend, "max_prompt_tokens", None)
    if tokenizer is None or max_prompt_tokens is None:
        return lambda question, hits: build_prompt(question, hits)
    limit = int(max_prompt_tokens(max_new_tokens))
    return lambda question, hits: fit_prompt(
        tokenizer, question, hits, max_prompt_tokens=limit, max_context_chars=DEFAULT_CONTEXT_CHARS
    )


def answer_prompts(
    backend: GenerationBackend,
    retriever: Retriever | RerankedRetriever,
    questions: Sequence[str],
    *,
    k: int = ANSWER_TOP_K,
    max_new_tokens: int = ANSWER_MAX_NEW_TOKENS,
) -> tuple[list[str], list[list[Hit]]]:
    """Each question's top-``k`` documents and its prompt, fitted to the window ``max_new_tokens`` leaves
    (the prompts `auditloop answer` generates from)."""
    hits = retriever.search_many(list(questions), k)
    make_prompt = _prompt_builder(backend, max_new_tokens)
    return [make_prompt(q, h) for q, h in zip(questions, hits, strict=True)], hits


def generate_answers(
    pending: Sequence[PendingAnswer],
    *,
    backend: GenerationBackend,
    retriever: Retriever | RerankedRetriever,
    k: int = ANSWER_TOP_K,
    max_new_tokens: int = ANSWER_MAX_NEW_TOKENS,
    batch_size: int = ANSWER_BATCH_SIZE,
) -> list[GeneratedAnswer]:
    """Retrieve, prompt and generate; no database involved (so no lock is held while the model runs)."""
    if not pending:
        return []
    prompts, hits = answer_prompts(
        backend, retriever, [p.question.question for p in pending], k=k, max_new_tokens=max_new_tokens
    )
    generations = backend.generate(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return [
        GeneratedAnswer(
            pending=p,
            text=g.text or "(no answer)",
            sources=h,
            confidence=None if math.isnan(g.mean_logprob) else round(g.mean_logprob, 6),
            latency_ms=round(g.latency_ms),
            new_tokens=g.new_tokens,
        )
        for p, h, g in zip(pending, hits, generations, strict=True)
    ]


def store_answers(
    session: Session,
    *,
    actor: User | None,
    answers: Sequence[GeneratedAnswer],
    model_version: ModelVersion,
    created_at: dt.datetime | None = None,
    created_at_by_id: Mapping[str, dt.datetime] | None = None,
) -> int:
    """Store generated answers through the ingest fast path (same columns and content hash as
    ``ingest answers``); ids stored meanwhile by someone else are skipped. Returns how many were stored.
    Each answer is stamped ``created_at_by_id[external id]`` where given, else ``created_at`` (now)."""
    require(actor, "ingest")
    if not answers:
        return 0
    connection = session.connection()
    stored = bulk.existing_answers(connection, [a.pending.external_id for a in answers])
    departments = org_repo.department_ids_by_name(session)
    created_at = (created_at or utcnow()).astimezone(dt.UTC)
    ingested_at = utcnow()
    encoder = msgspec.json.Encoder()
    rows = []
    for answer in answers:
        if answer.pending.external_id in stored:
            continue
        when = (created_at_by_id or {}).get(answer.pending.external_id)
        stamp = when.astimezone(dt.UTC) if when is not None else created_at
        record = AnswerRecord(
            external_id=answer.pending.external_id,
            question=answer.pending.question.question,
            answer=answer.text,
            asker_department=answer.pending.question.asker_department,
            model_version=model_version.name,
            created_at=stamp,
            sources=[SourceRecord(h.document_id, h.department, h.score) for h in answer.sources],
            confidence=answer.confidence,
            latency_ms=answer.latency_ms,
        )
        asker_id = answer.pending.asker_department_id
        source_departments = [departments.get(h.department) for h in answer.sources]
        rows.append(
            bulk.AnswerRow(
                record.external_id,
                record.question,
                record.answer,
                asker_id,
                model_version.id,
                encoder.encode(record.sources).decode(),
                source_departments[0] if source_departments else None,  # hits come best first
                any(d != asker_id for d in source_departments),
                record.confidence,
                record.latency_ms,
                stamp,
                answer_content_hash(record, encoder),
                ingested_at,
            )
        )
    inserted = bulk.insert_answers(connection, rows)
    if inserted:
        auditlog.record(
            session,
            actor=actor,
            action="answers.generated",
            entity_type="model_version",
            entity_id=model_version.id,
            details={"answers": inserted, "model_version": model_version.name},
        )
    return inserted


def answer_questions(
    session: Session,
    *,
    actor: User | None,
    questions: Sequence[Question],
    model_version: ModelVersion,
    backend: GenerationBackend,
    retriever: Retriever | RerankedRetriever,
    source_name: str = "questions",
    k: int = ANSWER_TOP_K,
    max_new_tokens: int = ANSWER_MAX_NEW_TOKENS,
    batch_size: int = ANSWER_BATCH_SIZE,
    created_at: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerRunSummary:
    """Plan, generate and store in one session (the caller commits). Long runs from the command line
    use the three steps separately so no transaction stays open while the model generates."""
    started = time.perf_counter()
    pending, already = plan_answers(
        session, actor=actor, questions=questions, model_version=model_version, source_name=source_name
    )
    summary = AnswerRunSummary(model_version.name, len(questions), already_stored=already)
    chunk = max(batch_size, 1) * 4
    for start in range(0, len(pending), chunk):
        generated = generate_answers(
            pending[start : start + chunk],
            backend=backend,
            retriever=retriever,
            k=k,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
        summary.inserted += store_answers(
            session, actor=actor, answers=generated, model_version=model_version, created_at=created_at
        )
        summary.generated_tokens += sum(a.new_tokens for a in generated)
        summary.answers += [a.as_dict() for a in generated]
        if progress is not None:
            progress(min(start + chunk, len(pending)), len(pending))
    summary.seconds = time.perf_counter() - started
    return summary
