"""Evaluation recipe: a model version against the champion on the held-out gold questions.

Usage::

    python -m training.recipes.evaluate --candidate v3 [--against champion|v2] \\
        [--config training/configs/lora.yaml] [evaluation.max_items=50 ...]
    auditloop model evaluate v3 [--against v2] [--json]

Each clean gate item (a gold question whose question and reference answer leaked into no training
data of the versions compared) is answered from its retrieved context (the serving prompt, greedy
decoding) and judged by the yardstick of ``training/evaluation.py``: fact accuracy, citation
accuracy, outdated citations, retrieval@1/@k, then ROUGE and token F1. Per-department means come
from fairlearn's MetricFrame with bootstrap intervals; candidate vs champion is a paired bootstrap
per metric, per department and for the department gap. The result is printed as JSON; nothing in
the database changes.

The blocks here are shared: the LoRA recipe evaluates its fresh adapter with :func:`evaluate_model`,
and the worker evaluates the champion with :func:`evaluate_version` before the gate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.answers.models import Answer
from audit.db import make_engine, make_session_factory
from audit.fixes.models import DataFix
from audit.knowledge import datasets
from audit.knowledge.hashing import normalise_text
from audit.knowledge.models import Document
from audit.modelops.models import ModelVersion
from audit.org.models import Department
from audit.review.models import ReviewDecision, ReviewItem
from audit.sampling.models import GoldItem
from audit.settings import Settings, load_settings
from training import gate as gate_module
from training.choices import COPY_BIAS
from training.config import RecipeConfig, load_config
from training.evaluation import EvaluationSummary, GoldTruth, score_items, summarize
from training.prompts import fit_prompt
from training.reranking import Reranker, load_reranker, rerank_hits
from training.retrieval import Hit, Retriever, current_documents

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class GoldQuestion:
    item_id: str
    question: str
    reference_answer: str
    department: str
    reference_document_ids: tuple[str, ...]
    key_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalContext:
    """The gate's item set with its first-stage retrieval done once.

    ``gold`` holds the clean gate items only: gold items whose normalised question and reference
    answer appear in no training example, SME correction or applied fix of the dataset versions
    being trained (``excluded_as_leaked`` counts the others; ``excluded_incomplete`` those without key
    values or a gold document, which the fact checks need). ``signature`` fingerprints what makes
    two evaluations comparable item by item (the items, their references and key values, the
    current documents, retrieval depth, generation settings); a stored evaluation with the same
    signature can be reused instead of generating again.
    """

    gold: tuple[GoldQuestion, ...]
    hits: tuple[tuple[Hit, ...], ...]
    truths: tuple[GoldTruth, ...]
    signature: str
    max_new_tokens: int
    max_prompt_tokens: int
    batch_size: int
    excluded_as_leaked: int = 0
    excluded_incomplete: int = 0
    bootstrap_resamples: int = 2000
    confidence: float = 0.95
    seed: int = 0

    candidates: tuple[tuple[Hit, ...], ...] = ()  # the first stage's deeper lists, for a reranker

    def retrieved(self) -> list[list[str]]:
        """The document ids the first-stage retriever put into each item's prompt, best first."""
        return [[h.document_id for h in found] for found in self.hits]

    def hits_for(self, reranker: Reranker | None) -> list[list[Hit]]:
        """Each item's prompt context as a system with ``reranker`` retrieves it (the first stage's
        hits without one)."""
        if reranker is None or not self.candidates:
            return [list(found) for found in self.hits]
        k = max((len(found) for found in self.hits), default=0)
        return [
            rerank_hits(reranker, g.question, found, k) for g, found in zip(self.gold, self.candidates, strict=True)
        ]


