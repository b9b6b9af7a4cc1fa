"""The demo company's knowledge: documents, curated examples and held-out gold questions, as plain data.

No database and no downloads: everything is generated from ``random.Random(seed)``, so one seed always
gives the same text. The seeder writes these objects to the database; the tiny base model is
pretrained on the same documents and examples (never on ``gold``: that is the evaluation set).

API (stable; other packages import it)::

    corpus = build_corpus(seed=7)
    corpus.departments       # ["Legal", "Compliance", "Finance", "Engineering", "HR"]
    corpus.documents         # list[DemoDocument]: every version; outdated ones have superseded_by set
    corpus.examples          # list[DemoExample]: ~1,000 curated QA pairs, skewed by department
    corpus.gold              # list[DemoGold]: GOLD_PER_DEPARTMENT (60) held-out questions per department
    corpus.facts             # list[DemoFact]: what production traffic may ask about (gold facts excluded)
    corpus.document(external_id), corpus.current_documents()

Planted problems, for the audit loop to find: examples with ``planted="conflicting"`` repeat another
example's question almost verbatim with a contradicting answer; ``planted="outdated"`` examples cite a
superseded document version and state its old fact. HR has the fewest examples (the weak department).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from audit.demo.vocabulary import (
    CONFLICTING_PER_DEPARTMENT,
    CROSS_NOTE_AUTHORS,
    CROSS_NOTE_SHARE,
    DEPARTMENTS,
    EXAMPLE_TARGETS,
    GOLD_PER_DEPARTMENT,
    INTRO_TEMPLATES,
    NEAR_DUPLICATE_PREFIXES,
    OUTDATED_PER_DEPARTMENT,
    SUPERSEDED_FAMILIES,
    WEAK_DEPARTMENT,
    DepartmentVocabulary,
    FactKind,
)
from audit.knowledge.hashing import normalise_text

DEFAULT_SEED = 7
SYNTHETIC_SHARE = 0.1  # examples whose origin is 'synthetic' rather than 'curated'


@dataclass(frozen=True)
class DemoDocument:
    external_id: str  # "FAMILY@vN"
    family: str
    department: str
    title: str
    body: str
    version: int
    effective_date: dt.date
    superseded_by: str | None  # external id of the newer version; None for a current document
    facts: dict[str, str] = field(default_factory=dict)  # fact key -> value as the body states it


@dataclass(frozen=True)
class DemoExample:
    external_id: str
    question: str
    answer: str
    department: str
    source_document_ids: list[str]
    origin: str  # curated | synthetic
    status: str  # active
    planted: str | None = None  # None, "conflicting" or "outdated"


@dataclass(frozen=True)
class DemoGold:
    question: str
    reference_answer: str
    department: str
    reference_document_ids: list[str]
    key_values: list[str] = field(default_factory=list)  # what a right answer states


@dataclass(frozen=True)
class DemoFact:
    """One fact of a current document that staff may ask about (the traffic pool)."""

    department: str
    family: str
    key: str
    title: str
    subject: str
    document_id: str  # the current version
    value: str
    outdated_document_id: str | None = None  # the superseded version, when it stated another value
    outdated_value: str | None = None


@dataclass
class DemoCorpus:
    seed: int
    departments: list[str]
    documents: list[DemoDocument]
    examples: list[DemoExample]
    gold: list[DemoGold]
    facts: list[DemoFact]

    def document(self, external_id: str) -> DemoDocument:
        for doc in self.documents:
            if doc.external_id == external_id:
                return doc
        raise KeyError(external_id)

    def current_documents(self, department: str | None = None) -> list[DemoDocument]:
        return [
            d for d in self.documents if d.superseded_by is None and (department is None or d.department == department)
        ]


# ---------------------------------------------------------------------------------------------
# Rendering: the same templates serve documents, examples, gold and traffic
# ---------------------------------------------------------------------------------------------


def vocabulary(department: str) -> DepartmentVocabulary:
    for vocab in DEPARTMENTS:
        if vocab.name == department:
            return vocab
    raise KeyError(department)


def fact_kind(department: str, key: str) -> FactKind:
    for kind in vocabulary(department).facts:
        if kind.key == key:
            return kind
    raise KeyError(f"{department}:{key}")


def statement(kind: FactKind, *, title: str, subject: str, value: str) -> str:
    return kind.statement.format(title=title, subject=subject, value=value)


def grounded_answer(kind: FactKind, *, title: str, subject: str, value: str, document_id: str) -> str:
    """The answer sentence as the documents state it, citing the document's external id."""
    return f"{statement(kind, title=title, subject=subject, value=value)} (source: {document_id})"


