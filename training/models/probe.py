"""How well a built-in tiny base model answers its company's gold questions, before any fine-tuning.

Builds (or reuses) the tiny model for a seed and a build config, answers the seed's gold questions
through the same path as ``auditloop answer`` (TF-IDF top 3 → prompt → greedy generation), and judges
every answer with the yardstick of ``training.evaluation`` (fact accuracy, wrong value, citation
accuracy, ROUGE-L), per department with 95% bootstrap intervals, beside the best-sentence baseline
(the top document's best-matching sentence plus its citation; no model). No database is involved,
so a change to the pretraining corpus or the build can be measured in one command::

    python -m training.models.probe --seed 7                                   # the default build
    python -m training.models.probe --seed 7 --question-drills 2 --steps 480   # a variant

Builds are cached under ``--cache`` by their fingerprint (config, seed, corpus), as the app caches them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROBE_METRICS = ("fact_accuracy", "wrong_value", "citation_accuracy", "rougeL")


def probe(
    seed: int, config: Any, cache: Path, *, k: int = 3, progress: Any = None, copy_bias: float | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{department | "all": {"model" | "best_sentence": {metric: {estimate, ci_low, ci_high}, "n": n}}}``."""
    from audit.demo.corpus import build_corpus
    from training.assistant import answer_prompts
    from training.baselines import baseline_answer
    from training.evaluation import GoldTruth, bootstrap_interval, judge_answer
    from training.generation.transformers_backend import TransformersBackend
    from training.models import ensure_tiny_model, load_model_dir
    from training.retrieval import Retriever

    model_dir = ensure_tiny_model(cache, seed=seed, config=config, progress=progress)
    model, tokenizer = load_model_dir(model_dir, device="cpu")
    from training.choices import COPY_BIAS

    backend = TransformersBackend(model, tokenizer, "cpu", copy_bias=COPY_BIAS if copy_bias is None else copy_bias)
    corpus = build_corpus(seed)
    retriever = Retriever.from_documents(corpus.documents)
    superseded = frozenset(d.external_id for d in corpus.documents if d.superseded_by is not None)
    questions = [g.question for g in corpus.gold]
    prompts, hits = answer_prompts(backend, retriever, questions, k=k)
    generations = backend.generate(prompts, max_new_tokens=64)
    judged: dict[str, dict[str, list[dict[str, float]]]] = {}
    for gold, context, generation in zip(corpus.gold, hits, generations, strict=True):
        truth = GoldTruth(tuple(gold.key_values), frozenset(gold.reference_document_ids), superseded)
        retrieved = [h.document_id for h in context]
        best = baseline_answer("best_sentence", gold.question, context)
        for department in (gold.department, "all"):
            systems = judged.setdefault(department, {"model": [], "best_sentence": []})
            systems["model"].append(judge_answer(generation.text, gold.reference_answer, truth, retrieved))
            systems["best_sentence"].append(judge_answer(best, gold.reference_answer, truth, retrieved))
    return {
        department: {
            system: {
                "n": len(rows),
                **{m: bootstrap_interval([r[m] for r in rows], seed=seed).to_dict() for m in PROBE_METRICS},
            }
            for system, rows in systems.items()
        }
        for department, systems in sorted(judged.items(), key=lambda kv: (kv[0] == "all", kv[0]))
    }


def _table(result: dict[str, dict[str, dict[str, Any]]]) -> str:
    header = "| department | n | " + " | ".join(f"{m} model | {m} best sentence" for m in PROBE_METRICS) + " |"
    lines = [header, "|---|---:|" + "---:|" * (2 * len(PROBE_METRICS))]
    for department, systems in result.items():
        cells = []
        for metric in PROBE_METRICS:
            for system in ("model", "best_sentence"):
                v = systems[system][metric]
                cells.append(f"{v['estimate']:.3f} [{v['ci_low']:.2f}, {v['ci_high']:.2f}]")
        lines.append(f"| {department} | {systems['model']['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from training.models.tiny import TinyModelConfig

    default = TinyModelConfig()
    parser = argparse.ArgumentParser(
        prog="python -m training.models.probe",
        description="Build (or reuse) the built-in tiny model for a seed and judge its answers to the seed's "
        "gold questions (no fine-tuning, no database): fact accuracy, wrong value, citation accuracy and "
        "ROUGE-L per department with 95%% bootstrap intervals, beside the best-sentence baseline.",
    )
    parser.add_argument("--seed", type=int, default=7, help="demo company seed (default 7)")
    parser.add_argument(
        "--steps", type=int, default=default.train_steps, help=f"pretraining steps (default {default.train_steps})"
    )
    parser.add_argument(
        "--question-drills",
        type=int,
        default=default.question_drills,
        help=f"question drills per fact in the corpus (default {default.question_drills})",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(".auditloop/probe-models"),
        help="where builds are cached (default .auditloop/probe-models)",
    )
    parser.add_argument(
        "--copy-bias",
        type=float,
        default=None,
        help="push to copy from the context while following it (default: training.choices.COPY_BIAS, as served)",
    )
    parser.add_argument(
        "--passage-order",
        choices=("relevance", "document"),
        default=None,
        help="lay out each document's selected sentences most related first or in document order "
        "(default: training.prompts.PASSAGE_ORDER, as served); the base model is built with it too",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.question_drills < 0:
        parser.error("--steps must be >= 1 and --question-drills >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    import training.prompts
    from training.models.tiny import TinyModelConfig

    args = parse_args(argv)
    if args.passage_order is not None:
        # one process, one layout: the build, the prompts and the answers all read this module global
        training.prompts.PASSAGE_ORDER = args.passage_order
    config = dataclasses.replace(TinyModelConfig(), train_steps=args.steps, question_drills=args.question_drills)
    result = probe(
        args.seed,
        config,
        args.cache,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
        copy_bias=args.copy_bias,
    )
    if args.json:
        print(json.dumps({"seed": args.seed, "config": dataclasses.asdict(config), "departments": result}, indent=2))
    else:
        print(
            f"seed {args.seed}, {args.steps} steps, {args.question_drills} question drills per fact, "
            f"passages in {training.prompts.PASSAGE_ORDER} order\n"
        )
        print(_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
