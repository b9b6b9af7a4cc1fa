"""Data fixes: proposed from confirmed reviews, applied by policy or by a lead, and written into one
new dataset version per batch.

Refusals are stored, not dropped: a fix that would duplicate an example, leak the evaluation set or
has nothing to act on is written with status ``rejected``, ``decided_by_id`` NULL (the system) and
the reason in ``decision_note`` — so every confirmed review leaves a visible trace, and proposing
is idempotent (a review with any fix row is never proposed for again). The exception is a correction
carried over to another document (``FixesPolicy.carry_over``): the system's suggestion, not the SME's,
so one the guards would refuse is dropped rather than stored.

Public API (all take ``actor``: a User, or None for the operator/cron; callers commit):
    propose_fixes(session, actor=None) -> ProposalReport
    auto_apply(session) -> ApplyReport                          (the kinds the policy auto-applies)
    apply_fixes(session, actor=, fix_ids=, note=None) -> ApplyReport     (a lead approves)
        both evaluate the retraining triggers once something was applied (``report.triggers``)
    reject_fixes(session, actor=, fix_ids=, note=) -> list[DataFix]
    list_fixes(session, actor=, status=None, kind=None, limit=None) -> list[DataFix]
    fix_summary(fix) -> dict
    load_policy(session) / save_policy(session, actor=, policy=)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from audit.auditlog import service as auditlog
from audit.base import utcnow
from audit.errors import ConflictError, NotFoundError, ValidationError
from audit.fixes import repository as repo
from audit.fixes.models import DataFix
from audit.fixes.policy import POLICY_NAME, FixesPolicy
from audit.fixes.proposals import (
    CarriedExample,
    DocumentIndex,
    FixDraft,
    SourceDocument,
    TextDocument,
    carry_over,
    cited_documents,
    correction_sources,
    outdated_citations,
    rebalance_weights,
    similar_pairs,
    stable_order,
    target_shares,
    under_covered_topics,
)
from audit.knowledge import datasets
from audit.knowledge.hashing import example_content_hash, normalise_text, question_hash
from audit.knowledge.models import Document, Example, RetrievalEvalPair
from audit.org.models import User
from audit.permissions import can, require
from audit.policy import service as policy_service
from audit.review.models import CONTENT_ROOT_CAUSES
from audit.triggers import service as triggers_service

# Applied in this order within a batch: a document is marked outdated and stale examples leave
# before the corrections arrive.
APPLY_ORDER = ("supersede_document", "quarantine_example", "add_example", "retrieval_pair", "rebalance")
# Kinds that change what a dataset version holds (a retrieval pair changes the retrieval evaluation set).
DATASET_KINDS = frozenset({"supersede_document", "quarantine_example", "add_example", "rebalance"})
AUTO_NOTE = "auto-applied by the fixes policy"
DUPLICATE = "duplicate:"


@dataclass(frozen=True)
class ProposalReport:
    reviews: int
    proposed: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (fix id, reason)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reviews": self.reviews,
            "proposed": self.proposed,
            "refused": [{"fix": i, "reason": r} for i, r in self.refused],
        }


@dataclass(frozen=True)
class ApplyReport:
    applied: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (fix id, reason)
    dataset_version: int | None = None  # number of the version the applied fixes produced
    version_created: bool = False
    # the retraining triggers, evaluated once fixes were applied (None when not evaluated)
    triggers: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "refused": [{"fix": i, "reason": r} for i, r in self.refused],
            "dataset_version": self.dataset_version,
            "version_created": self.version_created,
            "triggers": self.triggers,
        }


def load_policy(session: Session) -> FixesPolicy:
    policy = policy_service.load(session, POLICY_NAME, FixesPolicy)
    policy.validate()
    return policy


def save_policy(session: Session, *, actor: User | None, policy: FixesPolicy) -> None:
    policy_service.save(session, actor=actor, name=POLICY_NAME, settings=policy)


# --------------------------------------------------------------------------- proposing


class _ProposalContext:
    """Data loaded once per proposal run and shared by every review in it."""

    def __init__(self, session: Session, policy: FixesPolicy) -> None:
        self.session = session
        self.policy = policy
        self.department_names = repo.department_names(session)
        self.documents = DocumentIndex()
        self._active: list[repo.ActiveExample] | None = None
        self._example_counts: dict[str, int] | None = None
        # examples and documents some fix (waiting, or drafted in this run) already acts on:
        # two reviews pointing at the same stale example propose one quarantine, not two
        self.quarantined: set[int] = set(repo.pending_payload_values(session, "quarantine_example", "example_id"))
        self.superseded: set[int] = set(repo.pending_payload_values(session, "supersede_document", "document_id"))

    def load_documents(self, reviews: Sequence[repo.ConfirmedReview]) -> None:
        references = [s.get("document_id") for r in reviews for s in r.sources]
        by_external = repo.documents_by_external_id(self.session, [str(x) for x in references if x is not None])
        ids = {x for x in references if isinstance(x, int) and not isinstance(x, bool)}
        ids |= {r.correct_document_id for r in reviews if r.correct_document_id is not None}
        docs: dict[int, Document] = {d.id: d for d in by_external.values()}
        docs.update(repo.documents_by_id(self.session, ids - set(docs)))
        latest = repo.latest_in_families(self.session, {d.family for d in docs.values()})
        # successors the answers did not cite must be resolvable too
        docs.update({d.id: d for d in latest.values()})
        linked = {d.superseded_by_id for d in docs.values() if d.superseded_by_id is not None} - set(docs)
        docs.update(repo.documents_by_id(self.session, linked))
        for doc in docs.values():
            self.documents.add(_source_document(doc))
        self.documents.latest_by_family = {f: _source_document(d) for f, d in latest.items()}

    @property
    def example_counts(self) -> dict[str, int]:
        if self._example_counts is None:
            self._example_counts = repo.active_example_counts_by_department(self.session)
        return self._example_counts

    @property
    def active_examples(self) -> list[repo.ActiveExample]:
        if self._active is None:
            self._active = repo.active_examples(self.session)
        return self._active


def _source_document(doc: Document) -> SourceDocument:
    return SourceDocument(doc.id, doc.external_id, doc.family, doc.version, doc.department_id, doc.superseded_by_id)


def propose_fixes(session: Session, *, actor: User | None = None) -> ProposalReport:
    """Propose the fixes of every confirmed review that has none yet (see the module docstring)."""
    require(actor, "approve_fixes")
    reviews = repo.confirmed_reviews_without_fixes(session)
    if not reviews:
        return ProposalReport(reviews=0)
    ctx = _ProposalContext(session, load_policy(session))
    ctx.load_documents(reviews)
    drafts: list[FixDraft] = []
    waiting_rebalance = repo.first_proposed(session, "rebalance")
    rebalance_holder = f"fix {waiting_rebalance}" if waiting_rebalance is not None else None
    for review in reviews:
        if review.root_cause in CONTENT_ROOT_CAUSES:
            drafts.extend(_content_drafts(ctx, review))
        elif review.root_cause == "retrieval_error":
            drafts.append(_retrieval_draft(ctx, review))
        elif review.root_cause == "department_bias":
            draft = _rebalance_draft(ctx, review, rebalance_holder)
            if draft.refusal is None:
                rebalance_holder = f"the proposal from review {review.review_item_id}"
            drafts.append(draft)
        if review.root_cause in RETRIEVAL_TEACHING_CAUSES and review.correct_document_id is not None:
            # the document retrieval should have put first, for the reranker (and retrieval evaluation)
            drafts.append(_retrieval_draft(ctx, review))
    corrections = [d for d in drafts if d.kind == "add_example" and d.refusal is None]
    pending = repo.pending_payload_values(session, "add_example", "content_hash")
    refusals = _guard_corrections(
        session,
        [
            (
                d.payload["question"],
                d.payload["answer"],
                d.payload["content_hash"],
                f"the correction from review {d.review_item_id}",
            )
            for d in corrections
        ],
        ctx.policy,
        pending,
    )
    for draft, refusal in zip(corrections, refusals, strict=True):
        draft.refusal = refusal
    drafts.extend(_carried_drafts(ctx, [d for d in corrections if d.refusal is None], pending))
    # a correction refused as a duplicate still shows which examples contradict it
    still_valid = [d for d in corrections if d.refusal is None or d.refusal.startswith(DUPLICATE)]
    drafts.extend(_conflict_quarantines(ctx, still_valid))
    stored = _store_drafts(session, actor, drafts)
    return ProposalReport(
        reviews=len(reviews),
        proposed=[f.id for f in stored if f.status == "proposed"],
        refused=[(f.id, f.decision_note or "") for f in stored if f.status == "rejected"],
    )


def _content_drafts(ctx: _ProposalContext, review: repo.ConfirmedReview) -> list[FixDraft]:
    """wrong_training_data / hallucination / outdated_source: the SME's correction as a new example;
    for an outdated source also the supersession and the examples citing the outdated version."""
    cited = cited_documents(review.sources, ctx.documents)
    drafts: list[FixDraft] = []
    note = ""
    if review.root_cause == "outdated_source":
        pairs = outdated_citations(cited, ctx.documents, review.correct_document_id)
        if not pairs:
            note = "; no newer version of the cited documents is known, so none was marked superseded"
        for old, new in pairs:
            if old.superseded_by_id is None and old.id not in ctx.superseded:
                ctx.superseded.add(old.id)
                drafts.append(
                    FixDraft(
                        kind="supersede_document",
                        review_item_id=review.review_item_id,
                        payload={
                            "document_id": old.id,
                            "document": old.external_id,
                            "superseded_by_id": new.id,
                            "superseded_by": new.external_id,
                        },
                        reason=f"review {review.review_item_id}: the answer cited {old.external_id}, "
                        f"outdated by {new.external_id}",
                    )
                )
            drafts.extend(_outdated_quarantines(ctx, review, old, new))
    correction = (review.corrected_answer or "").strip()
    sources = correction_sources(cited, ctx.documents, review.correct_document_id)
    department = ctx.department_names.get(review.asker_department_id, str(review.asker_department_id))
    drafts.insert(
        0,
        FixDraft(
            kind="add_example",
            review_item_id=review.review_item_id,
            payload={
                "question": review.question,
                "answer": correction,
                "department_id": review.asker_department_id,
                "department": department,
                "source_document_ids": sources,
                "origin": "correction",
                "origin_review_id": review.review_item_id,
                "content_hash": example_content_hash(review.question, correction),
            },
            reason=f"review {review.review_item_id} confirmed ({review.root_cause}): add the SME's correction{note}",
            refusal=None if correction else "the SME wrote no corrected answer",
        ),
    )
    return drafts


def _outdated_quarantines(
    ctx: _ProposalContext, review: repo.ConfirmedReview, old: SourceDocument, new: SourceDocument
) -> list[FixDraft]:
    stale = [
        ex for ex in ctx.active_examples if old.external_id in ex.source_document_ids and ex.id not in ctx.quarantined
    ]
    ctx.quarantined.update(ex.id for ex in stale)
    return [
        FixDraft(
            kind="quarantine_example",
            review_item_id=review.review_item_id,
            payload={"example_id": ex.id, "question": ex.question, "cites": old.external_id},
            reason=f"example {ex.id} cites {old.external_id}, outdated by {new.external_id}",
        )
        for ex in stale
    ]


# Root causes besides retrieval_error whose SME-named correct document is also a retrieval lesson:
# the answer rested on a superseded or another department's document instead of that one.
RETRIEVAL_TEACHING_CAUSES = ("outdated_source", "department_bias")


def _retrieval_draft(ctx: _ProposalContext, review: repo.ConfirmedReview) -> FixDraft:
    """The question and the document retrieval should have found (retrieval_error, or an outdated or
    another department's source with the SME's correct document), with the cited documents that were
    ranked instead: a pair the reranker trains on (``training/reranking.py``)."""
    doc = ctx.documents.by_id.get(review.correct_document_id) if review.correct_document_id is not None else None
    qhash = question_hash(review.question)
    payload: dict[str, Any] = {"question": review.question, "question_hash": qhash}
    refusal = None
    if doc is None:
        refusal = "the SME named no correct document for the retrieval error"
    else:
        cited = [d.id for d in cited_documents(review.sources, ctx.documents)]
        above = cited[: cited.index(doc.id)] if doc.id in cited else cited
        ranked_above = [ctx.documents.by_id[i].external_id for i in above]
        payload.update(
            {
                "document_id": doc.id,
                "document": doc.external_id,
                "department_id": review.asker_department_id,
                "ranked_above": ranked_above,
            }
        )
        if repo.retrieval_pair_exists(ctx.session, qhash, doc.id):
            refusal = f"already in the retrieval evaluation set ({doc.external_id})"
    return FixDraft(
        kind="retrieval_pair",
        review_item_id=review.review_item_id,
        payload=payload,
        reason=f"review {review.review_item_id} confirmed ({review.root_cause}): question -> "
        f"{doc.external_id if doc else 'unknown document'}",
        refusal=refusal,
    )


def _rebalance_draft(ctx: _ProposalContext, review: repo.ConfirmedReview, holder: str | None) -> FixDraft:
    """department_bias: up-sampling weights toward the target department mix, and the topics of the
    departments concerned that too few examples cover."""
    session = ctx.session
    counts = ctx.example_counts
    shares = target_shares(sorted(counts), ctx.policy.rebalance_target)
    weights = rebalance_weights(counts, shares)
    concerned = {review.department_id} | repo.disfavoured_departments(session, review.answer_id)
    family_of = {
        external_id: family for external_id, family in session.execute(select(Document.external_id, Document.family))
    }
    per_family = Counter(
        family
        for ex in ctx.active_examples
        for family in {family_of[s] for s in ex.source_document_ids if s in family_of}
    )
    # one topic per family, named by its highest current version
    newest = {d.family: d for d in repo.current_documents_of(session, concerned)}
    families = [
        (ctx.department_names.get(d.department_id, str(d.department_id)), d.family, d.title) for d in newest.values()
    ]
    topics = under_covered_topics(families, per_family, ctx.policy.min_examples_per_topic)
    payload = {
        "target": shares,
        "counts": counts,
        "total": sum(counts.values()),
        "weights": weights,
        "departments": sorted(ctx.department_names.get(d, str(d)) for d in concerned),
        "under_covered_topics": topics,
    }
    refusal = None
    if holder is not None:
        refusal = f"a rebalance proposal already waits for a lead: {holder}"
    elif all(w == 1 for w in weights.values()) and not topics:
        refusal = "nothing to rebalance: every department meets its target share and no topic is under-covered"
    up = {d: w for d, w in weights.items() if w > 1}
    return FixDraft(
        kind="rebalance",
        review_item_id=review.review_item_id,
        payload=payload,
        reason=f"review {review.review_item_id} confirmed (department_bias): up-sample {up or 'no department'}, "
        f"{len(topics)} under-covered topic(s) for SMEs",
        refusal=refusal,
    )


def _guard_corrections(
    session: Session, corrections: Sequence[tuple[str, str, str, str]], policy: FixesPolicy, pending: dict[Any, int]
) -> list[str | None]:
    """For each correction (question, answer, content hash, how to name it), why it must not become
    an example — it would leak a gold question or a held-out gold item's reference answer, or
    duplicate a stored example, a proposed fix (``pending``) or an earlier correction in the same
    list — or None.

    Answers are checked against the held-out gold items (those not drawn from traffic): an auditor
    calibration item's reference is a real answer that training data may well hold, and such an item
    is left out of the gate instead (``training.recipes.evaluate.clean_gate_items``)."""
    if not corrections:
        return []
    gold = repo.gold_questions(session)
    by_hash = {h: gid for gid, _, h in gold}
    by_text = {normalise_text(q): gid for gid, q, _ in gold}
    by_answer = {normalise_text(a): gid for gid, a in repo.held_out_gold_answers(session)}
    near = similar_pairs([q for q, _, _, _ in corrections], [q for _, q, _ in gold], policy.gold_similarity)
    stored: dict[str, int] = {}
    for part in repo.chunks([h for _, _, h, _ in corrections]):
        query = select(Example.content_hash, Example.id).where(Example.content_hash.in_(part))
        stored.update((content, example_id) for content, example_id in session.execute(query))
    seen: dict[str, str] = {}
    refusals: list[str | None] = []
    for (question, answer, content, label), matches in zip(corrections, near, strict=True):
        gold_id = by_hash.get(question_hash(question)) or by_text.get(normalise_text(question))
        answer_gold_id = by_answer.get(normalise_text(answer))
        refusal = None
        if gold_id is not None:
            refusal = f"would leak the evaluation set: matches gold item {gold_id}"
        elif answer_gold_id is not None:
            refusal = f"would leak the evaluation set: the answer is gold item {answer_gold_id}'s reference answer"
        elif matches:
            index, score = matches[0]
            refusal = f"would leak the evaluation set: matches gold item {gold[index][0]} (similarity {score:.2f})"
        elif content in stored:
            refusal = f"{DUPLICATE} example {stored[content]} has the same question and answer"
        elif content in pending:
            refusal = f"{DUPLICATE} proposed fix {pending[content]} adds the same question and answer"
        elif content in seen:
            refusal = f"{DUPLICATE} {seen[content]} adds the same question and answer"
        else:
            seen[content] = label
        refusals.append(refusal)
    return refusals


def _carried_drafts(ctx: _ProposalContext, corrections: Sequence[FixDraft], pending: dict[Any, int]) -> list[FixDraft]:
    """Each correction carried over to up to ``policy.carry_over`` other current documents of its
    source's department (``proposals.carry_over``). A carried example that the correction guards
    would refuse (a gold question or reference answer, a duplicate) or that asks what an active
    example already asks is dropped, not stored: it is the system's suggestion, not the SME's."""
    if ctx.policy.carry_over == 0 or not corrections:
        return []
    by_external = repo.documents_by_external_id(
        ctx.session, {str(x) for d in corrections for x in d.payload["source_document_ids"]}
    )
    current = repo.current_documents_of(ctx.session, {d.department_id for d in by_external.values()})
    texts: dict[int, list[TextDocument]] = {}
    for doc in current:
        texts.setdefault(doc.department_id, []).append(TextDocument(doc.external_id, doc.title, doc.body))
    candidates: list[tuple[FixDraft, str, list[CarriedExample]]] = []
    # a sentence an active example already states is one the model is taught; one none states it has
    # only read: those documents are carried to first
    stated = "\n".join(ex.answer for ex in ctx.active_examples)
    for draft in corrections:
        # an answer often cites several documents: the one it quotes is the one carried from
        for reference in draft.payload["source_document_ids"]:
            source = by_external.get(str(reference))
            if source is None:
                continue
            text = TextDocument(source.external_id, source.title, source.body)
            carried = carry_over(draft.payload["question"], draft.payload["answer"], text, texts[source.department_id])
            if carried:
                ordered = stable_order(f"review {draft.review_item_id}", carried)
                ordered.sort(key=lambda c: c.sentence in stated)
                candidates.append((draft, source.external_id, ordered))
                break
    flat = [(draft, source, c) for draft, source, carried in candidates for c in carried]
    if not flat:
        return []
    # the corrections themselves come first: a carried example never duplicates one
    taken = {**pending, **{d.payload["content_hash"]: d.review_item_id or 0 for d in corrections}}
    refusals = _guard_corrections(
        ctx.session,
        [(c.question, c.answer, example_content_hash(c.question, c.answer), c.document) for _, _, c in flat],
        ctx.policy,
        taken,
    )
    asked = similar_pairs(
        [c.question for _, _, c in flat], [ex.question for ex in ctx.active_examples], ctx.policy.conflict_similarity
    )
    drafts: list[FixDraft] = []
    per_correction: Counter[int | None] = Counter()
    for (draft, quoted_from, example), refusal, matches in zip(flat, refusals, asked, strict=True):
        if refusal is not None or matches or per_correction[draft.review_item_id] >= ctx.policy.carry_over:
            continue
        per_correction[draft.review_item_id] += 1
        drafts.append(
            FixDraft(
                kind="add_example",
                review_item_id=draft.review_item_id,
                payload={
                    **draft.payload,
                    "question": example.question,
                    "answer": example.answer,
                    "source_document_ids": [example.document],
                    "origin": "synthetic",
                    "carried_from": quoted_from,
                    "content_hash": example_content_hash(example.question, example.answer),
                },
                reason=f"review {draft.review_item_id}: the SME's correction carried over to {example.document} "
                f"(the same sentence there, with its own value)",
            )
        )
    return drafts


def _conflict_quarantines(ctx: _ProposalContext, corrections: Sequence[FixDraft]) -> list[FixDraft]:
    """Active examples asking (nearly) the same question as a correction but answering differently."""
    if not corrections:
        return []
    active = ctx.active_examples
    matches = similar_pairs(
        [d.payload["question"] for d in corrections], [ex.question for ex in active], ctx.policy.conflict_similarity
    )
    taken = ctx.quarantined
    extra: list[FixDraft] = []
    for draft, found in zip(corrections, matches, strict=True):
        corrected = normalise_text(draft.payload["answer"])
        for index, score in found:
            ex = active[index]
            if ex.id in taken or normalise_text(ex.answer) == corrected:
                continue
            taken.add(ex.id)
            extra.append(
                FixDraft(
                    kind="quarantine_example",
                    review_item_id=draft.review_item_id,
                    payload={"example_id": ex.id, "question": ex.question, "similarity": round(score, 4)},
                    reason=f"example {ex.id} asks the same question (similarity {score:.2f}) as the correction "
                    f"from review {draft.review_item_id} but answers differently",
                )
            )
    return extra


def _store_drafts(session: Session, actor: User | None, drafts: Sequence[FixDraft]) -> list[DataFix]:
    now = utcnow()
    rows = [
        DataFix(
            review_item_id=d.review_item_id,
            kind=d.kind,
            status="proposed" if d.refusal is None else "rejected",
            payload=d.payload,
            reason=d.reason,
            proposed_at=now,
            decided_at=None if d.refusal is None else now,
            decision_note=d.refusal,
        )
        for d in drafts
    ]
    session.add_all(rows)
    session.flush()
    for row in rows:
        auditlog.record(
            session,
            actor=actor,
            action="fix.proposed" if row.status == "proposed" else "fix.refused",
            entity_type="data_fix",
            entity_id=row.id,
            details={"kind": row.kind, "review_item_id": row.review_item_id, "reason": row.decision_note or row.reason},
        )
    return rows


# --------------------------------------------------------------------------- applying


def auto_apply(session: Session, *, evaluate_triggers: bool = True) -> ApplyReport:
    """Apply every proposed fix whose kind the policy applies without a lead (the system decides);
    then, if any was applied, evaluate the retraining triggers (the daily cycle does that itself)."""
    policy = load_policy(session)
    if not policy.auto_apply_kinds:
        return ApplyReport()
    waiting = [f for f in repo.fixes(session, status="proposed") if f.kind in policy.auto_apply_kinds]
    report = _apply(session, None, waiting, AUTO_NOTE, policy)
    return _with_triggers(session, None, report) if evaluate_triggers else report


def apply_fixes(
    session: Session,
    *,
    actor: User | None,
    fix_ids: Sequence[int],
    note: str | None = None,
    evaluate_triggers: bool = True,
) -> ApplyReport:
    """A lead applies proposed fixes (any kind). All named fixes must exist and still be proposed.
    Then the retraining triggers are evaluated (applied fixes count toward a retrain)."""
    require(actor, "approve_fixes")
    fixes = _proposed(session, fix_ids)
    report = _apply(session, actor, fixes, note or "approved", load_policy(session))
    return _with_triggers(session, actor, report) if evaluate_triggers else report


def _with_triggers(session: Session, actor: User | None, report: ApplyReport) -> ApplyReport:
    if not report.applied:
        return report
    # a lead may apply fixes without being allowed to queue training: then the system evaluates
    evaluator = actor if actor is None or can(actor, "queue_training") else None
    evaluation = triggers_service.evaluate(session, actor=evaluator)
    return dataclasses.replace(report, triggers=evaluation.as_dict())


def reject_fixes(session: Session, *, actor: User | None, fix_ids: Sequence[int], note: str) -> list[DataFix]:
    """A lead rejects proposed fixes; the reason is required and kept."""
    require(actor, "approve_fixes")
    if not note or not note.strip():
        raise ValidationError("reject: a note saying why is required")
    fixes = _proposed(session, fix_ids)
    now = utcnow()
    for fix in fixes:
        _decide(session, fix, actor, "rejected", note.strip(), now)
    session.flush()
    return fixes


def _proposed(session: Session, fix_ids: Sequence[int]) -> list[DataFix]:
    if not fix_ids:
        raise ValidationError("no fix ids given")
    fixes = repo.fixes_by_id(session, fix_ids)
    missing = sorted(set(fix_ids) - {f.id for f in fixes})
    if missing:
        raise NotFoundError(f"no such fix: {', '.join(map(str, missing))} (see `auditloop fixes list`)")
    decided = [f for f in fixes if f.status != "proposed"]
    if decided:
        f = decided[0]
        raise ConflictError(f"fix {f.id} is already {f.status} ({f.decided_at:%Y-%m-%d %H:%M} UTC)")
    return fixes


def _apply(
    session: Session, actor: User | None, fixes: Sequence[DataFix], note: str, policy: FixesPolicy
) -> ApplyReport:
    if not fixes:
        return ApplyReport()
    now = utcnow()
    ordered = sorted(fixes, key=lambda f: (APPLY_ORDER.index(f.kind), f.id))
    refused: dict[int, str] = {}

    corrections = [f for f in ordered if f.kind == "add_example"]
    # the state may have changed since proposing (new gold items, examples added by hand): check again
    refusals = _guard_corrections(
        session,
        [(f.payload["question"], f.payload["answer"], f.payload["content_hash"], f"fix {f.id}") for f in corrections],
        policy,
        pending={},
    )
    refused.update((f.id, r) for f, r in zip(corrections, refusals, strict=True) if r is not None)

    _apply_supersessions(session, [f for f in ordered if f.kind == "supersede_document"], refused)
    _apply_quarantines(session, [f for f in ordered if f.kind == "quarantine_example"])
    _apply_corrections(session, [f for f in corrections if f.id not in refused])
    _apply_retrieval_pairs(session, [f for f in ordered if f.kind == "retrieval_pair"], refused)

    applied = [f for f in ordered if f.id not in refused]
    version = None
    created = False
    if any(f.kind in DATASET_KINDS for f in applied):
        rebalances = [f for f in applied if f.kind == "rebalance"]
        in_force = rebalances[-1] if rebalances else repo.latest_applied_rebalance(session)
        department_weights = {
            str(k): int(v) for k, v in (in_force.payload.get("weights", {}) if in_force else {}).items()
        }
        version, created = datasets.create_version(
            session,
            actor=actor,
            change_log=[{"fix": f.id, "kind": f.kind, "review_item": f.review_item_id} for f in applied],
            department_weights=department_weights,
            # an SME correction counts policy.correction_weight times its department's weight
            origin_weights={"correction": policy.correction_weight},
        )
    else:
        version = datasets.current_version(session)
    for fix in ordered:
        if fix.id in refused:
            _decide(session, fix, actor, "rejected", refused[fix.id], now)
        else:
            _decide(session, fix, actor, "applied", note, now, version.id if version else None)
    session.flush()
    return ApplyReport(
        applied=[f.id for f in applied],
        refused=sorted(refused.items()),
        dataset_version=version.number if version else None,
        version_created=created,
    )


def _apply_supersessions(session: Session, fixes: Sequence[DataFix], refused: dict[int, str]) -> None:
    docs = repo.documents_by_id(
        session, [f.payload["document_id"] for f in fixes] + [f.payload["superseded_by_id"] for f in fixes]
    )
    for fix in fixes:
        old = docs.get(fix.payload["document_id"])
        new = docs.get(fix.payload["superseded_by_id"])
        if old is None or new is None:
            refused[fix.id] = "the document or its successor no longer exists"
        elif old.superseded_by_id is None:
            old.superseded_by_id = new.id
        # already superseded (by hand or an earlier fix): nothing left to do, the fix stands


def _apply_quarantines(session: Session, fixes: Sequence[DataFix]) -> None:
    ids = sorted({int(f.payload["example_id"]) for f in fixes})
    for part in repo.chunks(ids):
        session.execute(
            update(Example).where(Example.id.in_(part), Example.status == "active").values(status="quarantined")
        )


def _apply_corrections(session: Session, fixes: Sequence[DataFix]) -> None:
    if not fixes:
        return
    rows = [
        {
            "question": f.payload["question"],
            "answer": f.payload["answer"],
            "department_id": f.payload["department_id"],
            "source_document_ids": list(f.payload.get("source_document_ids") or []),
            "origin": f.payload.get("origin", "correction"),
            "origin_review_id": f.payload.get("origin_review_id", f.review_item_id),
            "status": "active",
            "content_hash": f.payload["content_hash"],
            "created_at": utcnow(),
        }
        for f in fixes
    ]
    # one multi-row INSERT per few hundred rows (SQLAlchemy "insertmanyvalues"), ids come back
    created = {h: i for i, h in session.execute(insert(Example).returning(Example.id, Example.content_hash), rows)}
    for fix in fixes:
        fix.payload = {**fix.payload, "example_id": created[fix.payload["content_hash"]]}


def _apply_retrieval_pairs(session: Session, fixes: Sequence[DataFix], refused: dict[int, str]) -> None:
    seen: set[tuple[str, int]] = set()
    for fix in fixes:
        key = (fix.payload["question_hash"], int(fix.payload["document_id"]))
        if key in seen or repo.retrieval_pair_exists(session, *key):
            refused[fix.id] = f"already in the retrieval evaluation set ({fix.payload.get('document')})"
            continue
        seen.add(key)
        session.add(
            RetrievalEvalPair(
                question=fix.payload["question"],
                question_hash=key[0],
                document_id=key[1],
                department_id=fix.payload["department_id"],
                origin_review_id=fix.review_item_id,
            )
        )


def _decide(
    session: Session,
    fix: DataFix,
    actor: User | None,
    status: str,
    note: str,
    now: dt.datetime,
    dataset_version_id: int | None = None,
) -> None:
    fix.status = status
    fix.decided_at = now
    fix.decided_by_id = actor.id if actor is not None else None
    fix.decision_note = note
    if dataset_version_id is not None:
        fix.dataset_version_id = dataset_version_id
    auditlog.record(
        session,
        actor=actor,
        action=f"fix.{status}",
        entity_type="data_fix",
        entity_id=fix.id,
        details={"kind": fix.kind, "review_item_id": fix.review_item_id, "note": note},
    )


# --------------------------------------------------------------------------- reading


def list_fixes(
    session: Session,
    *,
    actor: User | None,
    status: str | None = None,
    kind: str | None = None,
    limit: int | None = None,
) -> list[DataFix]:
    require(actor, "view_reviews")
    return repo.fixes(session, status=status, kind=kind, limit=limit)


def get_fix(session: Session, *, actor: User | None, fix_id: int) -> DataFix:
    require(actor, "view_reviews")
    fix = session.get(DataFix, fix_id)
    if fix is None:
        raise NotFoundError(f"no such fix: {fix_id}")
    return fix


def fix_summary(fix: DataFix) -> dict[str, Any]:
    """A fix as the CLI and the pages show it."""
    return {
        "id": fix.id,
        "kind": fix.kind,
        "status": fix.status,
        "review_item_id": fix.review_item_id,
        "reason": fix.reason,
        "payload": dict(fix.payload or {}),
        "proposed_at": fix.proposed_at.isoformat() if fix.proposed_at else None,
        "decided_at": fix.decided_at.isoformat() if fix.decided_at else None,
        "decided_by_id": fix.decided_by_id,
        "decision_note": fix.decision_note,
        "dataset_version_id": fix.dataset_version_id,
    }


def waiting_for_lead(session: Session, *, policy: FixesPolicy | None = None) -> list[DataFix]:
    """Proposed fixes the policy does not auto-apply: the lead's queue."""
    policy = policy or load_policy(session)
    return [f for f in repo.fixes(session, status="proposed") if f.kind not in policy.auto_apply_kinds]