def question(kind: FactKind, phrasing: int, *, title: str, subject: str) -> str:
    """One of the curators' phrasings (0-2): the ones curated examples are written in."""
    return kind.questions[phrasing].format(title=title, subject=subject)


# Staff ask the assistant in the curators' three phrasings and in a fourth that no curated example
# uses: the gold set's. The held-out gold items ask about facts nobody curated or asked about, in the
# phrasing the curated data misses, so they measure what production holds and the curated data lacks;
# only the audit's corrections of production answers bring that phrasing into training.
STAFF_PHRASINGS = 4


def staff_question(kind: FactKind, phrasing: int, *, title: str, subject: str) -> str:
    """How staff ask in production: a curator's phrasing (0-2) or the gold set's (3), for any title."""
    template = kind.gold_question if phrasing == len(kind.questions) else kind.questions[phrasing]
    return template.format(title=title, subject=subject)


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _format_date(day: dt.date) -> str:
    return f"{day.day} {day:%B %Y}"


def _random_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def _other_value(rng: random.Random, kind: FactKind, exclude: Sequence[str]) -> str:
    return rng.choice([v for v in kind.values if v not in exclude])


@dataclass(frozen=True)
class _Family:
    vocab: DepartmentVocabulary
    code: str
    subject: str
    kind: str

    @property
    def title(self) -> str:
        return f"{self.subject} {self.kind}"


def _body(
    rng: random.Random,
    family: _Family,
    *,
    version: int,
    effective: dt.date,
    facts: dict[str, str],
    changed: Sequence[str],
) -> str:
    vocab = family.vocab
    stated = {
        kind.key: statement(kind, title=family.title, subject=family.subject, value=facts[kind.key])
        for kind in vocab.facts
    }
    keys = [kind.key for kind in vocab.facts]  # owner, review_cycle, retention, system, then the two specific
    filler = rng.sample(vocab.filler, 3)
    intro = rng.choice(INTRO_TEMPLATES).format(
        title=family.title,
        version=version,
        date=_format_date(effective),
        kind=family.kind.lower(),
        subject=family.subject,
        department=vocab.name,
    )
    paragraphs = [
        intro,
        f"Responsibilities. {stated['owner']} {stated['review_cycle']} {filler[0]}",
        f"Rules. {stated[keys[4]]} {stated[keys[5]]} {stated['system']} {filler[1]}",
        f"Records. {stated['retention']} {filler[2]}",
    ]
    closing = f"Questions about this {family.kind.lower()} go to the {vocab.name} team."
    if version > 1:
        labels = " and the ".join(fact_kind(vocab.name, key).label for key in changed)
        closing += f" This version replaces version {version - 1}; the {labels} changed."
    paragraphs.append(closing)
    return "\n\n".join(paragraphs)


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------


