"""Real architectures, offline: tiny random-weight Llama, Qwen2, Mistral, Gemma2, Phi-3, GPT-2 and
GPT-NeoX models with chat-template tokenizers (tests/training/tiny_architectures.py) go through the
recipe's blocks: LoRA with ``target_modules: auto``, a few training steps with gradient
checkpointing, save, reload, generation that stops on the template's end of turn, and the vLLM
request for the adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audit.errors import ValidationError
from tests.training.tiny_architectures import ARCHITECTURES, build_architecture
from training.generation import end_token_ids
from training.generation.transformers_backend import TransformersBackend
from training.generation.vllm_backend import (
    engine_options,
    load_tokenizer_and_end_tokens,
    lora_request_args,
    prompt_inputs,
    sampling_options,
)
from training.models import load_model_dir
from training.models.loading import check_quantization, is_gradient_checkpointing, load_for_training, resolve_dtype
from training.models.targets import resolve_target_modules
from training.prompts import encode_example, fit_prompt, prompt_token_ids
from training.recipes import lora_finetune
from training.retrieval import RetrievalDocument

torch.set_num_threads(2)

DOCUMENT = RetrievalDocument("HR-001@v1", "HR", "Leave Policy", "Annual leave is 25 days for every employee.")
EXAMPLES = [("How much annual leave do I get?", "25 days."), ("Who approves leave?", "The line manager.")]


@pytest.fixture(scope="module")
def architecture_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("architectures")
    return {name: build_architecture(name, root / name) for name in ARCHITECTURES}


def _greedy_tokens(model: torch.nn.Module, ids: list[int], steps: int) -> list[int]:
    """The next ``steps`` greedy tokens, one full forward pass each (independent of generate())."""
    sequence = torch.tensor([ids])
    out: list[int] = []
    with torch.inference_mode():
        for _ in range(steps):
            token = int(model(input_ids=sequence).logits[0, -1].argmax())
            out.append(token)
            sequence = torch.cat([sequence, torch.tensor([[token]])], dim=1)
    return out


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_architecture_trains_with_auto_targets_reloads_and_stops_on_its_end_of_turn(
    name: str, architecture_dirs: dict[str, Path], tmp_path: Path
) -> None:
    arch = ARCHITECTURES[name]
    model_dir = architecture_dirs[name]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token

    # ---- prompts through the chat template; the answer ends with the template's end of turn
    prompt = fit_prompt(tokenizer, EXAMPLES[0][0], [DOCUMENT], max_prompt_tokens=200)
    opening, closing = tokenizer.apply_chat_template(
        [{"role": "user", "content": "MESSAGE"}], tokenize=False, add_generation_prompt=True
    ).split("MESSAGE")
    assert prompt.startswith(opening + "Context:\n[HR-001@v1] Leave Policy (HR): Annual leave is 25 days")
    assert prompt.endswith("Question: How much annual leave do I get?" + closing) and "Answer:" not in prompt
    ids = prompt_token_ids(tokenizer, prompt)
    if arch.bos:  # the template's own BOS, never a second one from the tokenizer (as apply_chat_template)
        assert ids.count(tokenizer.bos_token_id) == ("bos_token" in arch.chat_template)
    sequences = [
        encode_example(tokenizer, fit_prompt(tokenizer, q, [DOCUMENT], max_prompt_tokens=200), " " + a, max_length=256)
        for q, a in EXAMPLES
    ]
    end_of_turn = tokenizer.convert_tokens_to_ids(arch.end_of_turn)
    assert end_of_turn in [t for t in sequences[0].labels if t != -100]

    # ---- LoRA with target_modules=auto on the attention projections, gradient checkpointing on
    base = load_for_training(model_dir, dtype=resolve_dtype("auto", "cpu"), gradient_checkpointing=True)
    assert base.dtype == torch.float32 and is_gradient_checkpointing(base)
    model = lora_finetune.apply_lora(base, r=4, alpha=8, dropout=0.0, target_modules=["auto"])
    assert set(model.peft_config["default"].target_modules) == set(arch.attention_targets)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    if name == "gpt2":  # attn.c_proj adapted, the MLP's c_proj left alone
        assert any(".attn.c_proj." in n for n in trainable) and not any(".mlp." in n for n in trainable)

    # ---- a few steps on the two examples: the loss goes down
    batch = lora_finetune.collate(
        [{"input_ids": s.input_ids, "labels": s.labels} for s in sequences], int(tokenizer.pad_token_id)
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    model.train()
    losses = []
    for _ in range(4):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]

    # ---- save, reload on the base: the same logits
    model.eval()
    adapter_dir = tmp_path / "adapter"
    model.save_pretrained(str(adapter_dir))
    reloaded, reloaded_tokenizer = load_model_dir(model_dir, adapter_dir=adapter_dir)
    probe = torch.tensor([ids])
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(input_ids=probe).logits, model(input_ids=probe).logits)

    # ---- generation stops on the generation config's second end token (the template's end of turn)
    backend = TransformersBackend(reloaded, reloaded_tokenizer, "cpu")
    assert backend.end_token_ids == [tokenizer.eos_token_id, end_of_turn]
    greedy = _greedy_tokens(reloaded, ids, 4)
    # make the end of turn the greedy choice at the first step that brings a new token (step 0 if none):
    # swap its row of the (untied) output head with that token's
    stop_at = next((i for i in range(1, 4) if greedy[i] not in greedy[:i]), 0)
    head = reloaded.get_base_model().get_output_embeddings().weight
    with torch.no_grad():
        head[[greedy[stop_at], end_of_turn]] = head[[end_of_turn, greedy[stop_at]]]
    (stopped,) = backend.generate([prompt], max_new_tokens=12, batch_size=1)
    assert stopped.new_tokens == stop_at + 1
    assert stopped.text == reloaded_tokenizer.decode(greedy[:stop_at], skip_special_tokens=True).strip()
    reloaded.get_base_model().generation_config.eos_token_id = tokenizer.eos_token_id  # the tokenizer's EOS only
    (ran_on,) = TransformersBackend(reloaded, reloaded_tokenizer, "cpu").generate(
        [prompt], max_new_tokens=12, batch_size=1
    )
    assert ran_on.new_tokens > stop_at + 1

    # ---- the vLLM request for the adapter (the call itself: test_vllm_serves_a_chat_model_adapter)
    vllm_tokenizer, stop_ids, context_length = load_tokenizer_and_end_tokens(model_dir)
    options = engine_options(model_dir, adapter_dir=adapter_dir)
    assert options["enable_lora"] and options["max_lora_rank"] == 8 and options["model"] == str(model_dir)
    assert lora_request_args(adapter_dir) == ("adapter", 1, str(adapter_dir))
    sampling = sampling_options(max_new_tokens=12, do_sample=False, temperature=1.0, stop_token_ids=stop_ids)
    assert sampling["stop_token_ids"] == [tokenizer.eos_token_id, end_of_turn] and sampling["temperature"] == 0.0
    assert prompt_inputs(vllm_tokenizer, [prompt]) == [{"prompt_token_ids": ids}]
    assert context_length == 256


def test_a_named_target_that_does_not_exist_lists_the_model_layers(architecture_dirs: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(architecture_dirs["phi3"]))
    with pytest.raises(ValidationError, match=r"q_proj, v_proj not found .*gate_up_proj, o_proj, qkv_proj"):
        resolve_target_modules(model, ["q_proj", "v_proj"])
    assert resolve_target_modules(model, ["qkv_proj"]) == ["qkv_proj"]  # an explicit list still wins


def test_an_unknown_architecture_without_known_projections_is_refused_by_auto() -> None:
    class Odd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mixer = torch.nn.Linear(4, 4)
            self.config = type("Config", (), {"model_type": "oddformer"})()

    with pytest.raises(ValidationError, match=r"auto does not know .*'oddformer' \(its linear layers: mixer\)"):
        resolve_target_modules(Odd(), ["auto"])


def test_nf4_is_refused_on_cpu_with_what_to_change() -> None:
    with pytest.raises(
        ValidationError, match=r"model.quantization: nf4 needs a CUDA GPU .* set model.quantization=none"
    ):
        check_quantization("nf4", "cpu")
    check_quantization("none", "cpu")
    assert resolve_dtype("auto", "cpu") == "float32" and resolve_dtype("bfloat16", "cpu") == "bfloat16"


def test_end_tokens_come_from_the_generation_config_then_the_tokenizer() -> None:
    tokenizer = type("Tok", (), {"eos_token_id": 2})()
    assert end_token_ids(type("G", (), {"eos_token_id": [7, 2, 9]})(), tokenizer) == [7, 2, 9]
    assert end_token_ids(type("G", (), {"eos_token_id": 5})(), tokenizer) == [5, 2]
    assert end_token_ids(None, tokenizer) == [2]


@pytest.mark.gpu
def test_vllm_serves_a_chat_model_adapter(tmp_path: Path) -> None:
    from training.generation import vllm_available

    if not vllm_available():
        pytest.skip("needs vllm and a CUDA device")
    from training.generation.vllm_backend import VLLMBackend

    model_dir = build_architecture("qwen2", tmp_path / "qwen2", hidden_size=128)  # head size 64 for vLLM
    base = load_for_training(model_dir, dtype="float32")
    lora_finetune.apply_lora(base, r=8, alpha=16, dropout=0.0, target_modules=["auto"]).save_pretrained(
        str(tmp_path / "adapter")
    )
    backend = VLLMBackend(model_dir, adapter_dir=tmp_path / "adapter", gpu_memory_utilization=0.3)
    prompt = fit_prompt(backend.tokenizer, EXAMPLES[0][0], [DOCUMENT], max_prompt_tokens=200)
    (generation,) = backend.generate([prompt], max_new_tokens=8)
    assert 1 <= generation.new_tokens <= 8


@pytest.mark.slow
def test_the_recipe_trains_a_chat_model_end_to_end_without_hand_edits(
    architecture_dirs: dict[str, Path], sqlite_url: str, tmp_path: Path
) -> None:
    """The whole recipe (data → model → train → evaluate → save → log) on the tiny Qwen2 chat model with
    the packaged defaults (target_modules auto, dtype auto) plus gradient checkpointing."""
    from audit.db import make_engine, make_session_factory
    from audit.settings import Settings
    from tests import factories
    from training.config import load_config

    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        factories.training_company(session)
        session.commit()
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        mlflow_tracking_uri=factories.mlflow_store(tmp_path / "mlruns"),
        base_model=str(architecture_dirs["qwen2"]),
        demo_mode=False,
        secret_key_file=None,
    )
    lines: list[str] = []
    cfg = load_config(
        overrides=[
            "train.max_steps=2",
            "train.batch_size=2",
            "train.log_every=1",
            "train.gradient_checkpointing=true",
            "lora.r=4",
            "dataset.max_seq_len=256",
            "dataset.max_prompt_tokens=192",
            "evaluation.max_new_tokens=6",
            "evaluation.max_items=4",
            "evaluation.bootstrap_resamples=100",
        ]
    )
    outcome = lora_finetune.main(cfg, settings=settings, engine=engine, log=lines.append)
    assert outcome.hyperparameters["lora.resolved_target_modules"] == "k_proj,o_proj,q_proj,v_proj"
    assert outcome.hyperparameters["model.loaded_dtype"] == "float32"
    assert any("gradient checkpointing" in line and "prompts through its chat template" in line for line in lines)
    assert len(outcome.history) == 2 and (outcome.adapter_dir / "adapter_config.json").is_file()
    assert len(outcome.evaluation.items) == 4 and "gold_rougeL" in outcome.metrics  # evaluated through the template


def test_auditloop_answer_prompts_go_through_the_chat_template(architecture_dirs: dict[str, Path]) -> None:
    from training.assistant import answer_prompts
    from training.generation import choose_backend
    from training.retrieval import Retriever

    backend = choose_backend(architecture_dirs["qwen2"], prefer="transformers", device="cpu")
    prompts, hits = answer_prompts(backend, Retriever([DOCUMENT]), [EXAMPLES[0][0]], k=1, max_new_tokens=8)
    assert hits[0][0].document_id == DOCUMENT.document_id
    assert prompts[0].startswith("<|im_start|>user\nContext:\n[HR-001@v1]")
    assert prompts[0].endswith("Question: How much annual leave do I get?<|im_end|>\n<|im_start|>assistant\n")
    (generation,) = backend.generate(prompts, max_new_tokens=8)
    assert 1 <= generation.new_tokens <= 8


def test_auto_is_the_packaged_default_and_stands_alone() -> None:
    from training.config import load_config

    assert load_config().lora.target_modules == ["auto"]
    assert load_config(overrides=["lora.target_modules=q_proj,v_proj"]).lora.target_modules == ["q_proj", "v_proj"]
    with pytest.raises(ValidationError, match="lora.target_modules: auto stands alone"):
        load_config(overrides=["lora.target_modules=auto,q_proj"])
    with pytest.raises(ValidationError, match=r"model.quantization: expected 'none' \| 'nf4'"):
        load_config(overrides=["model.quantization=int3"])
