"""The demo company: deterministic content, the promised skews and planted problems, and the seeding."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, aliased

from audit.answers.models import Answer
from audit.auditlog.models import AuditLogEntry
from audit.db import make_engine, make_session_factory
from audit.demo.corpus import STAFF_PHRASINGS, build_corpus, fact_kind, grounded_answer, staff_question, statement
from audit.demo.seed import question_hash, seed_demo, write_credentials
from audit.demo.traffic import DEMO_AUDITORS, simulate_traffic
from audit.demo.vocabulary import GOLD_PER_DEPARTMENT, NEAR_DUPLICATE_PREFIXES, OVER_CITED_DEPARTMENT, WEAK_DEPARTMENT
from audit.errors import ConflictError, PermissionDenied
from audit.knowledge import datasets
from audit.knowledge.hashing import example_content_hash, normalise_text
from audit.knowledge.models import DatasetVersion, Document, Example
from audit.modelops.models import ModelVersion
from audit.org import passwords
from audit.org import service as org_service
from audit.org.models import Department, User
from audit.ratings.models import Rating
from audit.sampling.models import GoldItem
from tests import factories as f

TODAY = dt.date(2026, 3, 2)


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id, at a cost that keeps 15 accounts per seed fast (the default costs ~0.1-0.5 s each)."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
    )


@pytest.fixture(scope="module")
def corpus():  # type: ignore[no-untyped-def]
    return build_corpus(7)


@pytest.fixture(scope="module")
def traffic(corpus):  # type: ignore[no-untyped-def]
    return simulate_traffic(corpus, days=14, today=TODAY)


# ---------------------------------------------------------------------------------------------
# The corpus (pure)
# ---------------------------------------------------------------------------------------------


def test_same_seed_gives_the_same_corpus_and_another_seed_another(corpus) -> None:  # type: ignore[no-untyped-def]
    assert build_corpus(7) == corpus
    other = build_corpus(8)
    assert [d.body for d in other.documents] != [d.body for d in corpus.documents]


@pytest.mark.parametrize("seed", [1, 2, 3, 42, 2026])
def test_any_seed_builds_a_corpus_that_keeps_its_promises(seed: int) -> None:
    corpus = build_corpus(seed)
    counts = Counter(e.department for e in corpus.examples)
    assert max(counts.values()) >= 4 * min(counts.values())
    assert sum(1 for d in corpus.documents if d.superseded_by) / len(corpus.documents) >= 0.10
    assert len({example_content_hash(e.question, e.answer) for e in corpus.examples}) == len(corpus.examples)
    assert Counter(e.planted for e in corpus.examples)["outdated"] >= 10
    assert len(simulate_traffic(corpus, days=14, today=TODAY).answers) >= 2000


def test_documents_have_families_versions_and_at_least_ten_percent_superseded(corpus) -> None:  # type: ignore[no-untyped-def]
    documents = {d.external_id: d for d in corpus.documents}
    assert 190 <= len(documents) <= 240  # ~170 own documents and versions, ~17 copies of HR documents
    assert set(corpus.departments) == {"Legal", "Compliance", "Finance", "Engineering", "HR"}
    assert len({(d.family, d.version) for d in corpus.documents}) == len(corpus.documents)
    superseded = [d for d in corpus.documents if d.superseded_by is not None]
    assert len(superseded) / len(corpus.documents) >= 0.10
    for old in superseded:
        new = documents[old.superseded_by]
        assert (new.family, new.version) == (old.family, old.version + 1)
        assert new.effective_date > old.effective_date
        assert new.superseded_by is None
        assert any(old.facts[k] != new.facts[k] for k in old.facts), "a new version changes a fact"
    # every fact a document holds is stated, word for word, in its body
    for doc in corpus.documents:
        for key, value in doc.facts.items():
            kind = fact_kind(doc.department, key)
            subject = doc.title.rsplit(" ", 1)[0]
            assert statement(kind, title=doc.title, subject=subject, value=value) in doc.body


def test_titles_are_realistic_and_unique_but_for_other_departments_copies(corpus) -> None:  # type: ignore[no-untyped-def]
    owned = [d for d in corpus.current_documents() if "-N" not in d.family]
    titles = {d.title for d in owned}
    assert len(titles) == len(owned)
    # the retrieval skew: other departments' short copies of HR documents, under the same title
    copies = [d for d in corpus.current_documents() if "-N" in d.family]
    hr_titles = {d.title for d in owned if d.department == "HR"}
    assert copies and {d.title for d in copies} <= hr_titles
    assert {d.department for d in copies} <= {"Finance", "Legal", "Compliance"}
    assert any(t.startswith("MiFID II Best Execution ") for t in titles)
    assert any(t.startswith("Expense Approval ") for t in titles)
    assert any(t.startswith("Deploy Pipeline ") for t in titles)


def test_examples_are_skewed_by_department_and_grounded(corpus) -> None:  # type: ignore[no-untyped-def]
    counts = Counter(e.department for e in corpus.examples)
    assert 950 <= len(corpus.examples) <= 1050
    assert max(counts.values()) / min(counts.values()) >= 4
    assert min(counts, key=counts.__getitem__) == WEAK_DEPARTMENT
    assert len({example_content_hash(e.question, e.answer) for e in corpus.examples}) == len(corpus.examples)
    assert len({e.external_id for e in corpus.examples}) == len(corpus.examples)
    documents = {d.external_id: d for d in corpus.documents}
    for example in corpus.examples:
        (source,) = example.source_document_ids
        assert example.answer.endswith(f"(source: {source})")
        claim = example.answer.removesuffix(f" (source: {source})")
        if example.planted is None:
            assert documents[source].superseded_by is None
            assert claim in documents[source].body  # the answer is the document's own sentence


def test_planted_conflicts_and_outdated_examples(corpus) -> None:  # type: ignore[no-untyped-def]
    documents = {d.external_id: d for d in corpus.documents}
    by_question = {normalise_text(e.question): e for e in corpus.examples if e.planted is None}
    conflicting = [e for e in corpus.examples if e.planted == "conflicting"]
    outdated = [e for e in corpus.examples if e.planted == "outdated"]
    assert len(conflicting) >= 10 and len(outdated) >= 10
    for example in conflicting:
        prefix = next(p for p in NEAR_DUPLICATE_PREFIXES if example.question.startswith(p))
        original = by_question[normalise_text(example.question.removeprefix(prefix))]
        assert original.source_document_ids == example.source_document_ids
        assert original.answer != example.answer  # contradicts the original on the same document
        claim = example.answer.removesuffix(f" (source: {example.source_document_ids[0]})")
        assert claim not in documents[example.source_document_ids[0]].body
    for example in outdated:
        old = documents[example.source_document_ids[0]]
        assert old.superseded_by is not None
        claim = example.answer.removesuffix(f" (source: {old.external_id})")
        assert claim in old.body and claim not in documents[old.superseded_by].body


def test_gold_is_held_out_from_the_examples(corpus) -> None:  # type: ignore[no-untyped-def]
    assert Counter(g.department for g in corpus.gold) == {d: GOLD_PER_DEPARTMENT for d in corpus.departments}
    example_questions = {normalise_text(e.question) for e in corpus.examples}
    assert not any(normalise_text(g.question) in example_questions for g in corpus.gold)
    assert len({question_hash(g.question) for g in corpus.gold}) == len(corpus.gold)
    documents = {d.external_id: d for d in corpus.documents}
    for gold in corpus.gold:
        (reference,) = gold.reference_document_ids
        assert documents[reference].superseded_by is None
        assert gold.reference_answer.removesuffix(f" (source: {reference})") in documents[reference].body
    # gold facts are not in the traffic pool either, so corrections from traffic never leak them
    traffic_answers = {
        grounded_answer(
            fact_kind(x.department, x.key), title=x.title, subject=x.subject, value=x.value, document_id=x.document_id
        )
        for x in corpus.facts
    }
    assert not any(g.reference_answer in traffic_answers for g in corpus.gold)


# ---------------------------------------------------------------------------------------------
# The traffic (pure)
# ---------------------------------------------------------------------------------------------


def test_traffic_volume_window_and_determinism(corpus, traffic) -> None:  # type: ignore[no-untyped-def]
    assert len(traffic.answers) >= 2000
    start = dt.datetime.combine(TODAY - dt.timedelta(days=14), dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(TODAY, dt.time(), tzinfo=dt.UTC)
    assert all(start <= a.created_at < end for a in traffic.answers)
    assert len({a.external_id for a in traffic.answers}) == len(traffic.answers)
    assert all(2 <= len(a.sources) <= 3 for a in traffic.answers)
    assert all(-2.5 <= a.confidence <= -0.2 for a in traffic.answers)
    assert len({a.department for a in traffic.answers}) == 5
    assert simulate_traffic(corpus, days=14, today=TODAY) == traffic


def test_staff_ask_in_the_curators_phrasings_and_the_one_they_missed_but_never_a_gold_question(corpus, traffic) -> None:  # type: ignore[no-untyped-def]
    # the question of each traffic fact in each of the four staff phrasings (3: the gold set's)
    phrasings: dict[str, int] = {}
    for fact in corpus.facts:
        kind = fact_kind(fact.department, fact.key)
        for n in range(STAFF_PHRASINGS):
            phrasings[normalise_text(staff_question(kind, n, title=fact.title, subject=fact.subject))] = n
    asked: Counter[int] = Counter()
    for answer in traffic.answers:
        text = normalise_text(answer.question)
        (n,) = {n for q, n in phrasings.items() if text.endswith(q)}  # after a casual "Hi, ", if any
        asked[n] += 1
    assert set(asked) == {0, 1, 2, 3}
    assert 0.2 <= asked[3] / sum(asked.values()) <= 0.3  # one way of asking in four
    example_texts = {normalise_text(e.question) for e in corpus.examples}
    assert not any(q in example_texts for q, n in phrasings.items() if n == 3)  # the curators never wrote it
    gold_texts = {normalise_text(g.question) for g in corpus.gold}
    assert not any(normalise_text(a.question) in gold_texts for a in traffic.answers)


def test_retrieval_over_cites_one_department(corpus, traffic) -> None:  # type: ignore[no-untyped-def]
    foreign = Counter(s["department"] for a in traffic.answers for s in a.sources if s["department"] != a.department)
    share = foreign[OVER_CITED_DEPARTMENT] / sum(foreign.values())
    documents_share = len(corpus.current_documents(OVER_CITED_DEPARTMENT)) / len(corpus.current_documents())
    assert share >= 0.5
    assert share >= 2 * documents_share


def test_weak_department_answers_worse_and_low_confidence_means_wrong(traffic) -> None:  # type: ignore[no-untyped-def]
    correct = {
        d: statistics.fmean(a.correct for a in traffic.answers if a.department == d) for d in {"HR", "Legal", "Finance"}
    }
    assert correct[WEAK_DEPARTMENT] < min(v for d, v in correct.items() if d != WEAK_DEPARTMENT) - 0.1
    errors = Counter(a.error for a in traffic.answers if a.department == WEAK_DEPARTMENT)
    assert errors["hallucination"] > 0 and errors["outdated_source"] > 0
    right = statistics.fmean(a.confidence for a in traffic.answers if a.correct)
    wrong = statistics.fmean(a.confidence for a in traffic.answers if not a.correct)
    assert wrong < right - 0.5


def test_ratings_follow_truth_with_auditor_bias(traffic) -> None:  # type: ignore[no-untyped-def]
    answers = {a.external_id: a for a in traffic.answers}
    raters = Counter(r.answer_external_id for r in traffic.ratings)
    assert set(raters) == set(answers)
    assert 0.15 <= sum(1 for n in raters.values() if n > 1) / len(raters) <= 0.25
    assert max(raters.values()) == 3
    by_auditor = {
        a.username: statistics.fmean(r.accuracy for r in traffic.ratings if r.auditor == a.username)
        for a in DEMO_AUDITORS
    }
    lenient = next(a.username for a in DEMO_AUDITORS if a.leniency > 0)
    harsh = next(a.username for a in DEMO_AUDITORS if a.leniency < 0)
    assert by_auditor[lenient] == max(by_auditor.values()) and by_auditor[harsh] == min(by_auditor.values())
    for rating in traffic.ratings:
        answer = answers[rating.answer_external_id]
        assert answer.created_at < rating.created_at <= answer.created_at + dt.timedelta(hours=5)
        if rating.accuracy <= 2:
            assert rating.suggested_correction == answer.reference_answer
        if rating.bias_flag:
            assert rating.favoured_department == OVER_CITED_DEPARTMENT
            assert rating.disfavoured_department == answer.department != OVER_CITED_DEPARTMENT
    assert statistics.fmean(r.accuracy for r in traffic.ratings if answers[r.answer_external_id].correct) > 4
    assert statistics.fmean(r.accuracy for r in traffic.ratings if not answers[r.answer_external_id].correct) < 2.5


def test_calibration_gold_is_unique_and_not_a_training_question(corpus, traffic) -> None:  # type: ignore[no-untyped-def]
    assert Counter(c.department for c in traffic.calibration) == {d: 20 for d in corpus.departments}
    hashes = [question_hash(c.question) for c in traffic.calibration] + [question_hash(g.question) for g in corpus.gold]
    assert len(set(hashes)) == len(hashes)
    example_questions = {normalise_text(e.question) for e in corpus.examples}
    assert not any(normalise_text(c.question) in example_questions for c in traffic.calibration)
    answers = {a.external_id: a for a in traffic.answers}
    assert {answers[c.answer_external_id].correct for c in traffic.calibration} == {True, False}


# ---------------------------------------------------------------------------------------------
# Seeding the database
# ---------------------------------------------------------------------------------------------


def test_seed_fills_every_table_consistently(session: Session, cheap_argon2: None) -> None:
    report = seed_demo(session, actor=None, today=TODAY, days=2)
    counts = report.counts

    def count(model: Any) -> int:
        return len(session.scalars(select(model.id)).all())

    assert count(Department) == 5 and count(User) == counts["users"] == 15
    assert count(Document) == counts["documents"] and count(Example) == counts["examples"]
    assert count(Answer) == counts["answers"] and count(Rating) == counts["ratings"]
    assert count(GoldItem) == counts["gold_items"] == GOLD_PER_DEPARTMENT * 5 + counts["gold_items_with_answer"]

    newer = aliased(Document)
    pairs = session.execute(
        select(Document.external_id, newer.external_id).join(newer, Document.superseded_by_id == newer.id)
    ).all()
    assert len(pairs) == counts["documents_superseded"]
    assert all(new == old.replace("@v1", "@v2") for old, new in pairs)

    version = datasets.current_version(session)
    assert version is not None and version.number == 1 and version.example_count == counts["examples"]
    assert version.counts_by_department["Compliance"] >= 4 * version.counts_by_department["HR"]
    model = session.scalars(select(ModelVersion)).one()
    assert (model.name, model.alias, model.base_model, model.dataset_version_id) == (
        "v0",
        "champion",
        "builtin:tiny",
        version.id,
    )

    answer = session.scalars(select(Answer).order_by(Answer.id).limit(1)).one()
    top = session.get(Department, answer.top_source_department_id)
    assert top is not None and top.name == answer.sources[0]["department"]
    assert answer.model_version_id == model.id
    ratings = session.scalars(select(Rating)).all()
    assert {r.origin for r in ratings} == {"simulated"} and all(
        r.is_current and r.assignment_id is None for r in ratings
    )
    assert any(r.bias_flag for r in ratings) and any(r.suggested_correction for r in ratings)
    calibration = session.scalars(select(GoldItem).where(GoldItem.answer_id.is_not(None))).all()
    assert calibration and all(g.expected_accuracy is not None for g in calibration)
    assert session.scalars(select(AuditLogEntry).where(AuditLogEntry.action == "demo.seed")).one()


def test_seeded_accounts_of_every_role_can_log_in(session: Session, cheap_argon2: None) -> None:
    report = seed_demo(session, actor=None, today=TODAY, days=1)
    by_role = {}
    for credential in report.credentials:
        assert len(credential.password) >= 16
        by_role.setdefault(credential.role, credential)
    assert set(by_role) == {"admin", "lead", "sme", "auditor"}
    for credential in by_role.values():
        result = org_service.authenticate(session, credential.username, credential.password)
        assert result.ok and result.user is not None and result.user.role == credential.role
    user = session.scalars(select(User).where(User.username == "sme.hr")).one()
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    smes = {c.username: c.departments for c in report.credentials if c.role == "sme"}
    assert sorted(d for ds in smes.values() for d in ds) == sorted(
        ["Legal", "Compliance", "Finance", "Engineering", "HR"]
    )
    assert len({c.password for c in report.credentials}) == len(report.credentials)


def test_seed_refuses_a_database_that_holds_data(session: Session) -> None:
    f.user(session, role="auditor", username="someone")
    with pytest.raises(ConflictError, match="already holds data .*1 users"):
        seed_demo(session, actor=None, today=TODAY, days=1)


def test_seed_is_refused_to_roles_without_both_rights(session: Session) -> None:
    lead = f.user(session, role="lead")
    with pytest.raises(PermissionDenied):
        seed_demo(session, actor=lead, today=TODAY, days=1)


def test_credentials_file_is_private(tmp_path: Path, session: Session, cheap_argon2: None) -> None:
    report = seed_demo(session, actor=None, today=TODAY, days=1)
    target = tmp_path / "data" / "demo-credentials.txt"
    target.parent.mkdir()
    target.write_text("stale")
    target.chmod(0o644)  # a leftover, readable file is tightened, not kept
    write_credentials(target, report.credentials, seed=7)
    assert target.stat().st_mode & 0o777 == 0o600
    text = target.read_text()
    assert all(c.password in text and c.username in text for c in report.credentials)


# ---------------------------------------------------------------------------------------------
# Determinism across databases
# ---------------------------------------------------------------------------------------------


def _content_digests(engine: Engine) -> dict[str, str]:
    """sha256 per table of the content rows, with ids replaced by natural keys and creation times left out."""
    with make_session_factory(engine)() as session:
        departments = dict(session.execute(select(Department.id, Department.name)).tuples().all())
        users = dict(session.execute(select(User.id, User.username)).tuples().all())
        document_keys = dict(session.execute(select(Document.id, Document.external_id)).tuples().all())
        answer_keys = dict(session.execute(select(Answer.id, Answer.external_id)).tuples().all())
        tables: dict[str, list[Any]] = {
            "documents": [
                (
                    d.external_id,
                    d.family,
                    departments[d.department_id],
                    d.title,
                    d.body,
                    d.version,
                    d.effective_date.isoformat(),
                    document_keys.get(d.superseded_by_id),
                    d.content_hash,
                )  # fmt: skip
                for d in session.scalars(select(Document))
            ],
            "examples": [
                (
                    e.external_id,
                    e.question,
                    e.answer,
                    departments[e.department_id],
                    e.source_document_ids,
                    e.origin,
                    e.status,
                    e.content_hash,
                )  # fmt: skip
                for e in session.scalars(select(Example))
            ],
            "answers": [
                (
                    a.external_id,
                    a.question,
                    a.answer_text,
                    departments[a.asker_department_id],
                    a.sources,
                    departments[a.top_source_department_id],
                    a.cites_other_department,
                    a.confidence,
                    a.latency_ms,
                    a.created_at.isoformat(),
                    a.content_hash,
                )  # fmt: skip
                for a in session.scalars(select(Answer))
            ],
            "gold_items": [
                (
                    g.question,
                    g.question_hash,
                    g.reference_answer,
                    departments[g.department_id],
                    g.reference_document_ids,
                    answer_keys.get(g.answer_id),
                    g.expected_accuracy,
                    g.expected_completeness,
                    g.expected_relevance,
                    g.expected_coherence,
                )  # fmt: skip
                for g in session.scalars(select(GoldItem))
            ],
            "ratings": [
                (
                    answer_keys[r.answer_id],
                    users[r.auditor_id],
                    r.accuracy,
                    r.completeness,
                    r.relevance,
                    r.coherence,
                    r.sources_correct,
                    r.bias_flag,
                    departments.get(r.favoured_department_id),
                    departments.get(r.disfavoured_department_id),
                    r.comment,
                    r.suggested_correction,
                    r.seconds_spent,
                    r.created_at.isoformat(),
                )  # fmt: skip
                for r in session.scalars(select(Rating))
            ],
            "dataset_versions": [
                (v.number, v.content_hash, v.example_count, v.counts_by_department)
                for v in session.scalars(select(DatasetVersion))
            ],
        }
    return {
        name: hashlib.sha256(
            json.dumps(sorted(rows, key=lambda r: json.dumps(r, sort_keys=True)), sort_keys=True).encode()
        ).hexdigest()
        for name, rows in tables.items()
    }


@pytest.fixture
def make_sqlite(sqlite_template: Path, tmp_path: Path) -> Iterator[Any]:
    engines: list[Engine] = []

    def build(name: str) -> Engine:
        path = tmp_path / f"{name}.db"
        shutil.copy(sqlite_template, path)
        engine = make_engine(f"sqlite:///{path}")
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.dispose()


def _seed(engine: Engine, *, seed: int, days: int = 2) -> None:
    with make_session_factory(engine)() as session:
        seed_demo(session, actor=None, today=TODAY, seed=seed, days=days)
        session.commit()


def test_same_seed_writes_identical_content_into_two_databases(make_sqlite, cheap_argon2: None) -> None:  # type: ignore[no-untyped-def]
    first, second, other = make_sqlite("first"), make_sqlite("second"), make_sqlite("other")
    _seed(first, seed=11)
    _seed(second, seed=11)
    _seed(other, seed=12)
    digests = _content_digests(first)
    assert _content_digests(second) == digests
    different = _content_digests(other)
    assert all(different[table] != digests[table] for table in ("documents", "examples", "answers", "ratings"))


@pytest.mark.postgres
def test_postgres_holds_the_same_content_as_sqlite(make_sqlite, migrated_postgres_url: str, cheap_argon2: None) -> None:  # type: ignore[no-untyped-def]
    lite = make_sqlite("lite")
    postgres = make_engine(migrated_postgres_url)
    try:
        _seed(lite, seed=7)
        _seed(postgres, seed=7)
        assert _content_digests(postgres) == _content_digests(lite)
    finally:
        postgres.dispose()


@pytest.mark.slow
def test_default_seed_is_fast_and_shows_the_planted_problems(make_sqlite) -> None:  # type: ignore[no-untyped-def]
    """The real thing: default 14 days, argon2id at its default cost, measured end to end."""
    engine = make_sqlite("default")
    started = time.perf_counter()
    _seed(engine, seed=7, days=14)
    assert time.perf_counter() - started < 60

    with make_session_factory(engine)() as session:
        departments = dict(session.execute(select(Department.id, Department.name)).tuples().all())
        answers = session.execute(select(Answer.id, Answer.asker_department_id, Answer.sources)).all()
        assert len(answers) >= 2000
        foreign = Counter(
            s["department"] for _, asker, sources in answers for s in sources if s["department"] != departments[asker]
        )
        assert foreign[OVER_CITED_DEPARTMENT] / sum(foreign.values()) >= 0.5

        asker_of = {answer_id: departments[asker] for answer_id, asker, _ in answers}
        accuracy: dict[str, list[int]] = {}
        for answer_id, value in session.execute(select(Rating.answer_id, Rating.accuracy)):
            accuracy.setdefault(asker_of[answer_id], []).append(value)
        means = {name: statistics.fmean(values) for name, values in accuracy.items()}
        assert min(means, key=means.__getitem__) == WEAK_DEPARTMENT
        assert means[WEAK_DEPARTMENT] < statistics.fmean(v for d, v in means.items() if d != WEAK_DEPARTMENT) - 0.3

        examples = Counter(
            departments[d] for d in session.scalars(select(Example.department_id).where(Example.status == "active"))
        )
        assert max(examples.values()) >= 4 * min(examples.values())
        documents = session.execute(select(Document.superseded_by_id)).scalars().all()
        assert sum(1 for d in documents if d is not None) / len(documents) >= 0.10
