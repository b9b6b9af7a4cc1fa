"""Retrieval of current documents with TF-IDF (scikit-learn), and retrieval accuracy@k.

Outdated documents (those with a newer version) are never indexed: an answer must not be grounded
in a superseded policy. Documents come from the database through :func:`current_documents`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.knowledge.models import Document, RetrievalEvalPair
from audit.org.models import Department
from audit.sampling.models import GoldItem


@dataclass(frozen=True)
class RetrievalDocument:
    """A document as the retriever indexes it; ``document_id`` is the document's external id."""

    document_id: str
    department: str
    title: str
    text: str


@dataclass(frozen=True)
class Hit:
    """One retrieved document with its cosine similarity to the question."""

    document_id: str
    department: str
    score: float
    title: str
    text: str


def _as_retrieval_document(doc: Any) -> RetrievalDocument | None:
    """Accept RetrievalDocument or any record with external_id/department/title/body (e.g. the demo
    corpus's documents); records that carry a ``superseded_by`` are outdated and dropped."""
    if isinstance(doc, RetrievalDocument):
        return doc
    if getattr(doc, "superseded_by", None) or getattr(doc, "superseded_by_id", None):
        return None
    return RetrievalDocument(
        document_id=str(doc.external_id), department=str(doc.department), title=str(doc.title), text=str(doc.body)
    )


class Retriever:
    """TF-IDF over title + body (the title counted twice: it names the topic), cosine similarity."""

    def __init__(self, documents: Sequence[RetrievalDocument]) -> None:
        # scikit-learn costs seconds to import: loaded when a retriever is built, not with the CLI
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.documents = list(documents)
        self._vectorizer = TfidfVectorizer(
            sublinear_tf=True, ngram_range=(1, 2), stop_words="english", strip_accents="unicode", dtype=np.float32
        )
        if self.documents:
            self._matrix = self._vectorizer.fit_transform([f"{d.title}. {d.title}. {d.text}" for d in self.documents])

    @classmethod
    def from_documents(cls, docs: Iterable[Any]) -> Retriever:
        """A retriever over the current documents among ``docs`` (superseded ones are skipped)."""
        converted = (_as_retrieval_document(d) for d in docs)
        return cls([d for d in converted if d is not None])

    def __len__(self) -> int:
        return len(self.documents)

    def search(self, question: str, k: int = 3) -> list[Hit]:
        """The ``k`` best documents for ``question``, best first; documents sharing no term are left out."""
        return self.search_many([question], k)[0]

    def search_many(self, questions: Sequence[str], k: int = 3) -> list[list[Hit]]:
        """:meth:`search` for many questions in one sparse matrix product."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not self.documents or not questions:
            return [[] for _ in questions]
        scores = (self._vectorizer.transform(list(questions)) @ self._matrix.T).toarray()
        results: list[list[Hit]] = []
        for row in scores:
            # stable sort: equal scores keep document order, so results are deterministic
            order = np.argsort(-row, kind="stable")[:k]
            hits = []
            for i in order:
                if row[i] > 0:
                    doc = self.documents[i]
                    hits.append(Hit(doc.document_id, doc.department, round(float(row[i]), 6), doc.title, doc.text))
            results.append(hits)
        return results


def retrieval_accuracy_at_k(retriever: Any, pairs: Iterable[tuple[str, str | Collection[str]]], k: int = 3) -> float:
    """Share of questions whose expected document is among the top ``k`` hits of ``retriever`` (anything
    with :meth:`Retriever.search_many`, e.g. a ``training.reranking.RerankedRetriever``).

    ``pairs``: (question, expected document id) or (question, acceptable ids: any of them counts).
    accuracy@k = |{q : top_k(q) ∩ expected(q) ≠ ∅}| / |pairs|; NaN when there are no pairs.
    """
    questions: list[str] = []
    expected: list[set[str]] = []
    for question, ids in pairs:
        questions.append(question)
        expected.append({ids} if isinstance(ids, str) else set(ids))
    if not questions:
        return math.nan
    found = sum(
        1
        for hits, wanted in zip(retriever.search_many(questions, k), expected, strict=True)
        if wanted & {h.document_id for h in hits}
    )
    return found / len(questions)


# --------------------------------------------------------------------------- the database side


def current_documents(session: Session) -> list[RetrievalDocument]:
    """Every document that has not been superseded, in id order."""
    rows = session.execute(
        select(Document.external_id, Department.name, Document.title, Document.body)
        .join(Department, Department.id == Document.department_id)
        .where(Document.superseded_by_id.is_(None))
        .order_by(Document.id)
    ).all()
    return [RetrievalDocument(r[0], r[1], r[2], r[3]) for r in rows]


def _current_version_map(session: Session) -> tuple[dict[int, str], dict[str, str]]:
    """(document id → current external id, external id → current external id): an outdated
    version is represented by the version that replaced it, following the chain to its end."""
    rows = session.execute(select(Document.id, Document.external_id, Document.superseded_by_id)).all()
    by_id = {r[0]: (r[1], r[2]) for r in rows}

    def current(doc_id: int) -> str:
        seen = set()
        while by_id[doc_id][1] is not None and doc_id not in seen:
            seen.add(doc_id)
            doc_id = by_id[doc_id][1]  # type: ignore[assignment]
        return by_id[doc_id][0]

    id_map = {doc_id: current(doc_id) for doc_id in by_id}
    return id_map, {by_id[doc_id][0]: ext for doc_id, ext in id_map.items()}


def current_version_of(session: Session) -> dict[str, str]:
    """Document external id → the external id of its current version (itself when current)."""
    return _current_version_map(session)[1]


def evaluation_pairs(session: Session) -> list[tuple[str, frozenset[str]]]:
    """Retrieval evaluation set: the curated ``retrieval_eval_pairs`` plus every gold question with
    its reference documents (mapped to their current versions)."""
    id_map, external_map = _current_version_map(session)
    grouped: dict[str, set[str]] = {}
    for question, document_id in session.execute(
        select(RetrievalEvalPair.question, RetrievalEvalPair.document_id).order_by(RetrievalEvalPair.id)
    ):
        grouped.setdefault(question, set()).add(id_map[document_id])
    for question, references in session.execute(
        select(GoldItem.question, GoldItem.reference_document_ids).order_by(GoldItem.id)
    ):
        wanted = {external_map[r] for r in references or [] if r in external_map}
        if wanted:
            grouped.setdefault(question, set()).update(wanted)
    return [(question, frozenset(ids)) for question, ids in grouped.items()]
