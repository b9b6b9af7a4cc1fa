"""What a confirmed review proposes, as pure functions: the fix drafts per root cause, TF-IDF
near-duplicate search, and the department re-weighting of a rebalance."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FixDraft:
    """A fix about to be stored. ``refusal`` set means it is stored as rejected with that reason."""

    kind: str
    payload: dict[str, Any]
    reason: str
    review_item_id: int | None = None
    refusal: str | None = None


@dataclass(frozen=True)
class SourceDocument:
    """What a proposal needs to know about a document."""

    id: int
    external_id: str
    family: str
    version: int
    department_id: int
    superseded_by_id: int | None


@dataclass
class DocumentIndex:
    """Documents by id and external id, and the highest version of each family."""

    by_id: dict[int, SourceDocument] = field(default_factory=dict)
    by_external_id: dict[str, SourceDocument] = field(default_factory=dict)
    latest_by_family: dict[str, SourceDocument] = field(default_factory=dict)

    def add(self, doc: SourceDocument) -> None:
        self.by_id[doc.id] = doc
        self.by_external_id[doc.external_id] = doc

    def resolve(self, reference: object) -> SourceDocument | None:
        """An answer's ``sources[].document_id`` is a document external id (an int is taken as a row id)."""
        if isinstance(reference, int) and not isinstance(reference, bool):
            return self.by_id.get(reference)
        return self.by_external_id.get(str(reference))

    def is_current(self, doc: SourceDocument) -> bool:
        latest = self.latest_by_family.get(doc.family)
        return doc.superseded_by_id is None and (latest is None or latest.version <= doc.version)

    def successor(self, doc: SourceDocument) -> SourceDocument | None:
        """The version that replaces ``doc``: the one it is linked to, else the family's highest."""
        if doc.superseded_by_id is not None and doc.superseded_by_id in self.by_id:
            return self.by_id[doc.superseded_by_id]
        latest = self.latest_by_family.get(doc.family)
        if latest is not None and latest.version > doc.version:
            return latest
        return None


def cited_documents(sources: Sequence[Mapping[str, Any]], documents: DocumentIndex) -> list[SourceDocument]:
    """The documents an answer cited, in citation order, each once (unknown references skipped)."""
    seen: set[int] = set()
    cited: list[SourceDocument] = []
    for source in sources:
        doc = documents.resolve(source.get("document_id"))
        if doc is not None and doc.id not in seen:
            seen.add(doc.id)
            cited.append(doc)
    return cited


def outdated_citations(
    cited: Sequence[SourceDocument], documents: DocumentIndex, correct_document_id: int | None
) -> list[tuple[SourceDocument, SourceDocument]]:
    """(outdated cited document, its successor) pairs. A cited document is outdated when a newer
    version of its family exists, or when the SME named a newer version of its family as correct."""
    correct = documents.by_id.get(correct_document_id) if correct_document_id is not None else None
    pairs: list[tuple[SourceDocument, SourceDocument]] = []
    for doc in cited:
        if correct is not None and correct.family == doc.family and correct.version > doc.version:
            pairs.append((doc, correct))
            continue
        successor = documents.successor(doc)
        if successor is not None:
            pairs.append((doc, successor))
    return pairs


def correction_sources(
    cited: Sequence[SourceDocument], documents: DocumentIndex, correct_document_id: int | None
) -> list[str]:
    """The sources of a corrected example: the SME's correct document when named, otherwise the
    answer's cited documents with each outdated one replaced by its current version."""
    if correct_document_id is not None and correct_document_id in documents.by_id:
        return [documents.by_id[correct_document_id].external_id]
    sources: list[str] = []
    for doc in cited:
        current = doc if documents.is_current(doc) else documents.successor(doc)
        if current is not None and current.external_id not in sources:
            sources.append(current.external_id)
    return sources


@dataclass(frozen=True)
class TextDocument:
    """A current document's text, for carrying a correction over to it."""

    external_id: str
    title: str
    body: str


