"""A learned reranker over the first-stage retriever's candidates, trained on the audit's retrieval fixes.

The first stage (TF-IDF, ``training.retrieval``) scores words, not ownership: a short note of another
department that repeats a subject's title outranks the owning department's longer document (the
demo's planted skew, ``audit.demo.vocabulary.CROSS_NOTE_SHARE``). Nothing in a title tells the two
apart; which department's documents answer questions in which words does, and that is what the
audit's SME decisions teach: (question, the right document, the documents ranked above it).

Model: logistic regression (scikit-learn, pointwise) over each of the first ``candidates`` hits:

- ``first_stage``: the TF-IDF cosine; ``gap``: its distance to the top hit's; ``reciprocal_rank``;
- ``title_coverage``: the share of the document title's content words that the question holds;
- ``{word}|{department}``: one feature per content word of the question crossed with the candidate's
  department (1/√n for n words), which carries the learnt ownership of words to questions never seen.

A candidate list is re-sorted by the model's score (ties keep the first stage's order). Why this
model and not a cross-encoder: it trains in well under a second on CPU from a few hundred pairs,
its weights can be read (``top_weights``), and on the demo's held-out questions it moves the weak
department's retrieval@1 as far as the pairs allow (see README, "The loop"). Stored as JSON beside
the adapter (``reranker.json``): only the non-zero weights, by feature name.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.retrieval import Hit, Retriever, current_version_of

RERANKER_FILE = "reranker.json"
FORMAT = "auditloop-reranker/1"
DEFAULT_CANDIDATES = 10
_WORD = re.compile(r"[a-z0-9]+")
# Words that carry no ownership: sklearn's English stop words are not imported here (the CLI's
# --help must not load scikit-learn); the question words staff use are enough.
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "the",
        "this",
        "to",
        "under",
        "us",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "you",
        "your",
        "after",
        "before",
        "long",
        "much",
        "many",
        "name",
        "set",
        "sets",
        "there",
        "their",
        "them",
        "they",
    ]
)


def content_words(text: str) -> list[str]:
    """Lower-case word types of ``text`` without stop words, in first-seen order."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in _STOP and len(word) > 1:
            seen.setdefault(word, None)
    return list(seen)


def features(question: str, hits: Sequence[Hit]) -> list[dict[str, float]]:
    """The feature dict of each hit (first-stage order) for ``question`` (see the module docstring)."""
    words = content_words(question)
    word_set = set(words)
    cross = 1 / math.sqrt(len(words)) if words else 0.0
    top = hits[0].score if hits else 0.0
    rows = []
    for rank, hit in enumerate(hits):
        title = content_words(hit.title)
        row = {
            "first_stage": hit.score,
            "gap": top - hit.score,
            "reciprocal_rank": 1.0 / (rank + 1),
            "title_coverage": sum(w in word_set for w in title) / len(title) if title else 0.0,
        }
        for word in words:
            row[f"{word}|{hit.department}"] = cross
        rows.append(row)
    return rows


@dataclass(frozen=True)
class TrainingPair:
    """A question and the documents that answer it (any of them is right); ``department`` is whose
    question it is, for the report only."""

    question: str
    relevant: frozenset[str]
    department: str = ""


