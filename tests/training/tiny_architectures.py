"""Tiny random-weight models of real architectures, each with a locally trained tokenizer that
carries its family's chat template and end-of-turn token (nothing is downloaded).

    build_architecture("qwen2", tmp_path / "qwen2")   # a Hugging Face model directory

Hidden size 32, two layers: a few hundred kB each, built in well under a second. The generation
config lists two end tokens, the tokenizer's EOS and the template's end of turn, as instruct models
do (Llama 3: ``<|end_of_text|>``, ``<|eot_id|>``). The output head is untied from the embeddings so a
test can rearrange the head without changing how a prompt is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SHAPE = {"intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
CONTEXT_LENGTH = 256

_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class Architecture:
    model_type: str
    bos: str | None
    eos: str
    end_of_turn: str  # what the template writes after each message; the generation config's second end token
    extra_specials: tuple[str, ...]
    chat_template: str
    attention_targets: tuple[str, ...]  # what lora.target_modules=auto must pick


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(
        "llama",
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|eot_id|>",
        ("<|start_header_id|>", "<|end_header_id|>"),
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
        "{{ m.content | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
        ("q_proj", "k_proj", "v_proj", "o_proj"),
    ),
    "qwen2": Architecture(
        "qwen2",
        None,
        "<|endoftext|>",
        "<|im_end|>",
        ("<|im_start|>",),
        _CHATML,
        ("q_proj", "k_proj", "v_proj", "o_proj"),
    ),
    "mistral": Architecture(
        "mistral",
        "<s>",
        "</s>",
        "[/TURN]",
        ("[INST]", "[/INST]"),
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]"
        "{% else %}{{ m.content }}[/TURN]{% endif %}{% endfor %}",
        ("q_proj", "k_proj", "v_proj", "o_proj"),
    ),
    "gemma2": Architecture(
        "gemma2",
        "<bos>",
        "<eos>",
        "<end_of_turn>",
        ("<start_of_turn>",),
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n{{ m.content | trim }}<end_of_turn>\n"
        "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
        ("q_proj", "k_proj", "v_proj", "o_proj"),
    ),
    "phi3": Architecture(
        "phi3",
        "<s>",
        "<|endoftext|>",
        "<|end|>",
        ("<|user|>", "<|assistant|>"),
        "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% else %}{{ eos_token }}{% endif %}",
        ("qkv_proj", "o_proj"),
    ),
    "gpt2": Architecture(
        "gpt2", None, "<|endoftext|>", "<|im_end|>", ("<|im_start|>",), _CHATML, ("c_attn", "attn.c_proj")
    ),
    "gpt_neox": Architecture(
        "gpt_neox",
        None,
        "<|endoftext|>",
        "<|im_end|>",
        ("<|im_start|>",),
        _CHATML,
        ("query_key_value", "attention.dense"),
    ),
}

_CORPUS = [
    "Annual leave is 25 days for every employee, approved by the line manager.",
    "Expense claims above 500 euros need the finance director's approval within 30 days.",
    "Customer data is kept for six years and deleted after the retention period ends.",
    "Passwords are changed every 90 days; multi-factor sign-in is required for remote access.",
]


def build_tokenizer(arch: Architecture, vocab_size: int = 320) -> Any:
    """A byte-level BPE tokenizer trained on a few policy sentences, with the family's specials and template."""
    from transformers import PreTrainedTokenizerFast

    specials = [t for t in (arch.bos, arch.eos, arch.end_of_turn, *arch.extra_specials) if t]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(_CORPUS * 4, trainer=trainer)
    if arch.bos:  # raw text gets a BOS, as Llama's and Gemma's tokenizers add one
        backend.post_processor = processors.TemplateProcessing(
            single=f"{arch.bos} $A", special_tokens=[(arch.bos, backend.token_to_id(arch.bos))]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=arch.bos,
        eos_token=arch.eos,
        additional_special_tokens=[t for t in (arch.end_of_turn, *arch.extra_specials) if t != arch.eos],
    )
    tokenizer.chat_template = arch.chat_template
    return tokenizer


def model_config(arch: Architecture, vocab_size: int, *, bos_id: int | None, eos_id: int, hidden_size: int = 32) -> Any:
    from transformers import AutoConfig

    ids = {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": eos_id}
    if arch.model_type == "gpt2":
        shape = {"n_embd": hidden_size, "n_layer": 2, "n_head": 2, "n_positions": CONTEXT_LENGTH}
    else:
        shape = {**SHAPE, "hidden_size": hidden_size, "max_position_embeddings": CONTEXT_LENGTH}
        if arch.model_type in {"llama", "qwen2", "mistral", "gemma2"}:
            shape["num_key_value_heads"] = 1  # grouped-query attention, as the real models have
        if arch.model_type == "gemma2":
            shape["head_dim"] = hidden_size // 2
    return AutoConfig.for_model(arch.model_type, vocab_size=vocab_size, tie_word_embeddings=False, **shape, **ids)


def build_architecture(name: str, path: Path, *, seed: int = 0, hidden_size: int = 32) -> Path:
    """A model directory (random weights, tokenizer with chat template, two end tokens) at ``path``.
    Two heads of ``hidden_size / 2``: 128 gives head size 64, which vLLM's attention kernels support."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    arch = ARCHITECTURES[name]
    tokenizer = build_tokenizer(arch)
    eos_id = tokenizer.convert_tokens_to_ids(arch.eos)
    end_of_turn_id = tokenizer.convert_tokens_to_ids(arch.end_of_turn)
    bos_id = tokenizer.convert_tokens_to_ids(arch.bos) if arch.bos else None
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(
        model_config(arch, len(tokenizer), bos_id=bos_id, eos_id=eos_id, hidden_size=hidden_size),
        dtype=torch.float32,
    )
    model.generation_config = GenerationConfig(
        bos_token_id=bos_id, eos_token_id=[eos_id, end_of_turn_id], pad_token_id=eos_id
    )
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
