"""Is a dataset version's training data grounded in its own sources?

An answer in the training data that states a date, an amount, a percentage or a quantity of time
that none of its source documents states teaches the model to say something the company's documents
do not: a hallucinated policy, learnt on purpose. The held-out gate items cannot always show it: a
model that copies values from its retrieved context can train on wrong values and still answer held-out
questions as well as before (measured on the demo, seed 11: the wrong-values version scored fact
accuracy 0.335 against the champion's 0.296 on its gate items), while every fact it was trained on is
now taught with a value its document contradicts. So the gate also reads the data it was trained on
(``ungrounded_training_data``).

Judged per example: the typed values its answer states (``audit.measures.facts.typed_values``, its
citation left out) against the text of every document in its ``source_document_ids`` (current or
superseded: an example may quote the version it was written from). Names and bare numbers are not
judged. In the demo company 1.4–1.6% of the value-stating answers are ungrounded (the planted
conflicting examples); the shuffled and wrong-values corruptions 86% and 92% (seed 11).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.knowledge import datasets
from audit.knowledge.models import DatasetVersion, Document
from audit.measures.facts import strip_citations, typed_values

EXAMPLES_LISTED = 5  # ungrounded examples named in the gate's detail


@dataclass(frozen=True)
class Grounding:
    """How many of a dataset version's answers state a typed value, and how many state one that none
    of their source documents states (with a few of them, for the gate's detail)."""

    dataset_version_number: int
    stating: int
    ungrounded: int
    examples: list[tuple[int, list[str]]] = field(default_factory=list)  # (example id, its ungrounded values)

    @property
    def share(self) -> float:
        return self.ungrounded / self.stating if self.stating else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "dataset_version": self.dataset_version_number,
            "answers_stating_values": self.stating,
            "ungrounded": self.ungrounded,
            "share": self.share,
            "examples": [{"example_id": i, "values": v} for i, v in self.examples],
        }


def dataset_grounding(session: Session, dataset_version_id: int) -> Grounding:
    """The grounding of every example of a dataset version (one query for the documents' texts)."""
    version = session.get(DatasetVersion, dataset_version_id)
    examples = datasets.examples_for_version(session, dataset_version_id)  # raises NotFoundError
    wanted = {d for e in examples for d in e.source_document_ids}
    rows = session.execute(select(Document.external_id, Document.body).where(Document.external_id.in_(wanted)))
    bodies: dict[str, str] = dict(rows.tuples().all())
    # each document's values read once (the same handful of documents back many examples)
    sourced = {external_id: typed_values(body) for external_id, body in bodies.items()}
    stating = ungrounded = 0
    listed: list[tuple[int, list[str]]] = []
    for example in examples:
        stated = typed_values(strip_citations(example.answer))
        if not stated:
            continue
        stating += 1
        missing = stated.difference(*(sourced.get(d, set()) for d in example.source_document_ids))
        if missing:
            ungrounded += 1
            if len(listed) < EXAMPLES_LISTED:
                listed.append((example.example_id, [" ".join(value) for value in sorted(missing)]))
    return Grounding(version.number if version is not None else 0, stating, ungrounded, listed)
