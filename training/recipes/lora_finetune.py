"""LoRA fine-tuning recipe: one dataset version in, one adapter (and one MLflow run) out.

Usage::

    # single process, CPU or one GPU (device=auto picks CUDA when present)
    python -m training.recipes.lora_finetune --config training/configs/lora.yaml train.max_steps=50

    # several GPUs: the same file under accelerate (data parallel; rank 0 logs, evaluates and saves)
    accelerate launch --multi_gpu --num_processes 4 -m training.recipes.lora_finetune train.batch_size=16

    # as a queued training job, picked up by `auditloop worker`
    auditloop model train --set train.max_steps=50

Steps: load data (dataset version, gold questions, current documents) → build model (base in
model.dtype, bf16 on a GPU that has it, or 4-bit NF4 for QLoRA; gradient checkpointing if asked; PEFT
LoRA on the architecture's attention projections; no modules_to_save, no DoRA, so vLLM can serve the
adapter) → train (loss on the answer tokens only; examples repeated by their dataset weight; bf16
autocast on CUDA; prompts through the tokenizer's chat template where it has one) → evaluate
(held-out gold questions) → save (adapter directory) → log (MLflow: params,
per-step loss and learning rate, the dataset version as an input, the adapter as artifacts and a
registered model version).

A dataset version that contains a gold question is refused: gold is the evaluation set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from audit.base import utcnow
from audit.db import make_engine, make_session_factory
from audit.errors import NotFoundError, ValidationError
from audit.knowledge import datasets
from audit.knowledge.datasets import ExampleRecord
from audit.knowledge.models import DatasetVersion
from audit.sampling.models import GoldItem
from audit.settings import Settings, load_settings
from training import drills
from training.config import RecipeConfig, load_config
from training.evaluation import EvaluationSummary
from training.prompts import encode_example, fit_prompt, format_training_example, uses_chat_template
from training.recipes.evaluate import EvalContext, evaluate_model, prepare, resolve_device
from training.reranking import RerankedRetriever, TrainingPair, dataset_retrieval_pairs, train_reranker
from training.retrieval import Retriever, current_documents
from training.tracking import MlflowTracker, Tracker

Log = Callable[[str], None]
ADAPTER_ARTIFACT_PATH = "adapter"
TRAINING_INFO_FILE = "auditloop_training.json"


class TrainingInterrupted(RuntimeError):
    """Training was asked to stop (the worker lost its job or is shutting down)."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def normalize_question(question: str) -> str:
    """How questions are compared for leakage: whitespace collapsed, case folded."""
    return " ".join(question.split()).casefold()


@dataclass(frozen=True)
class TrainingData:
    version_id: int
    version_number: int
    content_hash: str
    examples: list[ExampleRecord]
    documents: list[Any]
    retrieval_pairs: list[TrainingPair] = field(default_factory=list)


@dataclass
class TrainingOutcome:
    """What one run produced; the worker turns it into a ``model_versions`` row."""

    run_name: str
    adapter_dir: Path
    base_model: str
    dataset_version_id: int
    dataset_version_number: int
    dataset_hash: str
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    evaluation: EvaluationSummary
    eval_context: EvalContext
    device: str
    run_id: str | None = None
    registry_version: str | None = None
    trainable_parameters: int = 0
    total_parameters: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


# --------------------------------------------------------------------------- data


def load_training_data(session: Session, *, version_id: int | None, version_number: int | None) -> TrainingData:
    """The dataset version's examples (by id, by number, or the current version) and the current
    documents; refuses a version that contains a held-out gold question."""
    if version_id is not None:
        version = session.get(DatasetVersion, version_id)
        if version is None:
            raise NotFoundError(f"dataset version id {version_id} does not exist")
    elif version_number is not None:
        version = datasets.version_by_number(session, version_number)
    else:
        current = datasets.current_version(session)
        if current is None:
            raise NotFoundError("there is no current dataset version to train on (see `auditloop dataset list`)")
        version = current
    examples = datasets.examples_for_version(session, version.id)
    if not examples:
        raise ValidationError(f"dataset version {version.number} has no examples to train on")
    gold_questions = {normalize_question(q) for q in session.scalars(select(GoldItem.question))}
    leaked = [e for e in examples if normalize_question(e.question) in gold_questions]
    if leaked:
        ids = ", ".join(str(e.example_id) for e in leaked[:5])
        raise ValidationError(
            f"dataset version {version.number} contains {len(leaked)} held-out gold question(s) "
            f"(example ids {ids}{', ...' if len(leaked) > 5 else ''}): gold questions are the evaluation set; "
            "quarantine those examples and write a new dataset version"
        )
    return TrainingData(
        version.id,
        version.number,
        version.content_hash,
        examples,
        current_documents(session),
        dataset_retrieval_pairs(session, version.id, examples),
    )