def load_gold(session: Session, *, max_items: int | None = None) -> list[GoldQuestion]:
    """Gold questions with reference answers, in a stable order (by question hash, so a
    ``max_items`` subset is not one department's block)."""
    rows = session.execute(
        select(
            GoldItem.id,
            GoldItem.question,
            GoldItem.reference_answer,
            Department.name,
            GoldItem.reference_document_ids,
            GoldItem.key_values,
        )
        .join(Department, Department.id == GoldItem.department_id)
        .order_by(GoldItem.question_hash, GoldItem.id)
    ).all()
    gold = [
        GoldQuestion(str(r[0]), r[1], r[2], r[3], tuple(r[4] or ()), tuple(r[5] or ()))
        for r in rows
        if r[2] and r[2].strip()
    ]
    return gold[:max_items] if max_items else gold


def training_texts(session: Session, dataset_version_ids: Sequence[int]) -> set[str]:
    """Every normalised question and answer a model trained on these dataset versions may have
    seen: their examples, every SME correction (with the reviewed answer's question) and every
    applied fix's question and answer."""
    texts: set[str] = set()
    for version_id in dataset_version_ids:
        for record in datasets.examples_for_version(session, version_id):
            texts.update((normalise_text(record.question), normalise_text(record.answer)))
    corrections = session.execute(
        select(Answer.question, ReviewDecision.corrected_answer)
        .join(ReviewItem, ReviewItem.id == ReviewDecision.review_item_id)
        .join(Answer, Answer.id == ReviewItem.answer_id)
        .where(ReviewDecision.corrected_answer.is_not(None))
    ).all()
    for question, corrected in corrections:
        texts.update((normalise_text(question), normalise_text(corrected or "")))
    for payload in session.scalars(select(DataFix.payload).where(DataFix.status == "applied")):
        for key in ("question", "answer"):
            if isinstance(payload.get(key), str):
                texts.add(normalise_text(payload[key]))
    texts.discard("")
    return texts


def clean_gate_items(gold: Sequence[GoldQuestion], seen: Collection[str]) -> tuple[list[GoldQuestion], int, int]:
    """(the items fit for the gate, how many leaked, how many lack key values or a gold document).
    An item leaks when its normalised question or reference answer is in ``seen``."""
    clean, leaked, incomplete = [], 0, 0
    for g in gold:
        if not g.key_values or not g.reference_document_ids:
            incomplete += 1
        elif normalise_text(g.question) in seen or normalise_text(g.reference_answer) in seen:
            leaked += 1
        else:
            clean.append(g)
    return clean, leaked, incomplete


def current_external_ids(session: Session) -> dict[str, str]:
    """Document external id → external id of its current version (an outdated reference counts as
    found when retrieval returns the version that replaced it)."""
    rows = session.execute(select(Document.id, Document.external_id, Document.superseded_by_id)).all()
    by_id = {r[0]: (r[1], r[2]) for r in rows}
    mapping: dict[str, str] = {}
    for doc_id, (external_id, _) in by_id.items():
        seen: set[int] = set()
        current = doc_id
        while by_id[current][1] is not None and current not in seen:
            seen.add(current)
            current = by_id[current][1]  # type: ignore[assignment]
        mapping[external_id] = by_id[current][0]
    return mapping


