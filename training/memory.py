"""Know before you train: a LoRA run's parameters, trainable share and estimated peak memory, from the
model's ``config.json`` alone (the model is built on PyTorch's meta device: shapes, no weights).

    estimate = estimate_training_memory(config, dtype="bfloat16", quantization="none",
                                        gradient_checkpointing=True, r=16, target_modules=["auto"],
                                        lora_dropout=0.05, batch_size=1, seq_len=2048)
    estimate.peak_bytes

The peak is the sum of what a training step holds at the start of its backward pass:

- **weights**: every parameter in ``dtype``; with ``nf4`` the decoder's linear layers take 4 bits plus
  their double-quantized block scales (0.516 bytes per weight), the rest stays in ``dtype``;
- **adapter state**: each LoRA parameter in float32 with its gradient and AdamW's two moments, 16 bytes;
- **activations** kept for the backward pass, per token and layer (``b`` bytes per value, h hidden,
  i MLP width, a attention width): the layer's input and its post-attention sum (2h), what attention
  keeps (queries, keys and values widened to a for grouped-query attention, its output: h + 3a), the
  MLP's gate, up and activation (3i) and, with LoRA dropout, a dropped-out float32 copy of each adapted
  layer's input plus its mask (5 bytes per input value). Frozen linear layers keep nothing. Where the
  attention scores are materialized (eager attention, or SDPA on CPU, which falls back to its math
  kernel in training) four batch × heads × sequence² score tensors per layer (scores, masked,
  softmax, its float32 upcast); a CUDA SDPA kernel keeps none. With gradient checkpointing only each
  layer's input is kept, plus one layer's set while it is recomputed;
- **the output head**: batch × sequence × vocabulary logits in ``dtype``, their float32 log-softmax
  kept for the loss, and two float32 gradients of that size in the backward pass;
- on CUDA, a fixed 768 MiB **overhead**: the CUDA context (about 500 MiB with lazy module loading),
  cuBLAS workspaces and the caching allocator's slack, which a device must have free besides the
  tensors (none on CPU). A figure from experience, not measured here (this machine has no GPU).

``dry_run(cfg, settings)`` (``auditloop model train --dry-run``) applies it to a recipe configuration
and the device at hand, and says what to change when the run will not fit.

Checked against peaks measured on CPU (``training.efficiency.measure_training``,
``tests/training/test_memory.py``), within ±25%.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.models.loading import BYTES_PER_VALUE

NF4_BYTES_PER_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4 bits + an 8-bit scale per 64 + fp32 per 256 scales
ADAPTER_STATE_BYTES = 16  # float32 weight + gradient + two AdamW moments
CUDA_OVERHEAD_BYTES = 768 * 2**20
SCORE_COPIES = 4  # attention-score tensors alive per layer where scores are materialized


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    trainable_parameters: int
    target_modules: list[str]
    weight_bytes: int
    adapter_state_bytes: int
    activation_bytes: int
    logits_bytes: int
    overhead_bytes: int

    @property
    def peak_bytes(self) -> int:
        return (
            self.weight_bytes
            + self.adapter_state_bytes
            + self.activation_bytes
            + self.logits_bytes
            + self.overhead_bytes
        )

    @property
    def trainable_share(self) -> float:
        return self.trainable_parameters / self.parameters if self.parameters else 0.0


def meta_model(config: Any) -> Any:
    """The model for ``config`` on the meta device: every module and shape, no memory."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def _in_out(module: Any) -> tuple[int, int]:
    if type(module).__name__ == "Conv1D":  # GPT-2: weight stored (in, out)
        rows, columns = module.weight.shape
        return int(rows), int(columns)
    return int(module.in_features), int(module.out_features)


