"""``auditloop answer`` (the model answers a question set), ``auditloop base-model`` and ``auditloop retrieval``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from app.cli.context import AppContext, emit, pass_app, table, user_errors
from audit.errors import AuditloopError
from training.choices import ANSWER_BATCH_SIZE, ANSWER_MAX_NEW_TOKENS, ANSWER_TOP_K

# Domain code is imported inside the commands, so `--help` loads none of it (see app/cli/main.py).

BACKENDS = ("auto", "transformers", "vllm")


def _say(message: str) -> None:
    click.echo(message, err=True)


@click.command("answer")
@click.option(
    "--questions",
    "questions_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help='JSONL, one {"question", "asker_department", "external_id"?} per line.',
)
@click.option("--model-version", help="Model version name (default: the champion).")
@click.option(
    "-k",
    "--top-k",
    "k",
    type=click.IntRange(1, 20),
    default=ANSWER_TOP_K,
    show_default=True,
    help="Documents retrieved.",
)
@click.option("--max-new-tokens", type=click.IntRange(1, 1024), default=ANSWER_MAX_NEW_TOKENS, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 512), default=ANSWER_BATCH_SIZE, show_default=True)
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True)
@click.option("--device", help="cpu or cuda (default: cuda when available).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary and the answers as JSON.")
@pass_app
@user_errors
def answer(
    app: AppContext,
    questions_file: Path,
    model_version: str | None,
    k: int,
    max_new_tokens: int,
    batch_size: int,
    backend: str,
    device: str | None,
    as_json: bool,
) -> None:
    """Answer the questions in a JSONL file with the champion (or a named) model and store the answers.

    Retrieves the top-k current documents per question, generates with the model version's base
    model and LoRA adapter, and stores each answer with its sources, confidence (mean token
    log-probability) and latency. Re-running stores nothing twice (idempotent on external_id,
    default gen-<hash of model, department and question>).
    """
    from training import assistant
    from training.retrieval import current_documents

    started = time.perf_counter()
    questions = assistant.read_questions(questions_file)
    # Short transactions only: nothing stays locked while the model generates.
    with app.unit_of_work() as session:
        version = assistant.resolve_model_version(session, model_version)
        pending, already = assistant.plan_answers(
            session, actor=None, questions=questions, model_version=version, source_name=str(questions_file)
        )
        documents = current_documents(session)
        session.expunge(version)
    summary = assistant.AnswerRunSummary(version.name, len(questions), already_stored=already)
    if pending:
        if not documents:
            _say("warning: the knowledge base has no current documents; answers will have no sources")
        retriever = assistant.retriever_for_version(version, documents)
        generator = assistant.backend_for_version(app.settings, version, prefer=backend, device=device, progress=_say)
        chunk = batch_size * 4
        with click.progressbar(length=len(pending), label="answering", file=click.get_text_stream("stderr")) as bar:
            for start in range(0, len(pending), chunk):
                generated = assistant.generate_answers(
                    pending[start : start + chunk],
                    backend=generator,
                    retriever=retriever,
                    k=k,
                    max_new_tokens=max_new_tokens,
                    batch_size=batch_size,
                )
                with app.unit_of_work() as session:
                    summary.inserted += assistant.store_answers(
                        session, actor=None, answers=generated, model_version=version
                    )
                summary.generated_tokens += sum(a.new_tokens for a in generated)
                summary.answers += [a.as_dict() for a in generated]
                bar.update(len(generated))
    summary.seconds = time.perf_counter() - started
    emit(summary.as_dict(), as_json=as_json, human=lambda _d: summary.line())


@click.group("base-model")
def base_model() -> None:
    """The base model (AUDITLOOP_BASE_MODEL: builtin:tiny or a local Hugging Face model directory)."""


def _build_info(model_dir: Path) -> dict[str, Any]:
    from training.models.tiny import BUILD_INFO_FILE

    info_file = model_dir / BUILD_INFO_FILE
    return json.loads(info_file.read_text()) if info_file.is_file() else {}


@base_model.command("build")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def build(app: AppContext, as_json: bool) -> None:
    """Build the built-in tiny model now (otherwise it is built on first use; cached in the data dir)."""
    from training.models import ensure_base_model

    model_dir = ensure_base_model(app.settings, progress=_say)
    data = {"base_model": app.settings.base_model, "directory": str(model_dir), **_build_info(model_dir)}
    emit(data, as_json=as_json, human=lambda d: f"base model {d['base_model']} ready in {d['directory']}")


@base_model.command("info")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def info(app: AppContext, as_json: bool) -> None:
    """Show the configured base model, its directory and (for builtin:tiny) how it was built."""
    from training.models import DEFAULT_TINY_SEED, tiny_fingerprint, tiny_model_dir

    settings = app.settings
    if settings.base_model == "builtin:tiny":
        fingerprint = tiny_fingerprint(DEFAULT_TINY_SEED)
        model_dir = tiny_model_dir(settings.data_dir, fingerprint)
    else:
        model_dir = Path(settings.base_model)
    built = (model_dir / "config.json").is_file()
    data = {"base_model": settings.base_model, "directory": str(model_dir), "built": built}
    if built:
        data.update(_build_info(model_dir))
    emit(
        data,
        as_json=as_json,
        human=lambda d: "\n".join(f"{key}: {value}" for key, value in d.items() if key != "config"),
    )


@base_model.command("throughput")
@click.option("--prompts", "n_prompts", type=click.IntRange(1, 10_000), default=32, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(1, 1024), default=ANSWER_MAX_NEW_TOKENS, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 512), default=ANSWER_BATCH_SIZE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def throughput(app: AppContext, n_prompts: int, max_new_tokens: int, batch_size: int, as_json: bool) -> None:
    """Measure batched vs one-by-one greedy generation with the base model on real prompts
    (questions from the gold set and the curated examples, with retrieved context, prompted as
    `auditloop answer` prompts them)."""
    from sqlalchemy import select

    from audit.knowledge.models import Example
    from audit.sampling.models import GoldItem
    from training import assistant
    from training.generation import choose_backend, measure_generation_throughput
    from training.models import ensure_base_model
    from training.retrieval import Retriever, current_documents

    with app.unit_of_work() as session:
        documents = current_documents(session)
        questions = list(session.scalars(select(GoldItem.question).order_by(GoldItem.id).limit(n_prompts)))
        if len(questions) < n_prompts:
            questions += session.scalars(
                select(Example.question).order_by(Example.id).limit(n_prompts - len(questions))
            )
    if not questions:
        raise AuditloopError("no questions in the database to measure with (run `auditloop demo seed` first)")
    backend = choose_backend(ensure_base_model(app.settings, progress=_say), prefer="transformers")
    prompts, _ = assistant.answer_prompts(backend, Retriever(documents), questions, max_new_tokens=max_new_tokens)
    result = measure_generation_throughput(backend, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    emit(
        result,
        as_json=as_json,
        human=lambda r: (
            f"batched {r['batched_prompts_per_s']} prompts/s vs one by one {r['sequential_prompts_per_s']} prompts/s: "
            f"{r['speedup']}x ({r['prompts']} prompts, batch {r['batch_size']}, {r['max_new_tokens']} new tokens)"
        ),
    )


@click.group("retrieval")
def retrieval() -> None:
    """The retriever over the current documents."""


@retrieval.command("accuracy")
@click.option("-k", "--top-k", "ks", type=click.IntRange(1, 50), multiple=True, help="k (repeatable; default 1, 3, 5).")
@click.option(
    "--model-version",
    default=None,
    help="Judge what this model version retrieves (the first stage reranked by its reranker); "
    "default: the TF-IDF first stage alone.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@user_errors
def accuracy(app: AppContext, ks: tuple[int, ...], model_version: str | None, as_json: bool) -> None:
    """Retrieval accuracy@k over the retrieval evaluation pairs and the gold questions' reference documents."""
    from training import assistant
    from training.reranking import RerankedRetriever
    from training.retrieval import Retriever, current_documents, evaluation_pairs, retrieval_accuracy_at_k

    with app.unit_of_work() as session:
        documents = current_documents(session)
        pairs = evaluation_pairs(session)
        if model_version is None:
            retriever = RerankedRetriever(Retriever(documents), None)
        else:
            retriever = assistant.retriever_for_version(
                assistant.resolve_model_version(session, model_version), documents
            )
    if not pairs:
        raise AuditloopError("no retrieval evaluation pairs or gold questions with reference documents")
    rows = [{"k": k, "accuracy": round(retrieval_accuracy_at_k(retriever, pairs, k), 4)} for k in ks or (1, 3, 5)]
    emit(
        {"pairs": len(pairs), "documents": len(retriever), "results": rows},
        as_json=as_json,
        human=lambda d: (
            f"{d['pairs']} questions, {d['documents']} current documents\n" + table(d["results"], ["k", "accuracy"])
        ),
    )


COMMANDS = [answer, base_model, retrieval]
