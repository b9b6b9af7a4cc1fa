"""Evaluation recipe: a model version against the champion on the held-out gold questions.

Usage::

    python -m training.recipes.evaluate --candidate v3 [--against champion|v2] \\
        [--config training/configs/lora.yaml] [evaluation.max_items=50 ...]
    auditloop model evaluate v3 [--against v2] [--json]

Each gold question is answered from its retrieved context (the serving prompt, greedy decoding);
the answer is scored against the reference with ROUGE-1/2/L, token F1 and exact match, and the
retrieval is scored by whether a reference document was among the hits. Per-department means come
from fairlearn's MetricFrame; candidate vs champion is a paired bootstrap of the mean difference.
The result is printed as JSON; nothing in the database changes.

The blocks here are shared: the LoRA recipe evaluates its fresh adapter with :func:`evaluate_model`,
and the worker evaluates the champion with :func:`evaluate_version` before the gate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.db import make_engine, make_session_factory
from audit.knowledge.models import Document
from audit.modelops.models import ModelVersion
from audit.org.models import Department
from audit.sampling.models import GoldItem
from audit.settings import Settings, load_settings
from training import gate as gate_module
from training.config import RecipeConfig, load_config
from training.evaluation import EvaluationSummary, compare, score_items, summarize
from training.prompts import fit_prompt
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


@dataclass(frozen=True)
class EvalContext:
    """The gold set with its retrieval done once: every model sees the same prompts' context.

    ``signature`` fingerprints what makes two evaluations comparable item by item (gold questions
    and references, the current documents, retrieval depth, generation settings); a stored
    evaluation with the same signature can be reused instead of generating again.
    """

    gold: tuple[GoldQuestion, ...]
    hits: tuple[tuple[Hit, ...], ...]
    retrieval_hit: tuple[bool, ...]
    signature: str
    max_new_tokens: int
    max_prompt_tokens: int
    batch_size: int


def load_gold(session: Session, *, max_items: int | None = None) -> list[GoldQuestion]:
    """Gold questions with reference answers, in a stable order (by question hash, so a
    ``max_items`` subset is not one department's block)."""
    rows = session.execute(
        select(
            GoldItem.id, GoldItem.question, GoldItem.reference_answer, Department.name, GoldItem.reference_document_ids
        )
        .join(Department, Department.id == GoldItem.department_id)
        .order_by(GoldItem.question_hash, GoldItem.id)
    ).all()
    gold = [GoldQuestion(str(r[0]), r[1], r[2], r[3], tuple(r[4] or ())) for r in rows if r[2] and r[2].strip()]
    return gold[:max_items] if max_items else gold


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


def prepare(session: Session, cfg: RecipeConfig) -> EvalContext:
    """Load the gold set and the current documents, retrieve once, and fingerprint the setup."""
    gold = load_gold(session, max_items=cfg.evaluation.max_items)
    documents = current_documents(session)
    retriever = Retriever.from_documents(documents)
    k = cfg.dataset.retrieval_k
    hits = retriever.search_many([g.question for g in gold], k) if k > 0 else [[] for _ in gold]
    current = current_external_ids(session)
    retrieval_hit = tuple(
        bool({current.get(r, r) for r in g.reference_document_ids} & {h.document_id for h in found})
        for g, found in zip(gold, hits, strict=True)
    )
    fingerprint = hashlib.sha256()
    for g in gold:
        fingerprint.update(json.dumps([g.item_id, g.question, g.reference_answer, g.department]).encode())
    doc_hashes = session.execute(
        select(Document.external_id, Document.content_hash)
        .where(Document.superseded_by_id.is_(None))
        .order_by(Document.external_id)
    ).all()
    fingerprint.update(json.dumps([list(r) for r in doc_hashes]).encode())
    fingerprint.update(
        json.dumps([k, cfg.dataset.max_prompt_tokens, cfg.evaluation.max_new_tokens, "greedy", "v1"]).encode()
    )
    return EvalContext(
        gold=tuple(gold),
        hits=tuple(tuple(h) for h in hits),
        retrieval_hit=retrieval_hit,
        signature=fingerprint.hexdigest(),
        max_new_tokens=cfg.evaluation.max_new_tokens,
        max_prompt_tokens=cfg.dataset.max_prompt_tokens,
        batch_size=cfg.evaluation.batch_size,
    )


def evaluate_model(model: Any, tokenizer: Any, context: EvalContext, *, device: str) -> EvaluationSummary:
    """Answer every gold question with ``model`` (greedy) and score the answers."""
    from training.generation.transformers_backend import TransformersBackend

    if not context.gold:
        raise ValueError("there are no gold questions with reference answers to evaluate on")
    prompts = [
        fit_prompt(tokenizer, g.question, list(found), max_prompt_tokens=context.max_prompt_tokens)
        for g, found in zip(context.gold, context.hits, strict=True)
    ]
    backend = TransformersBackend(model, tokenizer, device)
    generations = backend.generate(prompts, max_new_tokens=context.max_new_tokens, batch_size=context.batch_size)
    items = score_items(
        item_ids=[g.item_id for g in context.gold],
        departments=[g.department for g in context.gold],
        predictions=[gen.text for gen in generations],
        references=[g.reference_answer for g in context.gold],
        retrieval_hits=context.retrieval_hit,
    )
    return summarize(items, signature=context.signature)


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
    log(f"evaluation: answering {len(context.gold)} gold questions with {version.name} on {device}")
    model, tokenizer = load_model_dir(model_dir, device=device, adapter_dir=adapter)
    return evaluate_model(model, tokenizer, context, device=device)


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
            context = prepare(session, cfg)
            version = gate_module.version_by_name(session, candidate)
            reference = gate_module.version_by_name(session, against) if against else gate_module.champion(session)
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
            "candidate_metrics": candidate_summary.metrics,
            "candidate_by_department": candidate_summary.by_department,
        }
        if reference_summary is not None:
            comparison = compare(
                candidate_summary,
                reference_summary,
                metrics=("rougeL", "f1"),
                resamples=cfg.evaluation.bootstrap_resamples,
                confidence=cfg.evaluation.confidence,
                seed=cfg.seed,
            )
            decision = gate_module.decide(
                candidate=candidate_summary,
                champion=reference_summary,
                comparison=comparison,
                metric=cfg.gate.metric,
                delta=cfg.gate.delta,
                gap_tolerance=cfg.gate.gap_tolerance,
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
