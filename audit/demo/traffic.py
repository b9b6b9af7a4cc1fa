"""Simulated production traffic for the demo company: answers from model v0 and their past ratings.

Pure and deterministic for (corpus seed, days, today). Problems are planted on purpose so the audit
loop has something to find:

- retrieval over-cites one department (``OVER_CITED_DEPARTMENT``): its documents are injected into the
  sources of other departments' questions, sometimes as the top source, and those answers go wrong;
- answers about the weak department's documents (``WEAK_DEPARTMENT``, fewest examples) are wrong far
  more often: hallucinated values and facts of superseded document versions;
- confidence (mean token log-prob) is lower for wrong answers.

Every answer keeps whether it is actually correct and its correct, grounded reference answer; the
ratings derive from that truth plus auditor noise (one lenient and one harsh auditor). Low-rated answers
carry the correct answer as the auditor's ``suggested_correction``.

API::

    traffic = simulate_traffic(corpus, days=14, today=dt.date(2026, 3, 2))
    traffic.answers      # list[DemoAnswer], oldest first
    traffic.ratings      # list[DemoRating] (origin 'simulated')
    traffic.calibration  # list[DemoCalibration]: answers with expected scores (gold for auditors)
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from typing import Any

from audit.demo.corpus import (
    STAFF_PHRASINGS,
    DemoCorpus,
    DemoFact,
    fact_kind,
    grounded_answer,
    lower_first,
    staff_question,
)
from audit.demo.vocabulary import CASUAL_PREFIXES, OVER_CITED_DEPARTMENT
from audit.knowledge.hashing import normalise_text
from audit.measures.facts import fact_correct, states_value

MODEL_VERSION = "v0"
# Days of history `auditloop demo seed` simulates unless told, and the most it accepts.
DEFAULT_DAYS = 14
MAX_DAYS = 365
# Who asks: the production mix of asker departments.
ASKER_MIX: dict[str, float] = {"Compliance": 0.24, "Legal": 0.2, "Finance": 0.2, "Engineering": 0.2, "HR": 0.16}
# Probability that an answer about a department's documents is right (before retrieval errors).
ANSWER_QUALITY: dict[str, float] = {"Compliance": 0.86, "Legal": 0.84, "Finance": 0.82, "Engineering": 0.8, "HR": 0.5}
ANSWERS_PER_WEEKDAY = 190
ANSWERS_PER_WEEKEND_DAY = 70
OWN_DEPARTMENT_SHARE = 0.93  # questions about the asker's own department's documents
OVER_CITE_RATE = 0.5  # share of other departments' answers whose sources include an over-cited document
OVER_CITE_TOP_RATE = 0.3  # of those, share where the over-cited document outranks the right one
RETRIEVAL_ERROR_QUALITY = 0.3  # probability of a right answer when the wrong document is on top
OUTDATED_ERROR_SHARE = 0.6  # of wrong answers about a changed fact, share that state the old value
# Staff ask about recently changed documents more often than about the rest.
CHANGED_FACT_WEIGHT = 4.0
MULTI_RATED_SHARE = 0.2  # answers rated by 2-3 auditors (agreement can be computed)
CALIBRATION_PER_DEPARTMENT = 20


@dataclass(frozen=True)
class DemoAuditor:
    username: str
    home_department: str
    leniency: int  # +1 rates one point high more often than not, -1 one point low, 0 unbiased


DEMO_AUDITORS: tuple[DemoAuditor, ...] = (
    DemoAuditor("auditor1", "Legal", 0),
    DemoAuditor("auditor2", "Compliance", 0),
    DemoAuditor("auditor3", "Finance", +1),
    DemoAuditor("auditor4", "Engineering", 0),
    DemoAuditor("auditor5", "HR", 0),
    DemoAuditor("auditor6", "Compliance", -1),
    DemoAuditor("auditor7", "Legal", 0),
    DemoAuditor("auditor8", "Finance", 0),
)


@dataclass(frozen=True)
class Scores:
    accuracy: int
    completeness: int
    relevance: int
    coherence: int


@dataclass(frozen=True)
class DemoAnswer:
    external_id: str
    question: str
    answer_text: str
    department: str  # the asker's
    sources: list[dict[str, Any]]  # [{"document_id", "department", "score"}], highest score first
    confidence: float  # mean token log-prob
    latency_ms: int
    created_at: dt.datetime
    correct: bool
    error: str | None  # None, "hallucination", "outdated_source" or "retrieval_error"
    reference_answer: str  # the correct answer, grounded in the current document
    reference_document_id: str
    reference_value: str  # the value the current document gives (what a right answer states)
    true_scores: Scores  # what a careful, unbiased auditor would give
    # another department whose document the answer pulled in (what a bias flag names), and whether on top
    intruder_department: str | None = None
    intruder_on_top: bool = False
    about_department: str = ""  # whose document answers the question ("" = the asker's, as simulated)


@dataclass(frozen=True)
class DemoRating:
    answer_external_id: str
    auditor: str
    accuracy: int
    completeness: int
    relevance: int
    coherence: int
    sources_correct: str
    bias_flag: bool
    favoured_department: str | None
    disfavoured_department: str | None
    comment: str | None
    suggested_correction: str | None
    seconds_spent: int
    created_at: dt.datetime


@dataclass(frozen=True)
class DemoCalibration:
    """A gold item for auditor calibration: a real answer with the scores it should get."""

    answer_external_id: str
    question: str
    reference_answer: str
    department: str
    reference_document_ids: list[str]
    key_values: list[str]
    expected: Scores


@dataclass
class DemoTraffic:
    answers: list[DemoAnswer]
    ratings: list[DemoRating]
    calibration: list[DemoCalibration]


def simulate_traffic(corpus: DemoCorpus, *, days: int, today: dt.date, seed: int | None = None) -> DemoTraffic:
    """Answers over the ``days`` days before ``today`` with their simulated ratings and calibration gold."""
    if days < 1:
        raise ValueError("days must be at least 1")
    rng = random.Random(f"auditloop-demo:{corpus.seed if seed is None else seed}:traffic")
    current = {d.external_id: d for d in corpus.current_documents()}
    by_department, fact_weights = _fact_pool(corpus)
    documents_of = {name: [d.external_id for d in corpus.current_documents(name)] for name in corpus.departments}
    all_current = list(current)
    department_of = {d.external_id: d.department for d in corpus.documents}

    answers: list[DemoAnswer] = []
    number = 1
    for offset in range(days, 0, -1):
        day = today - dt.timedelta(days=offset)
        base = ANSWERS_PER_WEEKDAY if day.weekday() < 5 else ANSWERS_PER_WEEKEND_DAY
        for moment in _moments(rng, day, base):
            asker, fact = _pick(rng, corpus, by_department, fact_weights)
            answers.append(
                _answer(
                    rng,
                    fact,
                    asker=asker,
                    created_at=moment,
                    external_id=f"demo-{number:06d}",
                    documents_of=documents_of,
                    all_current=all_current,
                    department_of=department_of,
                )
            )
            number += 1

    ratings = [r for a in answers for r in _ratings(rng, a)]
    example_questions = {normalise_text(e.question) for e in corpus.examples}
    gold_questions = {normalise_text(g.question) for g in corpus.gold}
    calibration = _calibration(rng, answers, taken=example_questions | gold_questions)
    return DemoTraffic(answers=answers, ratings=ratings, calibration=calibration)


def _fact_pool(corpus: DemoCorpus) -> tuple[dict[str, list[DemoFact]], dict[str, list[float]]]:
    """The facts staff ask about per department, and how often (changed facts more often)."""
    by_department = {name: [f for f in corpus.facts if f.department == name] for name in corpus.departments}
    weights = {
        name: [CHANGED_FACT_WEIGHT if f.outdated_document_id else 1.0 for f in facts]
        for name, facts in by_department.items()
    }
    return by_department, weights


def _moments(rng: random.Random, day: dt.date, base: int) -> list[dt.datetime]:
    """About ``base`` moments (±10) of one working day, 07:00 to 18:00 UTC, in order."""
    count = base + rng.randint(-10, 10)
    start = dt.datetime.combine(day, dt.time(7), tzinfo=dt.UTC)
    return sorted(start + dt.timedelta(seconds=rng.randrange(11 * 3600)) for _ in range(count))


def _pick(
    rng: random.Random,
    corpus: DemoCorpus,
    by_department: dict[str, list[DemoFact]],
    fact_weights: dict[str, list[float]],
) -> tuple[str, DemoFact]:
    """Who asks (the production mix), and about which fact (mostly their own department's)."""
    asker = _weighted(rng, ASKER_MIX)
    about = asker
    if rng.random() >= OWN_DEPARTMENT_SHARE:
        about = rng.choice([d for d in corpus.departments if d != asker])
    return asker, rng.choices(by_department[about], weights=fact_weights[about])[0]


def _ask(rng: random.Random, fact: DemoFact) -> tuple[str, str]:
    """(the question as staff type it, the grounded reference answer) for ``fact``."""
    kind = fact_kind(fact.department, fact.key)
    asked = staff_question(kind, rng.randrange(STAFF_PHRASINGS), title=fact.title, subject=fact.subject)
    if rng.random() < 0.35:
        asked = rng.choice(CASUAL_PREFIXES) + lower_first(asked)
    reference = grounded_answer(
        kind, title=fact.title, subject=fact.subject, value=fact.value, document_id=fact.document_id
    )
    return asked, reference


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _answer(
    rng: random.Random,
    fact: DemoFact,
    *,
    asker: str,
    created_at: dt.datetime,
    external_id: str,
    documents_of: dict[str, list[str]],
    all_current: list[str],
    department_of: dict[str, str],
) -> DemoAnswer:
    kind = fact_kind(fact.department, fact.key)
    asked, reference = _ask(rng, fact)

    # Retrieval: the right document, a neighbour from its department, and sometimes an over-cited one.
    right = fact.document_id
    neighbours = [d for d in documents_of[fact.department] if d != right]
    retrieved = [right, rng.choice(neighbours)]
    over_cited_on_top = False
    if asker != OVER_CITED_DEPARTMENT and rng.random() < OVER_CITE_RATE:
        intruder = rng.choice([d for d in documents_of[OVER_CITED_DEPARTMENT] if d not in retrieved])
        over_cited_on_top = rng.random() < OVER_CITE_TOP_RATE and fact.department != OVER_CITED_DEPARTMENT
        if over_cited_on_top:
            retrieved.insert(0, intruder)
        else:
            retrieved.append(intruder)
    elif rng.random() < 0.5:
        retrieved.append(rng.choice([d for d in all_current if d not in retrieved]))

    quality = RETRIEVAL_ERROR_QUALITY if over_cited_on_top else ANSWER_QUALITY[fact.department]
    correct = rng.random() < quality
    error: str | None = None
    text = reference
    if not correct:
        if over_cited_on_top:
            error = "retrieval_error"
            wrong = rng.choice([v for v in kind.values if v != fact.value])
            text = grounded_answer(kind, title=fact.title, subject=fact.subject, value=wrong, document_id=retrieved[0])
        elif fact.outdated_document_id is not None and rng.random() < OUTDATED_ERROR_SHARE:
            error = "outdated_source"
            assert fact.outdated_value is not None
            retrieved[0] = fact.outdated_document_id  # the old version outranked the current one
            text = grounded_answer(
                kind,
                title=fact.title,
                subject=fact.subject,
                value=fact.outdated_value,
                document_id=fact.outdated_document_id,
            )
        else:
            error = "hallucination"
            wrong = rng.choice([v for v in kind.values if v not in (fact.value, fact.outdated_value)])
            text = grounded_answer(kind, title=fact.title, subject=fact.subject, value=wrong, document_id=right)

    score = rng.uniform(0.55, 0.9)
    sources = []
    for document_id in retrieved:
        sources.append({"document_id": document_id, "department": department_of[document_id], "score": round(score, 4)})
        score = max(0.05, score - rng.uniform(0.03, 0.2))

    confidence = rng.gauss(-0.7, 0.3) if correct else rng.gauss(-1.6, 0.45)
    over_cited = [s for s in sources if s["department"] == OVER_CITED_DEPARTMENT]
    return DemoAnswer(
        external_id=external_id,
        question=asked,
        answer_text=text,
        department=asker,
        sources=sources,
        confidence=round(min(-0.2, max(-2.5, confidence)), 4),
        latency_ms=int(rng.lognormvariate(math.log(850), 0.35)),
        created_at=created_at,
        correct=correct,
        error=error,
        reference_answer=reference,
        reference_document_id=right,
        reference_value=fact.value,
        true_scores=_true_scores(rng, error),
        intruder_department=OVER_CITED_DEPARTMENT if over_cited and asker != OVER_CITED_DEPARTMENT else None,
        intruder_on_top=bool(over_cited) and sources[0]["department"] == OVER_CITED_DEPARTMENT,
    )


def _true_scores(rng: random.Random, error: str | None) -> Scores:
    if error is None:
        accuracy = 5 if rng.random() < 0.65 else 4
        return Scores(accuracy, rng.choice((4, 5, 5)), rng.choice((4, 5, 5)), rng.choice((4, 5, 5)))
    if error == "outdated_source":
        accuracy = 2 if rng.random() < 0.75 else 1
        return Scores(accuracy, rng.choice((2, 3)), rng.choice((3, 4)), rng.choice((4, 5)))
    if error == "retrieval_error":
        accuracy = 1 if rng.random() < 0.5 else 2
        return Scores(accuracy, rng.choice((1, 2)), rng.choice((2, 3)), rng.choice((3, 4)))
    accuracy = 1 if rng.random() < 0.55 else 2
    return Scores(accuracy, rng.choice((2, 3)), rng.choice((3, 4)), rng.choice((3, 4, 5)))


def _noisy(rng: random.Random, value: int, leniency: int) -> int:
    if leniency and rng.random() < 0.6:
        value += leniency
    elif rng.random() < 0.15:
        value += rng.choice((-1, 1))
    return min(5, max(1, value))


_COMMENTS = {
    "hallucination": ("The stated value is not in the cited document.", "Wrong figure; the document says otherwise."),
    "outdated_source": ("Quotes the superseded version of the document.", "Outdated: a newer version applies."),
    "retrieval_error": ("Answered from the wrong department's document.", "Cites an unrelated policy."),
}


def _ratings(rng: random.Random, answer: DemoAnswer) -> list[DemoRating]:
    raters = 1 if rng.random() >= MULTI_RATED_SHARE else rng.choice((2, 3))
    intruder = answer.intruder_department
    ratings = []
    for auditor in rng.sample(DEMO_AUDITORS, raters):
        truth = answer.true_scores
        accuracy = _noisy(rng, truth.accuracy, auditor.leniency)
        flagged = intruder is not None and rng.random() < (0.55 if answer.intruder_on_top else 0.15)
        if answer.error in ("outdated_source", "retrieval_error"):
            sources_correct = "no" if rng.random() < 0.75 else "unsure"
        elif answer.error == "hallucination":
            sources_correct = "yes" if rng.random() < 0.6 else "unsure"
        else:
            sources_correct = "yes" if rng.random() < 0.9 else "unsure"
        comment = None
        if answer.error is not None and accuracy <= 3:
            comment = rng.choice(_COMMENTS[answer.error])
        elif flagged:
            comment = f"Pulls in {intruder} documents for a {answer.about_department or answer.department} question."
        ratings.append(
            DemoRating(
                answer_external_id=answer.external_id,
                auditor=auditor.username,
                accuracy=accuracy,
                completeness=_noisy(rng, truth.completeness, auditor.leniency),
                relevance=_noisy(rng, truth.relevance, auditor.leniency),
                coherence=_noisy(rng, truth.coherence, auditor.leniency),
                sources_correct=sources_correct,
                bias_flag=flagged,
                favoured_department=intruder if flagged else None,
                disfavoured_department=(answer.about_department or answer.department) if flagged else None,
                comment=comment,
                suggested_correction=answer.reference_answer if accuracy <= 2 else None,
                seconds_spent=rng.randint(25, 240),
                created_at=answer.created_at + dt.timedelta(minutes=rng.randint(60, 300)),
            )
        )
    return ratings


def _calibration(rng: random.Random, answers: list[DemoAnswer], *, taken: set[str]) -> list[DemoCalibration]:
    """Gold for auditor calibration: per asker department, answers (half right, half wrong where
    possible) whose question is unique and is neither a training nor a held-out gold question."""
    seen = set(taken)
    chosen: list[DemoCalibration] = []
    for department in ASKER_MIX:
        pool = [a for a in answers if a.department == department]
        rng.shuffle(pool)
        picked: list[DemoAnswer] = []
        for want_correct in (True, False):
            for candidate in pool:
                if sum(1 for p in picked if p.correct == want_correct) >= CALIBRATION_PER_DEPARTMENT // 2:
                    break
                key = normalise_text(candidate.question)
                if candidate.correct == want_correct and key not in seen:
                    seen.add(key)
                    picked.append(candidate)
        chosen += [
            DemoCalibration(
                answer_external_id=a.external_id,
                question=a.question,
                reference_answer=a.reference_answer,
                department=a.department,
                reference_document_ids=[a.reference_document_id],
                key_values=[a.reference_value],
                expected=a.true_scores,
            )
            for a in sorted(picked, key=lambda a: a.external_id)
        ]
    return chosen


# --------------------------------------------------------------------------- days answered for real

# The days the demo loop has the assistant itself answer (``app/demo_loop.py``): fewer questions than
# the simulated history's days, so that answering them on CPU stays a small part of a loop's run.
REAL_ANSWERS_PER_WEEKDAY = 120
REAL_ANSWERS_PER_WEEKEND_DAY = 40


@dataclass(frozen=True)
class DemoQuestion:
    """A staff question of a day answered for real, with the fact it asks about (the truth)."""

    external_id: str
    question: str
    asker: str
    created_at: dt.datetime
    fact: DemoFact
    reference_answer: str


def demo_questions(
    corpus: DemoCorpus,
    *,
    first_day: dt.date,
    days: int,
    label: str,
    per_weekday: int = REAL_ANSWERS_PER_WEEKDAY,
    per_weekend_day: int = REAL_ANSWERS_PER_WEEKEND_DAY,
) -> list[DemoQuestion]:
    """The questions of ``days`` days from ``first_day``, asked as in the simulated history (the same
    asker mix, facts and phrasings), deterministic for (corpus seed, ``label``); external ids
    ``{label}-YYYYMMDD-NNNN``."""
    if days < 0:
        raise ValueError("days must not be negative")
    rng = random.Random(f"auditloop-demo:{corpus.seed}:{label}")
    by_department, fact_weights = _fact_pool(corpus)
    asked: list[DemoQuestion] = []
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        base = per_weekday if day.weekday() < 5 else per_weekend_day
        for n, moment in enumerate(_moments(rng, day, base), start=1):
            asker, fact = _pick(rng, corpus, by_department, fact_weights)
            text, reference = _ask(rng, fact)
            asked.append(DemoQuestion(f"{label}-{day:%Y%m%d}-{n:04d}", text, asker, moment, fact, reference))
    return asked


def judge_real_answer(
    rng: random.Random,
    asked: DemoQuestion,
    *,
    answer_text: str,
    sources: list[dict[str, Any]],
    confidence: float | None,
    latency_ms: int,
) -> DemoAnswer:
    """What really happened in an answer the assistant gave, read against the demo's truth, in the
    simulated history's terms (so its ratings and the SME's decision follow the same rules):

    - right when it states the fact's current value (``audit.measures.facts.fact_correct``);
    - otherwise ``outdated_source`` when it states the superseded version's value or rests on that
      version, ``retrieval_error`` when its top source is another document, else ``hallucination``
      (the right document on top and still a wrong or missing value).

    ``sources`` are the retrieved documents, best first (``document_id``, ``department``, ``score``).
    Another department's document on top is what an auditor may flag as department bias.
    """
    fact = asked.fact
    top = sources[0] if sources else None
    error: str | None = None
    if not fact_correct(answer_text, [fact.value]):
        stale = fact.outdated_value is not None and states_value(answer_text, fact.outdated_value)
        if stale or (top is not None and top["document_id"] == fact.outdated_document_id):
            error = "outdated_source"
        elif top is None or top["document_id"] != fact.document_id:
            error = "retrieval_error"
        else:
            error = "hallucination"
    foreign_on_top = top is not None and top["department"] != fact.department
    return DemoAnswer(
        external_id=asked.external_id,
        question=asked.question,
        answer_text=answer_text,
        department=asked.asker,
        sources=sources,
        confidence=confidence if confidence is not None else math.nan,
        latency_ms=latency_ms,
        created_at=asked.created_at,
        correct=error is None,
        error=error,
        reference_answer=asked.reference_answer,
        reference_document_id=fact.document_id,
        reference_value=fact.value,
        true_scores=_true_scores(rng, error),
        intruder_department=top["department"] if top is not None and foreign_on_top else None,
        intruder_on_top=foreign_on_top,
        about_department=fact.department,
    )


def rate(rng: random.Random, answer: DemoAnswer) -> list[DemoRating]:
    """The simulated auditors' ratings of ``answer`` (its truth plus their noise and leniency)."""
    return _ratings(rng, answer)