def build_corpus(seed: int = DEFAULT_SEED) -> DemoCorpus:
    """Generate the demo company's documents, examples, gold questions and traffic facts for ``seed``."""
    rng = random.Random(seed)
    documents: list[DemoDocument] = []
    examples: list[DemoExample] = []
    gold: list[DemoGold] = []
    facts: list[DemoFact] = []
    weak_families: list[tuple[_Family, DemoDocument]] = []

    for vocab in DEPARTMENTS:
        families = [
            _Family(vocab=vocab, code=f"{vocab.code}-{i + 1:03d}", subject=subject, kind=rng.choice(vocab.kinds))
            for i, subject in enumerate(vocab.subjects)
        ]
        superseded = set(rng.sample(range(len(families)), SUPERSEDED_FAMILIES[vocab.name]))
        current: dict[str, DemoDocument] = {}
        outdated: dict[str, DemoDocument] = {}
        for index, family in enumerate(families):
            first_facts = {kind.key: rng.choice(kind.values) for kind in vocab.facts}
            if index not in superseded:
                effective = _random_date(rng, dt.date(2020, 1, 1), dt.date(2025, 6, 30))
                doc = DemoDocument(
                    external_id=f"{family.code}@v1",
                    family=family.code,
                    department=vocab.name,
                    title=family.title,
                    body=_body(rng, family, version=1, effective=effective, facts=first_facts, changed=()),
                    version=1,
                    effective_date=effective,
                    superseded_by=None,
                    facts=first_facts,
                )
                documents.append(doc)
                current[family.code] = doc
                continue
            changeable = [kind.key for kind in vocab.facts if kind.key not in {"owner", "system"}]
            changed = sorted(rng.sample(changeable, rng.choice((1, 2))), key=changeable.index)
            second_facts = dict(first_facts)
            for key in changed:
                second_facts[key] = _other_value(rng, fact_kind(vocab.name, key), [first_facts[key]])
            first_date = _random_date(rng, dt.date(2019, 1, 1), dt.date(2022, 12, 31))
            second_date = _random_date(rng, dt.date(2024, 1, 1), dt.date(2025, 12, 31))
            old = DemoDocument(
                external_id=f"{family.code}@v1",
                family=family.code,
                department=vocab.name,
                title=family.title,
                body=_body(rng, family, version=1, effective=first_date, facts=first_facts, changed=()),
                version=1,
                effective_date=first_date,
                superseded_by=f"{family.code}@v2",
                facts=first_facts,
            )
            new = DemoDocument(
                external_id=f"{family.code}@v2",
                family=family.code,
                department=vocab.name,
                title=family.title,
                body=_body(rng, family, version=2, effective=second_date, facts=second_facts, changed=changed),
                version=2,
                effective_date=second_date,
                superseded_by=None,
                facts=second_facts,
            )
            documents += [old, new]
            current[family.code] = new
            outdated[family.code] = old

        by_code = {f.code: f for f in families}
        if vocab.name == WEAK_DEPARTMENT:
            weak_families = [(f, current[f.code]) for f in families]
        slots = [(f.code, kind.key) for f in families for kind in vocab.facts]
        gold_slots = set(rng.sample(slots, GOLD_PER_DEPARTMENT))
        for code, key in slots:  # keep the slot order, not the (unordered) set's
            if (code, key) not in gold_slots:
                continue
            family, doc, kind = by_code[code], current[code], fact_kind(vocab.name, key)
            gold.append(
                DemoGold(
                    question=kind.gold_question.format(title=family.title, subject=family.subject),
                    reference_answer=grounded_answer(
                        kind,
                        title=family.title,
                        subject=family.subject,
                        value=doc.facts[key],
                        document_id=doc.external_id,
                    ),
                    department=vocab.name,
                    reference_document_ids=[doc.external_id],
                    key_values=[doc.facts[key]],
                )
            )

        open_slots = [slot for slot in slots if slot not in gold_slots]
        for code, key in open_slots:
            doc = current[code]
            old_doc = outdated.get(code)
            changed_here = old_doc is not None and old_doc.facts[key] != doc.facts[key]
            facts.append(
                DemoFact(
                    department=vocab.name,
                    family=code,
                    key=key,
                    title=by_code[code].title,
                    subject=by_code[code].subject,
                    document_id=doc.external_id,
                    value=doc.facts[key],
                    outdated_document_id=old_doc.external_id if old_doc is not None and changed_here else None,
                    outdated_value=old_doc.facts[key] if old_doc is not None and changed_here else None,
                )
            )
        examples += _department_examples(rng, vocab, by_code, current, outdated, open_slots)

    # drawn from their own generator, so that every other document, example and gold item stays as it was
    documents += cross_department_notes(random.Random(f"auditloop-demo:{seed}:cross-notes"), weak_families)
    _check_held_out(examples, gold)
    return DemoCorpus(
        seed=seed,
        departments=[vocab.name for vocab in DEPARTMENTS],
        documents=documents,
        examples=examples,
        gold=gold,
        facts=facts,
    )


def cross_department_notes(rng: random.Random, families: Sequence[tuple[_Family, DemoDocument]]) -> list[DemoDocument]:
    """Other departments' short copies of the weak department's documents (see ``CROSS_NOTE_SHARE``):
    the same title, two of its facts with other values."""
    notes: list[DemoDocument] = []
    counters = dict.fromkeys((author for author, _ in CROSS_NOTE_AUTHORS), 0)
    for family, doc in families:
        if rng.random() >= CROSS_NOTE_SHARE:
            continue
        author, activity = rng.choice(CROSS_NOTE_AUTHORS)
        counters[author] += 1
        code = f"{vocabulary(author).code}-N{counters[author]:02d}"
        kinds = rng.sample([k for k in family.vocab.facts if k.key not in {"owner", "system"}], 2)
        stated = {k.key: _other_value(rng, k, [doc.facts[k.key]]) for k in kinds}
        effective = _random_date(rng, dt.date(2021, 1, 1), dt.date(2025, 6, 30))
        title = family.title
        sentences = " ".join(
            statement(k, title=family.title, subject=family.subject, value=stated[k.key]) for k in kinds
        )
        body = "\n\n".join(
            [
                f"{title} ({author} copy, in force from {_format_date(effective)}). {author} "
                + activity.format(subject=family.subject.lower())
                + f" and keeps this copy of the {title} for its own staff.",
                f"Summary. {sentences}",
                f"This copy restates the {title} for {author}.",
            ]
        )
        notes.append(
            DemoDocument(
                external_id=f"{code}@v1",
                family=code,
                department=author,
                title=title,
                body=body,
                version=1,
                effective_date=effective,
                superseded_by=None,
                # the weak department's fact keys, not the author's: kept out of ``facts`` (what the
                # author department's own kinds state), so nothing asks about or trains on them
                facts={},
            )
        )
    return notes