def _text_config(config: Any) -> Any:
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def estimate_training_memory(
    config: Any,  # a transformers config, or a model already built from it on the meta device
    *,
    dtype: str,
    quantization: str,
    gradient_checkpointing: bool,
    r: int,
    target_modules: Sequence[str],
    lora_dropout: float,
    batch_size: int,
    seq_len: int,
    device: str = "cpu",
) -> MemoryEstimate:
    """The estimated peak memory of one LoRA training step (see the module docstring)."""
    from training.models.targets import adaptable_module_names, resolve_target_modules

    model = meta_model(config) if not hasattr(config, "named_modules") else config
    config = model.config
    targets = resolve_target_modules(model, target_modules)
    modules = dict(model.named_modules())
    adaptable = adaptable_module_names(model)
    adapted = [n for n in adaptable if any(n == t or n.endswith("." + t) for t in targets)]
    lora_parameters = sum(r * sum(_in_out(modules[n])) for n in adapted)
    parameters = sum(p.numel() for p in model.parameters())

    b = BYTES_PER_VALUE[dtype]
    if quantization == "nf4":
        linear = sum(modules[n].weight.numel() for n in adaptable)
        weight_bytes = int(linear * NF4_BYTES_PER_WEIGHT + (parameters - linear) * b)
    else:
        weight_bytes = parameters * b

    text = _text_config(config)
    hidden = int(getattr(text, "hidden_size", None) or text.n_embd)
    layers = int(getattr(text, "num_hidden_layers", None) or text.n_layer)
    heads = int(getattr(text, "num_attention_heads", None) or text.n_head)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    width = int(getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * hidden)
    attention = heads * head_dim
    tokens = batch_size * seq_len
    adapted_inputs_per_layer = sum(_in_out(modules[n])[0] for n in adapted) / max(layers, 1)
    dropout_bytes = 5 * adapted_inputs_per_layer if lora_dropout > 0 else 0  # float32 copy + bool mask
    per_layer = tokens * ((2 * hidden + hidden + 3 * attention + 3 * width) * b + dropout_bytes)
    implementation = getattr(model.config, "_attn_implementation", None) or "eager"
    if device != "cuda" or implementation == "eager":
        per_layer += SCORE_COPIES * batch_size * heads * seq_len * seq_len * b
    # with checkpointing each layer keeps its input, and the layer being recomputed its full set
    kept_per_layer = tokens * hidden * b if gradient_checkpointing else per_layer
    activation_bytes = layers * kept_per_layer + (per_layer if gradient_checkpointing else 0)
    vocab = int(text.vocab_size)
    logits_bytes = tokens * vocab * (b + 3 * 4)
    return MemoryEstimate(
        parameters=parameters + lora_parameters,
        trainable_parameters=lora_parameters,
        target_modules=targets,
        weight_bytes=int(weight_bytes),
        adapter_state_bytes=lora_parameters * ADAPTER_STATE_BYTES,
        activation_bytes=int(activation_bytes),
        logits_bytes=int(logits_bytes),
        overhead_bytes=CUDA_OVERHEAD_BYTES if device == "cuda" else 0,
    )


# --------------------------------------------------------------------------- the dry run

GIB = 2**30


@dataclass(frozen=True)
class DryRun:
    """What ``auditloop model train --dry-run`` reports: the run as configured, its estimated peak, the
    device's memory, and (when it will not run or fit) why and what to change."""

    base_model: str
    model_type: str
    device: str
    dtype: str
    quantization: str
    gradient_checkpointing: bool
    batch_size: int
    seq_len: int
    lora_r: int
    estimate: MemoryEstimate
    device_memory_bytes: int
    refusal: str | None = None  # a configuration that cannot run here at all (nf4 on CPU)
    advice: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return self.refusal is None and self.estimate.peak_bytes <= self.device_memory_bytes

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "parameters": e.parameters,
            "trainable_parameters": e.trainable_parameters,
            "trainable_share": e.trainable_share,
            "estimated_peak_bytes": e.peak_bytes,
            "device": self.device,
            "dtype": self.dtype,
            "fits": self.fits,
            "device_memory_bytes": self.device_memory_bytes,
            "base_model": self.base_model,
            "model_type": self.model_type,
            "quantization": self.quantization,
            "gradient_checkpointing": self.gradient_checkpointing,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "lora_r": self.lora_r,
            "target_modules": e.target_modules,
            "breakdown_bytes": {
                "weights": e.weight_bytes,
                "adapter_state": e.adapter_state_bytes,
                "activations": e.activation_bytes,
                "logits": e.logits_bytes,
                "overhead": e.overhead_bytes,
            },
            "refusal": self.refusal,
            "advice": list(self.advice),
        }

    def text(self) -> str:
        e = self.estimate
        lines = [
            f"base model: {self.base_model} ({self.model_type})",
            f"parameters: {e.parameters:,}; trainable: {e.trainable_parameters:,} ({100 * e.trainable_share:.3f}%), "
            f"LoRA r={self.lora_r} on {', '.join(e.target_modules)}",
            f"run: {self.device}, weights in {self.dtype}"
            + (", 4-bit NF4" if self.quantization == "nf4" else "")
            + (", gradient checkpointing" if self.gradient_checkpointing else "")
            + f", batch {self.batch_size} x {self.seq_len:,} tokens",
            f"estimated peak: {e.peak_bytes / GIB:.2f} GiB = weights {e.weight_bytes / GIB:.2f} + adapter state "
            f"{e.adapter_state_bytes / GIB:.2f} + activations {e.activation_bytes / GIB:.2f} + logits "
            f"{e.logits_bytes / GIB:.2f} + overhead {e.overhead_bytes / GIB:.2f}",
            f"{self.device} memory available: {self.device_memory_bytes / GIB:.2f} GiB",
        ]
        if self.fits:
            lines.append("fits: yes")
        else:
            lines.append(f"fits: no ({self.refusal or 'the estimated peak is above the memory available'})")
            lines += [f"  change: {a}" for a in self.advice]
        return "\n".join(lines)