@dataclass(frozen=True)
class Reranker:
    """Weights by feature name; :meth:`rerank` re-sorts a first-stage candidate list."""

    weights: Mapping[str, float]
    intercept: float = 0.0
    candidates: int = DEFAULT_CANDIDATES
    info: Mapping[str, Any] = field(default_factory=dict)

    def score(self, question: str, hits: Sequence[Hit]) -> list[float]:
        return [
            self.intercept + sum(self.weights.get(name, 0.0) * value for name, value in row.items())
            for row in features(question, hits)
        ]

    def rerank(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        """``hits`` (the first stage's, best first) re-sorted by the model's score; stable on ties."""
        scores = self.score(question, hits)
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
        return [hits[i] for i in order]

    def top_weights(self, n: int = 10) -> list[tuple[str, float]]:
        return sorted(self.weights.items(), key=lambda item: -abs(item[1]))[:n]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "candidates": self.candidates,
            "intercept": self.intercept,
            "weights": dict(sorted(self.weights.items())),
            "info": dict(self.info),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reranker:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an auditloop reranker (format {data.get('format')!r}, expected {FORMAT!r})")
        return cls(
            weights={str(k): float(v) for k, v in data["weights"].items()},
            intercept=float(data.get("intercept", 0.0)),
            candidates=int(data.get("candidates", DEFAULT_CANDIDATES)),
            info=dict(data.get("info") or {}),
        )

    def save(self, directory: Path) -> Path:
        path = directory / RERANKER_FILE
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path


def load_reranker(directory: Path | None) -> Reranker | None:
    """The reranker saved in ``directory`` (an adapter or a base model's folder); None when there is none."""
    if directory is None:
        return None
    path = Path(directory) / RERANKER_FILE
    if not path.is_file():
        return None
    try:
        return Reranker.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: unreadable reranker ({exc})") from exc


def train_reranker(
    retriever: Retriever,
    pairs: Iterable[TrainingPair],
    *,
    candidates: int = DEFAULT_CANDIDATES,
    regularization: float = 1.0,
    seed: int = 0,
) -> Reranker | None:
    """Fit the reranker on ``pairs``: each question's first-stage candidates, labelled 1 when relevant.

    Questions whose candidates hold no relevant document teach nothing a reranker can use and are
    skipped (counted in ``info``); None when no pair is usable or every candidate is relevant.
    """
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    pairs = list(pairs)
    found = retriever.search_many([p.question for p in pairs], candidates) if pairs else []
    rows: list[dict[str, float]] = []
    labels: list[int] = []
    used = unreachable = corrected = 0
    for pair, hits in zip(pairs, found, strict=True):
        flags = [int(h.document_id in pair.relevant) for h in hits]
        if not any(flags):
            unreachable += 1
            continue
        used += 1
        corrected += flags[0] == 0
        rows += features(pair.question, hits)
        labels += flags
    if not used or len(set(labels)) < 2:
        return None
    vectorizer = DictVectorizer()
    matrix = vectorizer.fit_transform(rows)
    model = LogisticRegression(C=regularization, max_iter=2000, random_state=seed)
    model.fit(matrix, labels)
    weights = {
        name: float(weight)
        for name, weight in zip(vectorizer.get_feature_names_out(), model.coef_[0], strict=True)
        if weight != 0.0
    }
    info = {
        "pairs": len(pairs),
        "pairs_used": used,
        "pairs_unreachable": unreachable,
        "pairs_first_stage_wrong": corrected,
        "rows": len(labels),
        "regularization": regularization,
    }
    return Reranker(weights=weights, intercept=float(model.intercept_[0]), candidates=candidates, info=info)


class RerankedRetriever:
    """A retriever that reranks the first stage's ``candidates`` and returns the best ``k``: the same
    ``search`` / ``search_many`` as :class:`~training.retrieval.Retriever`, so the assistant, the
    training data and the evaluation all see what the served model version retrieves."""

    def __init__(self, first_stage: Retriever, reranker: Reranker | None) -> None:
        self.first_stage = first_stage
        self.reranker = reranker
        self.documents = first_stage.documents

    def __len__(self) -> int:
        return len(self.first_stage)

    def search(self, question: str, k: int = 3) -> list[Hit]:
        return self.search_many([question], k)[0]

    def search_many(self, questions: Sequence[str], k: int = 3) -> list[list[Hit]]:
        if self.reranker is None:
            return self.first_stage.search_many(questions, k)
        depth = max(k, self.reranker.candidates)
        return [
            rerank_hits(self.reranker, q, hits, k)
            for q, hits in zip(questions, self.first_stage.search_many(questions, depth), strict=True)
        ]


def rerank_hits(reranker: Reranker | None, question: str, candidates: Sequence[Hit], k: int) -> list[Hit]:
    """The best ``k`` of ``candidates`` after reranking (the first ``k`` as they are without a reranker)."""
    if reranker is None:
        return list(candidates[:k])
    return reranker.rerank(question, candidates[: reranker.candidates])[:k]


# --------------------------------------------------------------------------- the database side


def dataset_retrieval_pairs(session: Any, version_id: int, examples: Sequence[Any]) -> list[TrainingPair]:
    """What a dataset version teaches retrieval: each of its ``examples`` (``ExampleRecord``) with its
    source documents, and each retrieval fix applied in this or an earlier version (an SME's
    question with the document that should have been found). Sources are mapped to their current
    versions: a question about a superseded policy is answered from the one in force."""
    from sqlalchemy import select

    from audit.fixes.models import DataFix
    from audit.knowledge.models import DatasetVersion

    current = current_version_of(session)
    pairs = [
        TrainingPair(e.question, frozenset(current.get(s, s) for s in e.source_document_ids), e.department)
        for e in examples
        if e.source_document_ids
    ]
    number = session.scalar(select(DatasetVersion.number).where(DatasetVersion.id == version_id))
    earlier = select(DatasetVersion.id).where(DatasetVersion.number <= number)
    payloads = session.scalars(
        select(DataFix.payload)
        .where(DataFix.kind == "retrieval_pair", DataFix.status == "applied", DataFix.dataset_version_id.in_(earlier))
        .order_by(DataFix.id)
    )
    for payload in payloads:
        document = payload.get("document")
        if payload.get("question") and document:
            pairs.append(TrainingPair(payload["question"], frozenset([current.get(document, document)]), "fix"))
    return pairs
