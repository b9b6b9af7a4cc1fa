"""The LoRA recipe end to end on the tiny model, its config loading, and the efficiency figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine

from audit.db import make_engine, make_session_factory
from audit.errors import ValidationError
from audit.settings import Settings
from tests import factories
from training import efficiency
from training.config import DEFAULT_CONFIG_PATH, RecipeConfig, load_config
from training.recipes import evaluate as evaluate_recipe
from training.recipes import lora_finetune
from training.tracking import resolve_tracking_uri

torch.set_num_threads(2)

# A few optimizer steps on the small tiny model: the mechanics, not the quality.
FAST = [
    "train.max_steps=3",
    "train.batch_size=4",
    "train.log_every=1",
    "train.warmup_ratio=0.0",
    "lora.r=4",
    "lora.alpha=8",
    "dataset.max_seq_len=256",
    "dataset.max_prompt_tokens=192",
    "evaluation.max_new_tokens=12",
    "evaluation.bootstrap_resamples=200",
]


@pytest.fixture
def company_engine(sqlite_url: str) -> Engine:
    """A migrated SQLite database holding the small training company (dataset version 1)."""
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        factories.training_company(session)
        session.commit()
    return engine


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, tiny_model_dir: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        mlflow_tracking_uri=factories.mlflow_store(tmp_path / "mlruns"),
        base_model=str(tiny_model_dir),
        demo_mode=False,
        secret_key_file=None,
    )


# --------------------------------------------------------------------------- config


def test_packaged_config_loads_and_documents_every_key() -> None:
    cfg = load_config()
    assert cfg.lora.target_modules == ["auto"] and cfg.model.dtype == "auto" and cfg.model.quantization == "none"
    assert cfg.train.lr == pytest.approx(2e-4)
    text = DEFAULT_CONFIG_PATH.read_text().splitlines()
    # every setting line is preceded by a comment line that explains it
    for index, line in enumerate(text):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.endswith(":"):
            assert text[index - 1].strip().startswith("#"), f"lora.yaml:{index + 1}: {stripped} has no comment"


def test_overrides_are_typed_and_validated() -> None:
    cfg = load_config(overrides=["train.lr=1e-3", "lora.target_modules=q_proj,v_proj", "dataset.version=2"])
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.dataset.version == 2
    with pytest.raises(ValidationError, match=r"^override: lora\.r: must be >= 1 \(got 0\)$"):
        load_config(overrides=["lora.r=0"])
    with pytest.raises(ValidationError, match=r"train\.lrr: unknown setting"):
        load_config(overrides=["train.lrr=1"])
    with pytest.raises(
        ValidationError,
        match=r"gate\.metric: expected 'fact_accuracy' \| 'citation_accuracy' \| 'retrieval_at_1' \| 'rougeL' \| 'f1'",
    ):
        load_config(overrides=["gate.metric=bleu"])
    with pytest.raises(ValidationError, match="expected key=value"):
        load_config(overrides=["train.lr"])
    job_cfg = load_config(overrides={"train": {"max_steps": 5}, "gate.require_approval": True})
    assert job_cfg.train.max_steps == 5 and job_cfg.gate.require_approval is True


def test_a_bad_value_in_a_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("seed: 1\nlora:\n  r: 8\n  dropout: 1.5\n")
    with pytest.raises(ValidationError, match=rf"^{path}:4: lora\.dropout: must be in \[0, 1\) \(got 1\.5\)$"):
        load_config(path)
    path.write_text("train:\n  lr: [1\n")
    with pytest.raises(ValidationError, match=rf"^{path}:\d+: not valid YAML"):
        load_config(path)


# --------------------------------------------------------------------------- data and model blocks


def test_examples_are_repeated_by_weight_and_prompts_are_masked(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from audit.knowledge.datasets import ExampleRecord
    from training.retrieval import RetrievalDocument, Retriever

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    retriever = Retriever([RetrievalDocument("D@v1", "HR", "Leave Policy", "Annual leave is 25 days.")])
    records = [
        ExampleRecord(1, "How much annual leave?", "25 days.", "HR", [], "curated", "h1", weight=3),
        ExampleRecord(2, "Who approves leave?", "The manager.", "HR", [], "curated", "h2", weight=1),
    ]
    sequences = lora_finetune.encode_dataset(
        records, retriever, tokenizer, retrieval_k=1, max_prompt_tokens=120, max_seq_len=160
    )
    assert len(sequences) == 4  # weight 3 + weight 1
    first = sequences[0]
    answer_ids = [t for t in first["labels"] if t != -100]
    assert tokenizer.decode(answer_ids, skip_special_tokens=True).strip() == "25 days."
    assert first["labels"][0] == -100  # the prompt (context + question) carries no loss

    batch = lora_finetune.collate(sequences[2:], pad_token_id=tokenizer.pad_token_id)
    short = min(range(2), key=lambda i: len(sequences[2 + i]["input_ids"]))
    length = len(sequences[2 + short]["input_ids"])
    assert batch["attention_mask"][short, length:].sum() == 0
    assert (batch["labels"][short, length:] == -100).all()


def test_copy_drills_add_encoded_examples_whose_context_and_answer_state_another_value(
    tiny_model_dir: Path,
) -> None:
    from transformers import AutoTokenizer

    from audit.knowledge.datasets import ExampleRecord
    from training.retrieval import RetrievalDocument, Retriever

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    retriever = Retriever([RetrievalDocument("D@v1", "HR", "Leave Policy", "Annual leave is 25 days.")])
    records = [
        ExampleRecord(
            1, "How much annual leave?", "Annual leave is 25 days. (source: D@v1)", "HR", [], "curated", "h1"
        ),
        ExampleRecord(2, "Who approves leave?", "The manager.", "HR", [], "curated", "h2"),  # quotes nothing
    ]
    kwargs = {"retrieval_k": 1, "max_prompt_tokens": 120, "max_seq_len": 160}
    plain = lora_finetune.encode_dataset(records, retriever, tokenizer, **kwargs)
    drilled = lora_finetune.encode_dataset(records, retriever, tokenizer, copy_drills=2, seed=5, **kwargs)
    assert len(plain) == 2 and len(drilled) == 4  # two drills for the example that quotes a number
    assert drilled[0] == plain[0] and drilled[-1] == plain[1]
    for drill in drilled[1:3]:
        text = tokenizer.decode(drill["input_ids"], skip_special_tokens=True)
        answer = tokenizer.decode([t for t in drill["labels"] if t != -100], skip_special_tokens=True).strip()
        value = answer.removeprefix("Annual leave is ").split(" days.")[0]
        assert value != "25" and value.isdigit()
        assert f"Annual leave is {value} days." in text.split(answer)[0]  # the context states it too
        assert "25 days" not in text
    assert drilled == lora_finetune.encode_dataset(records, retriever, tokenizer, copy_drills=2, seed=5, **kwargs)


def test_lora_is_plain_vllm_servable_lora_on_the_named_projections(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    peft_model = lora_finetune.apply_lora(model, r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
    config = peft_model.peft_config["default"]
    assert config.use_dora is False and not config.modules_to_save and config.bias == "none"
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert efficiency.trainable_share(peft_model).trainable == efficiency.lora_parameter_count(
        model.config, r=4, target_modules=["q_proj", "v_proj"]
    )
    with pytest.raises(ValidationError, match="lora.target_modules: qq_proj not found"):
        lora_finetune.apply_lora(
            AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
            r=4,
            alpha=8,
            dropout=0.0,
            target_modules=["qq_proj"],
        )


def test_a_dataset_with_a_gold_question_is_refused(company_engine: Engine) -> None:
    from audit.knowledge import datasets

    with make_session_factory(company_engine)() as session:
        gold = factories.gold_question(
            session,
            dept=factories.department(session, "HR"),
            question="Is remote work allowed on Fridays?",
            reference="Yes.",
        )
        factories.example(
            session, dept=factories.department(session, "HR"), question="is remote work  allowed on FRIDAYS?"
        )
        datasets.create_version(session, actor=None, change_log=[{"kind": "test"}])
        with pytest.raises(ValidationError, match=r"contains 1 held-out gold question\(s\)"):
            lora_finetune.load_training_data(session, version_id=None, version_number=None)
        assert gold.id


# --------------------------------------------------------------------------- the recipe end to end


@pytest.mark.slow
def test_recipe_trains_logs_saves_and_the_adapter_reloads(
    company_engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    cfg: RecipeConfig = load_config(overrides=FAST)
    outcome = lora_finetune.main(cfg, settings=settings, engine=company_engine, log=lambda _m: None)

    # ---- the adapter on disk: plain LoRA on the configured modules
    adapter_config = json.loads((outcome.adapter_dir / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4 and adapter_config["use_dora"] is False
    assert not adapter_config.get("modules_to_save")
    assert set(adapter_config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert (outcome.adapter_dir / "adapter_model.safetensors").is_file()
    assert outcome.dataset_version_number == 1 and len(outcome.history) == 3

    # ---- the MLflow run: params, per-step metrics, the dataset input, the adapter, a registered version
    client = MlflowClient(tracking_uri=resolve_tracking_uri(settings.mlflow_tracking_uri)[0])
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["lora.r"] == "4" and run.data.params["train.max_steps"] == "3"
    assert run.data.params["dataset.content_hash"] == outcome.dataset_hash
    losses = client.get_metric_history(outcome.run_id, "loss")
    assert [m.step for m in losses] == [1, 2, 3]
    assert all(m.value > 0 for m in losses)
    assert [m.step for m in client.get_metric_history(outcome.run_id, "lr")] == [1, 2, 3]
    assert "gold_rougeL" in run.data.metrics and "gold_fact_accuracy" in run.data.metrics
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "auditloop-dataset-v1"
    assert dataset_input.dataset.digest == outcome.dataset_hash[:36]
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "adapter")}
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"} <= artifacts
    (version,) = client.search_model_versions(f"run_id='{outcome.run_id}'")
    assert version.name == "auditloop-assistant" and str(version.version) == outcome.registry_version

    # ---- the saved adapter, reloaded on the base model, answers exactly as the trained model did
    from audit.modelops.models import ModelVersion

    stored = ModelVersion(name="reloaded", base_model=settings.base_model, adapter_uri=str(outcome.adapter_dir))
    reloaded = evaluate_recipe.evaluate_version(
        settings, stored, outcome.eval_context, device="cpu", reuse_stored=False, log=lambda _m: None
    )
    trained_answers = {i: v["prediction"] for i, v in outcome.evaluation.items.items()}
    assert {i: v["prediction"] for i, v in reloaded.items.items()} == trained_answers
    assert reloaded.metrics == outcome.evaluation.metrics


# --------------------------------------------------------------------------- efficiency


def test_lora_on_a_7b_shaped_model_trains_under_one_percent_of_the_weights() -> None:
    config = efficiency.llama_7b_config()
    figures = efficiency.lora_share_for_config(config, r=16)
    # hand count: 32 layers x 4 projections x r·(4096 + 4096)
    assert figures["lora_parameters"] == 32 * 4 * 16 * (4096 + 4096) == 16_777_216
    assert figures["share"] <= 0.01
    # the analytic base count equals the parameters of the model built on the meta device
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    assert figures["base_parameters"] == sum(p.numel() for p in model.parameters()) == 6_738_415_616


@pytest.mark.slow
def test_lora_needs_less_training_memory_than_full_fine_tuning() -> None:
    # weights large enough to dominate the measurement (8M parameters), activations small
    config = dict(
        vocab_size=8192,
        hidden_size=512,
        intermediate_size=1024,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=128,
    )
    figures = efficiency.compare_lora_vs_full(None, config=config, steps=3, batch_size=1, seq_len=32, r=8)
    assert figures["full"]["share"] == 1.0 and figures["lora"]["share"] < 0.05
    assert figures["lora"]["peak_training_bytes"] > 0 and figures["lora"]["step_seconds"] > 0
    # full fine-tuning adds gradients and two AdamW moments per weight; LoRA only for its adapters
    # (measured here: about 0.28; 0.22 for a 1B shape on a GPU)
    assert figures["memory_ratio"] <= 0.5