def device_memory_bytes(device: str) -> int:
    """Memory a run can use now: the GPU's free memory, or the machine's available RAM."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def base_model_config(spec: str) -> Any:
    """The transformers config of base model ``spec`` from its ``config.json`` (no weights read); for
    ``builtin:tiny`` the config it is built with (its vocabulary at the configured size)."""
    from transformers import AutoConfig, LlamaConfig

    from audit.errors import ConfigurationError
    from audit.settings import BUILTIN_TINY

    if spec == BUILTIN_TINY:
        from training.models.tiny import TinyModelConfig

        tiny = TinyModelConfig()
        return LlamaConfig(
            vocab_size=tiny.vocab_size,
            hidden_size=tiny.hidden_size,
            intermediate_size=tiny.intermediate_size,
            num_hidden_layers=tiny.num_layers,
            num_attention_heads=tiny.num_heads,
            num_key_value_heads=tiny.num_heads,
            max_position_embeddings=tiny.context_length,
            tie_word_embeddings=True,
        )
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigurationError(f"base model {spec!r}: not a Hugging Face model directory (no config.json)")
    try:
        return AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path / 'config.json'}: cannot read the model config ({exc})") from exc


def dry_run(cfg: Any, *, base_model: str, device: str, memory_bytes: int | None = None) -> DryRun:
    """The estimate for recipe configuration ``cfg`` (a ``RecipeConfig``) on ``device``, checked against
    ``memory_bytes`` (default: what the device has available now)."""
    from audit.errors import ValidationError
    from training.models.loading import check_quantization, resolve_dtype

    config = base_model_config(base_model)
    model = meta_model(config)
    dtype = resolve_dtype(cfg.model.dtype, device)
    refusal = None
    try:
        if cfg.model.quantization != "none" and device != "cuda":
            check_quantization(cfg.model.quantization, device)
    except ValidationError as exc:
        refusal = str(exc)

    def estimate(**changes: Any) -> MemoryEstimate:
        settings = {
            "dtype": dtype,
            "quantization": cfg.model.quantization,
            "gradient_checkpointing": cfg.train.gradient_checkpointing,
            "batch_size": cfg.train.batch_size,
            "seq_len": cfg.dataset.max_seq_len,
            **changes,
        }
        return estimate_training_memory(
            model,
            r=cfg.lora.r,
            target_modules=cfg.lora.target_modules,
            lora_dropout=cfg.lora.dropout,
            device=device,
            **settings,
        )

    current = estimate()
    available = device_memory_bytes(device) if memory_bytes is None else memory_bytes
    advice: list[str] = []
    if refusal is not None or current.peak_bytes > available:
        options: list[tuple[str, dict[str, Any]]] = []
        if not cfg.train.gradient_checkpointing:
            options.append(("train.gradient_checkpointing=true", {"gradient_checkpointing": True}))
        if device == "cuda" and dtype == "float32":
            options.append(("model.dtype=bfloat16", {"dtype": "bfloat16"}))
        if device == "cuda" and cfg.model.quantization == "none":
            options.append(("model.quantization=nf4", {"quantization": "nf4"}))
        if refusal is not None:
            options.append(("model.quantization=none", {"quantization": "none"}))
        if cfg.train.batch_size > 1:
            half = cfg.train.batch_size // 2
            options.append(
                (
                    f"train.batch_size={half} train.grad_accum_steps={cfg.train.grad_accum_steps * 2} "
                    "(the same effective batch)",
                    {"batch_size": half},
                )
            )
        if cfg.dataset.max_seq_len >= 64:
            half_len = cfg.dataset.max_seq_len // 2
            options.append((f"dataset.max_seq_len={half_len} (longer examples are cut)", {"seq_len": half_len}))
        for setting, change in options:
            peak = estimate(**change).peak_bytes
            verdict = "fits" if peak <= available else "still too large"
            advice.append(f"{setting}: estimated peak {peak / GIB:.2f} GiB ({verdict})")
    return DryRun(
        base_model=base_model,
        model_type=str(getattr(config, "model_type", "")),
        device=device,
        dtype=dtype,
        quantization=cfg.model.quantization,
        gradient_checkpointing=cfg.train.gradient_checkpointing,
        batch_size=cfg.train.batch_size,
        seq_len=cfg.dataset.max_seq_len,
        lora_r=cfg.lora.r,
        estimate=current,
        device_memory_bytes=available,
        refusal=refusal,
        advice=tuple(advice),
    )