def _department_examples(
    rng: random.Random,
    vocab: DepartmentVocabulary,
    by_code: dict[str, _Family],
    current: dict[str, DemoDocument],
    outdated: dict[str, DemoDocument],
    open_slots: list[tuple[str, str]],
) -> list[DemoExample]:
    """The department's curated examples: regular ones first cover every open fact once, then a second
    phrasing; then the planted conflicting and outdated ones. Ids are assigned after a shuffle."""
    changed_slots = [
        (code, key)
        for code, key in open_slots
        if code in outdated and outdated[code].facts[key] != current[code].facts[key]
    ]
    # (a seed whose changed facts all went to gold plants no outdated example in that department)
    outdated_count = OUTDATED_PER_DEPARTMENT if changed_slots else 0
    regular_count = EXAMPLE_TARGETS[vocab.name] - CONFLICTING_PER_DEPARTMENT - outdated_count
    shuffled = rng.sample(open_slots, len(open_slots))
    phrasing_order = {slot: rng.sample(range(3), 3) for slot in shuffled}
    pairs = [(slot, phrasing_order[slot][round_]) for round_ in range(3) for slot in shuffled][:regular_count]

    drafts: list[tuple[str, str, list[str], str | None]] = []  # question, answer, sources, planted
    for (code, key), phrasing in pairs:
        family, doc, kind = by_code[code], current[code], fact_kind(vocab.name, key)
        drafts.append(
            (
                question(kind, phrasing, title=family.title, subject=family.subject),
                grounded_answer(
                    kind, title=family.title, subject=family.subject, value=doc.facts[key], document_id=doc.external_id
                ),
                [doc.external_id],
                None,
            )
        )

    # Conflicting: a near-duplicate of a regular example's question, answered with another value.
    for index in rng.sample(range(len(drafts)), CONFLICTING_PER_DEPARTMENT):
        (code, key), _ = pairs[index]
        family, doc, kind = by_code[code], current[code], fact_kind(vocab.name, key)
        exclude = [doc.facts[key]] + ([outdated[code].facts[key]] if code in outdated else [])
        drafts.append(
            (
                rng.choice(NEAR_DUPLICATE_PREFIXES) + lower_first(drafts[index][0]),
                grounded_answer(
                    kind,
                    title=family.title,
                    subject=family.subject,
                    value=_other_value(rng, kind, exclude),
                    document_id=doc.external_id,
                ),
                [doc.external_id],
                "conflicting",
            )
        )

    # Outdated: the old version's fact, citing the old version (written before the new one came out).
    for n in range(outdated_count):
        code, key = changed_slots[n % len(changed_slots)]
        family, old, kind = by_code[code], outdated[code], fact_kind(vocab.name, key)
        phrasing = (rng.randrange(3) + n // len(changed_slots)) % 3
        drafts.append(
            (
                question(kind, phrasing, title=family.title, subject=family.subject),
                grounded_answer(
                    kind, title=family.title, subject=family.subject, value=old.facts[key], document_id=old.external_id
                ),
                [old.external_id],
                "outdated",
            )
        )

    rng.shuffle(drafts)
    return [
        DemoExample(
            external_id=f"EX-{vocab.code}-{n + 1:04d}",
            question=q,
            answer=a,
            department=vocab.name,
            source_document_ids=sources,
            origin="synthetic" if planted is None and rng.random() < SYNTHETIC_SHARE else "curated",
            status="active",
            planted=planted,
        )
        for n, (q, a, sources, planted) in enumerate(drafts)
    ]


def _check_held_out(examples: Sequence[DemoExample], gold: Sequence[DemoGold]) -> None:
    """The generator's own guarantee: no gold question is also a training question."""
    gold_questions = {normalise_text(g.question) for g in gold}
    leaked = [e.external_id for e in examples if normalise_text(e.question) in gold_questions]
    if leaked:
        raise AssertionError(f"demo corpus leaks gold questions into examples: {leaked[:5]}")