def encode_dataset(
    examples: Sequence[ExampleRecord],
    retriever: Retriever | RerankedRetriever,
    tokenizer: Any,
    *,
    retrieval_k: int,
    max_prompt_tokens: int,
    max_seq_len: int,
    copy_drills: int = 0,
    seed: int = 0,
) -> list[dict[str, list[int]]]:
    """Prompt (with retrieved context, as served) + answer per example, repeated ``weight`` times,
    then ``copy_drills`` counterfactual drills per example that quotes a number (``training/drills.py``)."""
    questions = [e.question for e in examples]
    contexts = retriever.search_many(questions, retrieval_k) if retrieval_k > 0 else [[] for _ in examples]
    encoded: list[dict[str, list[int]]] = []

    def encode(question: str, answer: str, context: Sequence[Any]) -> dict[str, list[int]]:
        prompt = fit_prompt(tokenizer, question, context, max_prompt_tokens=max_prompt_tokens)
        _, completion = format_training_example(question, answer, context)
        sequence = encode_example(tokenizer, prompt, completion, max_length=max_seq_len)
        return {"input_ids": sequence.input_ids, "labels": sequence.labels}

    rng = random.Random(f"copy-drills-{seed}")
    for example, context in zip(examples, contexts, strict=True):
        item = encode(example.question, example.answer, context)
        encoded.extend([item] * max(int(example.weight), 1))  # up-sampling: the example's weight
        for question, answer, drill_context in drills.copy_drills(
            example.question, example.answer, context, variants=copy_drills, rng=rng
        ):
            encoded.append(encode(question, answer, drill_context))
    return encoded


def collate(batch: Sequence[dict[str, list[int]]], pad_token_id: int) -> dict[str, Any]:
    """Right-pad a batch; padding is masked out of attention and loss."""
    import torch

    width = max(len(item["input_ids"]) for item in batch)
    input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        input_ids[row, :n] = torch.tensor(item["input_ids"])
        labels[row, :n] = torch.tensor(item["labels"])
        attention[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


# --------------------------------------------------------------------------- model


def apply_lora(model: Any, *, r: int, alpha: int, dropout: float, target_modules: Sequence[str]) -> Any:
    """Wrap ``model`` with a PEFT LoRA adapter that vLLM can serve: plain LoRA (no DoRA), no extra
    trainable modules, no bias. ``target_modules``: names, or ``["auto"]`` for the architecture's
    attention projections (:func:`training.models.targets.resolve_target_modules`)."""
    from peft import LoraConfig, get_peft_model

    from training.models.targets import resolve_target_modules, stores_weights_transposed

    targets = resolve_target_modules(model, target_modules)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        fan_in_fan_out=stores_weights_transposed(model, targets),  # GPT-2's Conv1D keeps (in, out) weights
        bias="none",
        task_type="CAUSAL_LM",
        use_dora=False,
        modules_to_save=None,
    )
    # adapter weights stay float32 whatever the base dtype (PEFT's autocast_adapter_dtype)
    return get_peft_model(model, config)


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _mixed_precision(setting: str, device: str) -> str:
    if setting == "auto":
        return "bf16" if device == "cuda" else "no"
    if setting != "no" and device != "cuda":
        raise ValidationError(f"train.mixed_precision: {setting} needs a CUDA device (this run is on {device})")
    return setting


@contextlib.contextmanager
def _run_closed_on_error(tracker: Tracker | None) -> Iterator[None]:
    """Mark the tracking run FAILED when the recipe raises (the error itself is re-raised)."""
    try:
        yield
    except BaseException:
        if tracker is not None and tracker.run_id is not None:
            with contextlib.suppress(Exception):  # the original error matters more than the status
                tracker.end_run("FAILED")
        raise


