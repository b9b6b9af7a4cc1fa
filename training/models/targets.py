"""Which layers get a LoRA adapter: ``lora.target_modules: auto`` picks the attention projections by
architecture, fused ones included; an explicit list is checked against the model's layers.

Attention projections only (queries, keys, values and the output projection), so an adapter stays
small and vLLM can serve it. Names follow PEFT's matching: a target is a module's last name or a
dotted suffix of its full name, so ``attn.c_proj`` picks GPT-2's attention output and leaves the MLP's
``mlp.c_proj`` alone. Adaptable layers are ``nn.Linear``, GPT-2's ``Conv1D`` (PEFT adapts it with
``fan_in_fan_out``) and bitsandbytes' 4-bit ``Linear4bit`` (QLoRA).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audit.errors import ValidationError

AUTO = "auto"
ADAPTABLE_LAYER_TYPES = frozenset({"Linear", "Conv1D", "Linear4bit", "Linear8bitLt"})

_SEPARATE_QKV = ("q_proj", "k_proj", "v_proj", "o_proj")
# model_type → attention projections. Architectures not listed fall back to the first of
# FALLBACK_TARGETS whose every name is in the model.
ATTENTION_TARGETS: dict[str, tuple[str, ...]] = {
    **{
        model_type: _SEPARATE_QKV
        for model_type in (
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen2_moe",
            "qwen3",
            "qwen3_moe",
            "gemma",
            "gemma2",
            "gemma3_text",
            "olmo",
            "olmo2",
            "granite",
            "starcoder2",
            "stablelm",
            "cohere",
        )
    },
    "phi": ("q_proj", "k_proj", "v_proj", "dense"),  # Phi-1/2: the output projection is called dense
    "phi3": ("qkv_proj", "o_proj"),  # one fused query/key/value projection
    "gpt2": ("c_attn", "attn.c_proj"),  # Conv1D layers; mlp.c_proj is not attention
    "gpt_neox": ("query_key_value", "attention.dense"),
    "falcon": ("query_key_value", "self_attention.dense"),
    "gpt_bigcode": ("c_attn", "attn.c_proj"),
    "bloom": ("query_key_value", "self_attention.dense"),
}
FALLBACK_TARGETS: tuple[tuple[str, ...], ...] = (
    _SEPARATE_QKV,
    ("qkv_proj", "o_proj"),
    ("query_key_value", "dense"),
    ("c_attn", "attn.c_proj"),
    ("q_proj", "k_proj", "v_proj", "out_proj"),
)


def is_auto(target_modules: Sequence[str]) -> bool:
    return list(target_modules) == [AUTO]


def adaptable_module_names(model: Any) -> list[str]:
    """Full names of the layers a LoRA adapter can wrap (the output head excluded)."""
    return [
        name
        for name, module in model.named_modules()
        if type(module).__name__ in ADAPTABLE_LAYER_TYPES and name.rsplit(".", 1)[-1] != "lm_head"
    ]


def _matches(target: str, names: Sequence[str]) -> bool:
    return any(name == target or name.endswith("." + target) for name in names)


def resolve_target_modules(model: Any, target_modules: Sequence[str]) -> list[str]:
    """The target names for ``model``: its architecture's attention projections for ``["auto"]``,
    else ``target_modules`` itself once every name is found among its adaptable layers."""
    names = adaptable_module_names(model)
    leaf_names = sorted({n.rsplit(".", 1)[-1] for n in names})
    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", "") or "")
    if is_auto(target_modules):
        candidates = [ATTENTION_TARGETS[model_type]] if model_type in ATTENTION_TARGETS else list(FALLBACK_TARGETS)
        for candidate in candidates:
            if all(_matches(t, names) for t in candidate):
                return list(candidate)
        raise ValidationError(
            f"lora.target_modules: auto does not know the attention projections of model type {model_type!r} "
            f"(its linear layers: {', '.join(leaf_names)}); name them, e.g. lora.target_modules=q_proj,v_proj"
        )
    missing = [t for t in target_modules if not _matches(t, names)]
    if missing:
        raise ValidationError(
            f"lora.target_modules: {', '.join(missing)} not found in the base model "
            f"(its linear layers: {', '.join(leaf_names)}; or use lora.target_modules=auto)"
        )
    return list(target_modules)


def stores_weights_transposed(model: Any, target_modules: Sequence[str]) -> bool:
    """Whether the targets are ``Conv1D`` layers (GPT-2), whose weights are stored (in, out)."""
    names = [n for n in adaptable_module_names(model) if any(_matches(t, [n]) for t in target_modules)]
    modules = dict(model.named_modules())
    return any(type(modules[n]).__name__ == "Conv1D" for n in names)