def prepare(session: Session, cfg: RecipeConfig, *, trained_on: Sequence[int] = ()) -> EvalContext:
    """The clean gate items for models trained on the dataset versions ``trained_on``, the current
    documents, the first-stage retrieval done once, and the setup's fingerprint."""
    everything = load_gold(session)
    gold, leaked, incomplete = clean_gate_items(everything, training_texts(session, trained_on))
    if cfg.evaluation.max_items:
        gold = gold[: cfg.evaluation.max_items]
    documents = current_documents(session)
    retriever = Retriever.from_documents(documents)
    k = cfg.dataset.retrieval_k
    depth = max(k, cfg.dataset.rerank_candidates) if k > 0 else 0
    candidates = retriever.search_many([g.question for g in gold], depth) if depth > 0 else [[] for _ in gold]
    hits = [found[:k] for found in candidates]
    current = current_external_ids(session)
    superseded = frozenset(session.scalars(select(Document.external_id).where(Document.superseded_by_id.is_not(None))))
    truths = tuple(
        GoldTruth(
            key_values=g.key_values,
            gold_document_ids=frozenset(current.get(r, r) for r in g.reference_document_ids),
            superseded_ids=superseded,
        )
        for g in gold
    )
    fingerprint = hashlib.sha256()
    for g in gold:
        fingerprint.update(
            json.dumps([g.item_id, g.question, g.reference_answer, g.department, list(g.key_values)]).encode()
        )
    doc_hashes = session.execute(
        select(Document.external_id, Document.content_hash)
        .where(Document.superseded_by_id.is_(None))
        .order_by(Document.external_id)
    ).all()
    fingerprint.update(json.dumps([list(r) for r in doc_hashes]).encode())
    fingerprint.update(
        json.dumps(
            [k, depth, cfg.dataset.max_prompt_tokens, cfg.evaluation.max_new_tokens, "greedy", COPY_BIAS, "v4"]
        ).encode()
    )
    return EvalContext(
        gold=tuple(gold),
        hits=tuple(tuple(h) for h in hits),
        candidates=tuple(tuple(c) for c in candidates),
        truths=truths,
        signature=fingerprint.hexdigest(),
        max_new_tokens=cfg.evaluation.max_new_tokens,
        max_prompt_tokens=cfg.dataset.max_prompt_tokens,
        batch_size=cfg.evaluation.batch_size,
        excluded_as_leaked=leaked,
        excluded_incomplete=incomplete,
        bootstrap_resamples=cfg.evaluation.bootstrap_resamples,
        confidence=cfg.evaluation.confidence,
        seed=cfg.seed,
    )


def summarize_predictions(
    context: EvalContext, predictions: Sequence[str], *, retrieved: Sequence[Sequence[str]] | None = None
) -> EvaluationSummary:
    """Judge one system's answers to the context's items (``retrieved``: its own retrieval, by
    default the context's first stage) and summarise them with intervals."""
    items = score_items(
        item_ids=[g.item_id for g in context.gold],
        departments=[g.department for g in context.gold],
        predictions=list(predictions),
        references=[g.reference_answer for g in context.gold],
        truths=context.truths,
        retrieved=retrieved if retrieved is not None else context.retrieved(),
    )
    return summarize(
        items,
        signature=context.signature,
        resamples=context.bootstrap_resamples,
        confidence=context.confidence,
        seed=context.seed,
    )


def evaluate_model(
    model: Any, tokenizer: Any, context: EvalContext, *, device: str, reranker: Reranker | None = None
) -> EvaluationSummary:
    """Answer every gate item with ``model`` (greedy, from the context its retriever — the first stage,
    reranked by ``reranker`` when given — puts in the prompt) and judge the answers."""
    from training.generation.transformers_backend import TransformersBackend

    if not context.gold:
        raise ValueError(
            "there are no clean gold questions to evaluate on "
            f"({context.excluded_as_leaked} left out as leaked into training data, "
            f"{context.excluded_incomplete} without key values or a gold document)"
        )
    hits = context.hits_for(reranker)
    prompts = [
        fit_prompt(tokenizer, g.question, found, max_prompt_tokens=context.max_prompt_tokens)
        for g, found in zip(context.gold, hits, strict=True)
    ]
    backend = TransformersBackend(model, tokenizer, device, copy_bias=COPY_BIAS)  # as `auditloop answer` decodes
    generations = backend.generate(prompts, max_new_tokens=context.max_new_tokens, batch_size=context.batch_size)
    return summarize_predictions(
        context, [gen.text for gen in generations], retrieved=[[h.document_id for h in found] for found in hits]
    )


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from audit.errors import ValidationError

        raise ValidationError("device: cuda was asked for but no CUDA device is available (use device=auto)")
    return device