# --------------------------------------------------------------------------- the recipe


def main(
    cfg: RecipeConfig,
    *,
    settings: Settings | None = None,
    engine: Engine | None = None,
    tracker: Tracker | None = None,
    dataset_version_id: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    end_run: bool = True,
    eval_context: EvalContext | None = None,
    log: Log = _stderr,
) -> TrainingOutcome:
    """Train one adapter on a dataset version and evaluate it on the clean gate items (those of
    ``eval_context`` when given — e.g. a control judged on its candidate's items — else the items
    clean for this dataset version)."""
    import torch
    from accelerate import Accelerator
    from transformers import AutoTokenizer, get_scheduler

    from training.models import resolve_model_dir
    from training.models.loading import (
        check_quantization,
        load_for_training,
        resolve_dtype,
        set_gradient_checkpointing,
    )

    settings = settings or load_settings()
    own_engine = engine is None
    engine = engine or make_engine(settings.database_url)
    should_stop = should_stop or (lambda: False)
    started = time.perf_counter()

    # ------------------------------------------------------------------------------ set up
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.device)
    check_quantization(cfg.model.quantization, device)  # before any data or weights are loaded
    accelerator = Accelerator(
        cpu=device == "cpu",
        mixed_precision=_mixed_precision(cfg.train.mixed_precision, device),
        gradient_accumulation_steps=cfg.train.grad_accum_steps,
    )
    is_main = accelerator.is_main_process
    say: Log = log if is_main else (lambda _m: None)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    base_model_spec = cfg.base_model or settings.base_model
    if is_main and tracker is None:
        # opened first: an unreachable tracking server fails the run before any training time is spent
        tracker = MlflowTracker(cfg.tracking.tracking_uri or settings.mlflow_tracking_uri, cfg.tracking.experiment)

    with _run_closed_on_error(tracker if end_run else None):
        # ------------------------------------------------------------------------------ load data
        try:
            with make_session_factory(engine)() as session:
                data = load_training_data(session, version_id=dataset_version_id, version_number=cfg.dataset.version)
                if eval_context is None:
                    eval_context = prepare(session, cfg, trained_on=[data.version_id])
        finally:
            if own_engine:
                engine.dispose()
        say(
            f"data: dataset version {data.version_number} ({len(data.examples)} examples, "
            f"hash {data.content_hash[:12]}), {len(data.documents)} current documents, "
            f"{len(eval_context.gold)} held-out gold questions"
        )

        # ------------------------------------------------------------------------------ build model
        model_dir = resolve_model_dir(base_model_spec, settings.data_dir, progress=say)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = resolve_dtype(cfg.model.dtype, device)
        base = load_for_training(
            model_dir,
            dtype=dtype,
            quantization=cfg.model.quantization,
            gradient_checkpointing=cfg.train.gradient_checkpointing,
            device_index=accelerator.local_process_index,
        )
        model = apply_lora(
            base, r=cfg.lora.r, alpha=cfg.lora.alpha, dropout=cfg.lora.dropout, target_modules=cfg.lora.target_modules
        )
        targets = model.peft_config["default"].target_modules
        trainable, total = count_parameters(model)
        say(
            f"model: {base_model_spec} ({dtype}{', nf4' if cfg.model.quantization == 'nf4' else ''}"
            f"{', gradient checkpointing' if cfg.train.gradient_checkpointing else ''}) + LoRA r={cfg.lora.r} on "
            f"{','.join(sorted(targets))}: {trainable:,} trainable of {total:,} parameters "
            f"({100 * trainable / total:.3f}%){'; prompts through its chat template' if uses_chat_template(tokenizer) else ''}"
        )

        retriever = Retriever.from_documents(data.documents)
        reranker = None
        if cfg.dataset.rerank_candidates and cfg.dataset.retrieval_k:
            reranker = train_reranker(
                retriever,
                data.retrieval_pairs,
                candidates=cfg.dataset.rerank_candidates,
                regularization=cfg.dataset.rerank_regularization,
                seed=cfg.seed,
            )
            say(
                f"reranker: trained on {reranker.info['pairs_used']} of {len(data.retrieval_pairs)} retrieval pairs "
                f"({reranker.info['pairs_first_stage_wrong']} where the first stage ranked another document first), "
                f"over the first {cfg.dataset.rerank_candidates} candidates"
                if reranker
                else f"reranker: none ({len(data.retrieval_pairs)} retrieval pairs, none usable): the first stage serves"
            )
        sequences = encode_dataset(
            data.examples,
            RerankedRetriever(retriever, reranker),
            tokenizer,
            retrieval_k=cfg.dataset.retrieval_k,
            max_prompt_tokens=cfg.dataset.max_prompt_tokens,
            max_seq_len=cfg.dataset.max_seq_len,
            copy_drills=cfg.dataset.copy_drills,
            seed=cfg.seed,
        )
        generator = torch.Generator().manual_seed(cfg.seed)
        loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
            sequences,  # type: ignore[arg-type]
            batch_size=cfg.train.batch_size,
            shuffle=True,
            generator=generator,
            collate_fn=lambda batch: collate(batch, int(tokenizer.pad_token_id)),
        )
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
        )
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        # counted after prepare: under `accelerate launch` each process sees its shard of the batches
        steps_per_epoch = max(math.ceil(len(loader) / cfg.train.grad_accum_steps), 1)
        total_steps = cfg.train.max_steps or steps_per_epoch * cfg.train.epochs
        # the prepared scheduler advances once per process at every optimizer step (accelerate's
        # convention), so its horizon is counted in process-steps
        scheduler = accelerator.prepare(
            get_scheduler(
                cfg.train.lr_scheduler,
                optimizer=optimizer,
                num_warmup_steps=int(cfg.train.warmup_ratio * total_steps) * accelerator.num_processes,
                num_training_steps=total_steps * accelerator.num_processes,
            )
        )

        run_name = cfg.run_name or f"lora-d{data.version_number}-{utcnow():%Y%m%dT%H%M%S}"
        hyperparameters = {
            **cfg.flat(),
            "base_model": base_model_spec,
            "dataset.version_id": data.version_id,
            "dataset.version_number": data.version_number,
            "dataset.content_hash": data.content_hash,
            "dataset.examples": len(data.examples),
            "dataset.sequences": len(sequences),
            "train.total_steps": total_steps,
            "model.trainable_parameters": trainable,
            "model.total_parameters": total,
            "device": device,
            "model.loaded_dtype": dtype,
            "lora.resolved_target_modules": ",".join(sorted(targets)),
            "mixed_precision": accelerator.mixed_precision,
            "num_processes": accelerator.num_processes,
        }
        if is_main and tracker is not None:
            if tracker.run_id is None:
                tracker.start_run(
                    run_name,
                    {"auditloop.dataset_version": str(data.version_number), "auditloop.base_model": base_model_spec},
                )
            tracker.log_params(hyperparameters)
            tracker.log_dataset(
                [
                    {
                        "question": e.question,
                        "answer": e.answer,
                        "department": e.department,
                        "origin": e.origin,
                        "weight": e.weight,
                    }
                    for e in data.examples
                ],
                name=f"auditloop-dataset-v{data.version_number}",
                digest=data.content_hash,
                tags={
                    "auditloop.dataset_version": str(data.version_number),
                    "auditloop.dataset_version_id": str(data.version_id),
                    "auditloop.content_hash": data.content_hash,
                },
                context="training",
            )

        # ------------------------------------------------------------------------------ train
        say(
            f"train: {len(sequences)} sequences, {total_steps} optimizer steps on {device} "
            f"(batch {cfg.train.batch_size} x accumulation {cfg.train.grad_accum_steps} x {accelerator.num_processes} process(es))"
        )
        model.train()
        step = 0
        window_loss, window_batches = 0.0, 0
        history: list[dict[str, float]] = []
        train_started = time.perf_counter()
        losses: list[float] = []
        while step < total_steps:
            for batch in loader:
                if should_stop():
                    raise TrainingInterrupted(f"training stopped at step {step} of {total_steps}")
                with accelerator.accumulate(model):
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                window_loss += float(loss.detach())
                window_batches += 1
                if not accelerator.sync_gradients:
                    continue
                step += 1
                if step % cfg.train.log_every == 0 or step == total_steps:
                    mean_loss = window_loss / window_batches
                    losses.append(mean_loss)
                    lr = float(scheduler.get_last_lr()[0])
                    elapsed = time.perf_counter() - train_started
                    history.append({"step": step, "loss": mean_loss, "lr": lr})
                    say(
                        f"train: step {step}/{total_steps}  loss {mean_loss:.4f}  lr {lr:.2e}  {elapsed / step:.3f} s/step"
                    )
                    if is_main and tracker is not None:
                        tracker.log_metrics({"loss": mean_loss, "lr": lr}, step=step)
                    window_loss, window_batches = 0.0, 0
                if step >= total_steps:
                    break
        train_seconds = time.perf_counter() - train_started
        accelerator.wait_for_everyone()
        model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
        model.eval()
        if cfg.train.gradient_checkpointing:  # generation wants its KV cache back
            set_gradient_checkpointing(model.get_base_model(), False)

        # ------------------------------------------------------------------------------ evaluate
        evaluation = evaluate_model(model, tokenizer, eval_context, device=str(accelerator.device), reranker=reranker)
        metrics = {
            **{f"reranker_{k}": float(v) for k, v in (reranker.info if reranker else {}).items()},
            "train_loss": losses[-1] if losses else math.nan,
            "train_seconds": train_seconds,
            "train_steps": float(step),
            **{f"gold_{name}": value for name, value in evaluation.metrics.items()},
            **{f"gold_gap_{name}": value for name, value in evaluation.department_gap.items()},
        }
        say("evaluate: " + ", ".join(f"{k} {v:.4f}" for k, v in evaluation.metrics.items()))

        # ------------------------------------------------------------------------------ save
        output_root = Path(cfg.output_dir) if cfg.output_dir else settings.data_dir / "adapters"
        adapter_dir = output_root / run_name
        suffix = 1
        while adapter_dir.exists():
            suffix += 1
            adapter_dir = output_root / f"{run_name}-{suffix}"
        outcome = TrainingOutcome(
            run_name=adapter_dir.name,
            adapter_dir=adapter_dir.resolve(),
            base_model=base_model_spec,
            dataset_version_id=data.version_id,
            dataset_version_number=data.version_number,
            dataset_hash=data.content_hash,
            hyperparameters=hyperparameters,
            metrics=metrics,
            evaluation=evaluation,
            eval_context=eval_context,
            device=device,
            trainable_parameters=trainable,
            total_parameters=total,
            history=history,
        )
        if not is_main:
            return outcome
        adapter_dir.mkdir(parents=True)
        model.save_pretrained(str(adapter_dir))
        if reranker is not None:
            reranker.save(adapter_dir)  # logged with the adapter's files below
        (adapter_dir / TRAINING_INFO_FILE).write_text(
            json.dumps(
                {
                    "base_model": base_model_spec,
                    "dataset_version": data.version_number,
                    "dataset_hash": data.content_hash,
                    "hyperparameters": hyperparameters,
                    "metrics": metrics,
                },
                indent=2,
                default=str,
            )
        )
        say(f"save: adapter written to {adapter_dir}")

        # ------------------------------------------------------------------------------ log
        if tracker is not None:
            metrics["total_seconds"] = time.perf_counter() - started
            tracker.log_metrics(metrics, step=step)
            tracker.log_dict(evaluation.to_dict(), "evaluation/gold.json")
            tracker.log_artifacts(adapter_dir, ADAPTER_ARTIFACT_PATH)
            outcome.registry_version = tracker.register_model(ADAPTER_ARTIFACT_PATH, cfg.tracking.registered_model_name)
            outcome.run_id = tracker.run_id
            if end_run:
                tracker.end_run("FINISHED")
            say(
                f"log: MLflow run {outcome.run_id}, registered {cfg.tracking.registered_model_name} "
                f"version {outcome.registry_version}"
            )
        return outcome


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="LoRA fine-tuning on a dataset version (see the module docstring).")
    parser.add_argument("--config", default=None, help="recipe YAML (default: training/configs/lora.yaml)")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.max_steps=50")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    result = main(load_config(args.config, args.overrides))
    print(
        json.dumps(
            {"adapter_dir": str(result.adapter_dir), "mlflow_run_id": result.run_id, "metrics": result.metrics},
            indent=2,
        )
    )