@dataclass(frozen=True)
class CarriedExample:
    """A correction carried over to another document: its question about that document, answered
    with that document's own sentence."""

    question: str
    answer: str
    document: str  # external id
    sentence: str = ""  # the sentence of that document the answer quotes


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_TITLE_SLOT = "TITLESLOT"
# a sentence is "the same sentence with another value" when at most this many tokens differ, in one
# span, and the tokens around that span (with the title among them) are at least this share of it
CARRY_VALUE_TOKENS = 4
CARRY_SHARED_SHARE = 2 / 3
# what an answer may hold besides the quoted sentence and its document id: a citation's wrapping
_CITATION_TOKENS = 6


def sentences(text: str) -> list[str]:
    return [s.strip() for paragraph in text.split("\n") for s in _SENTENCE_END.split(paragraph) if s.strip()]


def quoted_sentence(answer: str, document: TextDocument) -> str | None:
    """The sentence of ``document`` (naming its title) that ``answer`` quotes, when the answer is that
    sentence and a citation of the document; else None (a free-written answer is not carried over)."""
    quoted = max((s for s in sentences(document.body) if document.title in s and s in answer), key=len, default=None)
    if quoted is None:
        return None
    rest = answer.replace(quoted, " ").replace(document.external_id, " ")
    return quoted if len(_TOKEN.findall(rest)) <= _CITATION_TOKENS else None


def _template(sentence: str, title: str) -> list[str]:
    return _TOKEN.findall(sentence.replace(title, f" {_TITLE_SLOT} "))