def evaluate_version(
    settings: Settings,
    version: ModelVersion,
    context: EvalContext,
    *,
    device: str,
    base_model: str | None = None,
    reuse_stored: bool = True,
    log: Log = _stderr,
) -> EvaluationSummary:
    """Evaluate a stored model version (its base model plus its adapter, if any). A stored
    evaluation with the same signature is reused: the items and settings are the same, and greedy
    decoding is deterministic."""
    stored = version.evaluation or {}
    if reuse_stored and stored.get("signature") == context.signature and stored.get("items"):
        log(f"evaluation: reusing the stored evaluation of {version.name} (same gold set and settings)")
        return EvaluationSummary.from_dict(stored)
    from training.models import load_model_dir, resolve_model_dir

    spec = base_model or version.base_model or settings.base_model
    model_dir = resolve_model_dir(spec, settings.data_dir, progress=log)
    adapter = Path(version.adapter_uri) if version.adapter_uri else None
    reranker = load_reranker(adapter)
    log(
        f"evaluation: answering {len(context.gold)} gold questions with {version.name} on {device}"
        + (" (its reranker over the first stage)" if reranker else "")
    )
    model, tokenizer = load_model_dir(model_dir, device=device, adapter_dir=adapter)
    return evaluate_model(model, tokenizer, context, device=device, reranker=reranker)


# --------------------------------------------------------------------------- the recipe


def main(
    cfg: RecipeConfig,
    *,
    candidate: str,
    against: str | None = None,
    settings: Settings | None = None,
    engine: Engine | None = None,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Evaluate ``candidate`` (and ``against``, default the champion); return the report as a dict."""
    import torch

    settings = settings or load_settings()
    own_engine = engine is None
    engine = engine or make_engine(settings.database_url)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.device)
    try:
        # ----------------------------------------------------------------- load data
        with make_session_factory(engine)() as session:
            version = gate_module.version_by_name(session, candidate)
            reference = gate_module.version_by_name(session, against) if against else gate_module.champion(session)
            trained_on = [v.dataset_version_id for v in (version, reference) if v and v.dataset_version_id]
            context = prepare(session, cfg, trained_on=trained_on)
            session.expunge_all()
        log(f"evaluation: {len(context.gold)} gold questions, signature {context.signature[:12]}")

        # ----------------------------------------------------------------- evaluate
        candidate_summary = evaluate_version(settings, version, context, device=device, log=log)
        reference_summary = None
        if reference is not None and reference.id != version.id:
            reference_summary = evaluate_version(settings, reference, context, device=device, log=log)

        # ----------------------------------------------------------------- compare
        report: dict[str, Any] = {
            "candidate": version.name,
            "against": reference.name if reference_summary is not None and reference else None,
            "gold_items": len(context.gold),
            "gold_items_excluded_as_leaked": context.excluded_as_leaked,
            "gold_items_excluded_incomplete": context.excluded_incomplete,
            "candidate_intervals": candidate_summary.intervals,
            "candidate_metrics": candidate_summary.metrics,
            "candidate_by_department": candidate_summary.by_department,
        }
        if reference_summary is not None:
            comparison = gate_module.compare_for_gate(candidate_summary, reference_summary, cfg)
            decision = gate_module.decide(
                candidate=candidate_summary,
                champion=reference_summary,
                comparison=comparison,
                margins=gate_module.margins_from(cfg),
            )
            report |= {
                "against_metrics": reference_summary.metrics,
                "against_by_department": reference_summary.by_department,
                "comparison": comparison.to_dict(),
                "gate_preview": decision.to_dict(),
            }
        return report
    finally:
        if own_engine:
            engine.dispose()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--candidate", required=True, help="model version name to evaluate")
    parser.add_argument("--against", help="model version to compare with (default: the champion)")
    parser.add_argument("--config", default=None, help="recipe YAML (default: training/configs/lora.yaml)")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    recipe_config = load_config(args.config, args.overrides)
    print(json.dumps(main(recipe_config, candidate=args.candidate, against=args.against), indent=2))