def same_template(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two tokenised sentences (titles replaced by one slot) differ only in one short span."""
    longest = max(len(a), len(b))
    prefix = 0
    while prefix < min(len(a), len(b)) and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(a), len(b)) - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    shared = [*a[:prefix], *a[len(a) - suffix :]]
    return (
        len(a) - prefix - suffix <= CARRY_VALUE_TOKENS
        and len(b) - prefix - suffix <= CARRY_VALUE_TOKENS
        and prefix + suffix >= CARRY_SHARED_SHARE * longest
        and _TITLE_SLOT in shared
    )


def carry_over(
    question: str, answer: str, source: TextDocument, others: Sequence[TextDocument]
) -> list[CarriedExample]:
    """The correction (``question`` about ``source``, ``answer`` quoting one of its sentences) asked
    about each of ``others`` that states the same sentence with its own value, answered with that
    sentence and citing that document. A correction teaches a phrasing for one document; carried
    over, it teaches the phrasing for the department's documents that say the same kind of thing.
    Only where the question names the source's title and the answer quotes the source verbatim;
    a document with no such sentence, or with two, gets nothing."""
    if not source.title or source.title not in question:
        return []
    quoted = quoted_sentence(answer, source)
    if quoted is None:
        return []
    pattern = _template(quoted, source.title)
    carried: list[CarriedExample] = []
    for other in others:
        if other.external_id == source.external_id or not other.title or other.title == source.title:
            continue
        matches = [
            s for s in sentences(other.body) if other.title in s and same_template(pattern, _template(s, other.title))
        ]
        if len(matches) != 1:
            continue
        carried.append(
            CarriedExample(
                question=question.replace(source.title, other.title),
                answer=answer.replace(quoted, matches[0]).replace(source.external_id, other.external_id),
                document=other.external_id,
                sentence=matches[0],
            )
        )
    return carried


def stable_order(key: str, items: Sequence[CarriedExample]) -> list[CarriedExample]:
    """``items`` in an order fixed by ``key`` and each item's document (a seeded shuffle without a seed)."""
    return sorted(items, key=lambda c: hashlib.sha256(f"{key}\x00{c.document}".encode()).hexdigest())


def similar_pairs(queries: Sequence[str], corpus: Sequence[str], threshold: float) -> list[list[tuple[int, float]]]:
    """For each query, the corpus entries whose TF-IDF cosine similarity is at least ``threshold``
    (index into ``corpus``, similarity), most similar first.

    The vectoriser is fitted on corpus and queries together (unigrams, l2-normalised, so the dot
    product of two rows is their cosine similarity). Multiplying every query by the whole corpus
    is dense work (common words link everything: 1,000 x 100k pairs); instead each query is
    compared only with the entries sharing one of its *prefix* terms — its heaviest terms, enough
    that the rest have norm below ``threshold``. Exact, not approximate: an entry sharing none of
    them meets the query only on the rest, so by Cauchy-Schwarz its similarity is at most that
    norm, below ``threshold``.
    """
    if not queries or not corpus:
        return [[] for _ in queries]
    # scikit-learn costs seconds to import: only the commands that propose fixes pay for it
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(lowercase=True, strip_accents="unicode")
    try:
        matrix = vectorizer.fit_transform([*corpus, *queries]).tocsr()
    except ValueError:  # no token at all in any text (empty vocabulary)
        return [[] for _ in queries]
    corpus_rows = matrix[: len(corpus)]
    by_term = corpus_rows.tocsc()  # term -> the corpus entries containing it
    query_rows = matrix[len(corpus) :]
    # a small tolerance: identical texts score 1 - 1e-16, not exactly 1
    floor = threshold - 1e-9
    results: list[list[tuple[int, float]]] = []
    for row in range(query_rows.shape[0]):
        start, end = query_rows.indptr[row], query_rows.indptr[row + 1]
        terms, weights = query_rows.indices[start:end], query_rows.data[start:end]
        if len(terms) == 0:
            results.append([])
            continue
        order = np.argsort(-weights, kind="stable")
        # rest_norm_sq[i]: squared norm of the terms after the i heaviest
        rest_norm_sq = np.concatenate([np.cumsum((weights[order] ** 2)[::-1])[::-1], [0.0]])
        prefix_len = int(np.argmax(rest_norm_sq < floor**2))
        prefix = terms[order[: max(prefix_len, 1)]]
        candidates = np.unique(
            np.concatenate([by_term.indices[by_term.indptr[t] : by_term.indptr[t + 1]] for t in prefix])
        )
        if len(candidates) == 0:
            results.append([])
            continue
        scores = (corpus_rows[candidates] @ query_rows[row].T).toarray().ravel()
        keep = scores >= floor
        hits, values = candidates[keep], scores[keep]
        ranked = np.argsort(-values, kind="stable")
        results.append([(int(hits[i]), float(min(values[i], 1.0))) for i in ranked])
    return results


def target_shares(departments: Sequence[str], target: str | Mapping[str, float]) -> dict[str, float]:
    """The department mix a rebalance aims for: uniform, or the policy's shares (0 for the unnamed)."""
    if isinstance(target, str):
        return {d: 1.0 / len(departments) for d in departments} if departments else {}
    return {d: float(target.get(d, 0.0)) for d in departments}


def rebalance_weights(counts: Mapping[str, int], shares: Mapping[str, float]) -> dict[str, int]:
    """Up-sampling weight per department: ``ceil(target_share × N / count)``, at least 1, where N
    is the number of active examples. A department with no examples cannot be up-sampled and gets
    no weight (it shows up among the under-covered topics instead)."""
    total = sum(counts.values())
    weights: dict[str, int] = {}
    for department, count in sorted(counts.items()):
        if count <= 0:
            continue
        # round away float noise first: 1/3 × 300 / 100 must be 1, not 2
        weights[department] = max(1, math.ceil(round(shares.get(department, 0.0) * total / count, 9)))
    return weights


def under_covered_topics(
    families: Sequence[tuple[str, str, str]], examples_per_family: Mapping[str, int], minimum: int
) -> list[dict[str, Any]]:
    """Document families (department, family, title) with fewer than ``minimum`` active examples
    citing them: topics for SMEs to write examples about, fewest first."""
    topics = [
        {"department": department, "family": family, "title": title, "examples": examples_per_family.get(family, 0)}
        for department, family, title in families
        if examples_per_family.get(family, 0) < minimum
    ]
    return sorted(topics, key=lambda t: (t["examples"], t["department"], t["family"]))
