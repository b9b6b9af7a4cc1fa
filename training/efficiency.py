"""Efficiency figures for LoRA vs full fine-tuning: trainable share, peak training memory, step time.

    lora_share_for_config(llama_7b_config(), r=16)      # from the config alone: no weights needed
    trainable_share(model)                               # counted on a built model
    compare_lora_vs_full(model_dir, steps=4)             # measured: peak memory and step time of both
    compare_lora_vs_full(None, config=parameter_dominated_config(), batch_size=2, seq_len=64)

Two shapes are measured. On the built-in tiny model (~4M parameters, 8 × 256-token batches) the
activations dominate: weights, gradients and AdamW moments are a few tens of MiB beside hundreds of
MiB of activations, so LoRA cannot save memory there: its ratio to full fine-tuning is about 1 (1.0 to
1.25 measured with the recipe's LoRA dropout, which keeps a dropped-out copy of each adapted input for
the backward pass). That is the truth for that model, not for real deployments: at the sizes LoRA is
used for, the parameters dominate. ``parameter_dominated_config()`` is a Llama-shaped model of ~106M
parameters, randomly initialised (memory and step time do not depend on the weights' values),
trained on short sequences: full fine-tuning holds weights + gradients + two AdamW moments (16 bytes
per parameter in fp32), LoRA the frozen weights (4 bytes per parameter) plus its adapters' state.
``recipe_lora_settings()`` gives the recipe's LoRA settings (r, alpha, dropout, target modules of
``training/configs/lora.yaml``), which the bench passes to both measurements; without them the
functions here default to r=16, alpha=2·r, no dropout, q/k/v/o.

Peak memory is measured on CPU as the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs`` once the model is loaded) minus the resident set before the model was
loaded: weights, gradients, optimizer state and activations — what training adds to the runtime.
Each measurement runs in a fresh Python process, so one run's freed memory cannot hide the next
run's. On CUDA, ``torch.cuda.max_memory_allocated`` is used instead.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TrainableShare:
    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"trainable": self.trainable, "total": self.total, "share": self.share}


def trainable_share(model: Any) -> TrainableShare:
    """Trainable parameters over all parameters of a built model (e.g. a PEFT model)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return TrainableShare(trainable, total)


def llama_7b_config() -> Any:
    """A Llama-2-7B-shaped config: hidden 4096, 32 layers, 32 heads, intermediate 11008, vocab 32000."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        tie_word_embeddings=False,
    )


def _projection_shapes(config: Any) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each linear layer in one Llama decoder layer."""
    hidden = config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    intermediate = config.intermediate_size
    return {
        "q_proj": (hidden, heads * head_dim),
        "k_proj": (hidden, kv_heads * head_dim),
        "v_proj": (hidden, kv_heads * head_dim),
        "o_proj": (heads * head_dim, hidden),
        "gate_proj": (hidden, intermediate),
        "up_proj": (hidden, intermediate),
        "down_proj": (intermediate, hidden),
    }


def llama_parameter_count(config: Any) -> int:
    """Parameters of a Llama causal LM from its config (no biases, RMSNorm weights only).

    total = V·H (embeddings) + [V·H if the output head is untied] + H (final norm)
            + L · (Σ in·out over the seven projections + 2·H for the two norms)
    """
    hidden = config.hidden_size
    per_layer = sum(i * o for i, o in _projection_shapes(config).values()) + 2 * hidden
    embeddings = config.vocab_size * hidden
    head = 0 if getattr(config, "tie_word_embeddings", False) else config.vocab_size * hidden
    return embeddings + head + hidden + config.num_hidden_layers * per_layer


def lora_parameter_count(config: Any, *, r: int, target_modules: Sequence[str] = DEFAULT_TARGETS) -> int:
    """LoRA parameters: each adapted in→out projection gets A (r×in) and B (out×r): r·(in + out) per
    layer and module."""
    shapes = _projection_shapes(config)
    unknown = [m for m in target_modules if m not in shapes]
    if unknown:
        raise ValueError(f"unknown Llama projection(s) {unknown}; known: {sorted(shapes)}")
    return config.num_hidden_layers * sum(r * (shapes[m][0] + shapes[m][1]) for m in target_modules)


def lora_share_for_config(
    config: Any, *, r: int = 16, target_modules: Sequence[str] = DEFAULT_TARGETS
) -> dict[str, Any]:
    """Trainable share of LoRA on a model of this config, from the config alone.

    share = lora / (base + lora): what PEFT's ``print_trainable_parameters`` reports.
    """
    base = llama_parameter_count(config)
    lora = lora_parameter_count(config, r=r, target_modules=target_modules)
    return {"base_parameters": base, "lora_parameters": lora, "share": lora / (base + lora), "r": r}


# --------------------------------------------------------------------------- measured: memory and time


PARAMETER_DOMINATED_SHAPE = "Llama ~106M"


def parameter_dominated_config() -> dict[str, Any]:
    """LlamaConfig keywords of a ~106M-parameter Llama (Llama-2's 32k vocabulary, hidden 768, 8 layers,
    head size 64): large enough that the weights, not the activations of a short batch, dominate
    training memory, small enough to train a few steps on CPU in well under a minute (~1.7 GiB for
    full fine-tuning's weights, gradients and AdamW moments)."""
    return {
        "vocab_size": 32000,
        "hidden_size": 768,
        "intermediate_size": 2048,
        "num_hidden_layers": 8,
        "num_attention_heads": 12,
        "num_key_value_heads": 12,
        "max_position_embeddings": 512,
        "tie_word_embeddings": False,
    }


def recipe_lora_settings() -> dict[str, Any]:
    """r, alpha, dropout and target modules of the LoRA recipe's packaged config (lora.yaml); targets
    given as ``auto`` are named as auto resolves them on the Llama shapes measured here."""
    from training.config import load_config
    from training.models.targets import ATTENTION_TARGETS, is_auto

    lora = load_config().lora
    targets = list(ATTENTION_TARGETS["llama"]) if is_auto(lora.target_modules) else list(lora.target_modules)
    return {"r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout, "target_modules": targets}


def expected_state_bytes(total: int, trainable: int, *, bytes_per_value: int = 4) -> int:
    """Weights of every parameter plus, for each trainable one, its gradient and AdamW's two moments:
    the memory training must hold besides activations (``4·total + 12·trainable`` bytes in fp32)."""
    return bytes_per_value * (total + 3 * trainable)


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _warm_up(torch: Any, device: str) -> None:
    """Load the libraries and kernels a training step touches, on a model a few KiB large, so
    that their one-time memory is not counted as the measured model's."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.recipes.lora_finetune import apply_lora

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    for lora in (False, True):
        model: Any = LlamaForCausalLM(config)
        model = model.to(device)
        if lora:
            model = apply_lora(model, r=2, alpha=4, dropout=0.0, target_modules=DEFAULT_TARGETS)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        batch = torch.randint(0, 64, (2, 8)).to(device)
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        del model, optimizer, batch


def _measure_in_this_process(
    model_dir: str | None,
    *,
    lora: bool,
    steps: int,
    batch_size: int,
    seq_len: int,
    r: int,
    device: str,
    threads: int,
    config: dict[str, Any] | None = None,
    alpha: int | None = None,
    dropout: float = 0.0,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
    gradient_checkpointing: bool = False,
) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    on_cuda = device == "cuda"
    _warm_up(torch, device)
    rss_before = _status_kib("VmRSS") * 1024
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    model: Any
    if model_dir is not None:
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
        model = model.to(device)
    else:  # a randomly initialised Llama of the given shape, built directly on the device
        with torch.device(device):
            model = LlamaForCausalLM(LlamaConfig(**(config or {})))
    if gradient_checkpointing:
        from training.models.loading import set_gradient_checkpointing

        set_gradient_checkpointing(model, True)
    if lora:
        from training.recipes.lora_finetune import apply_lora

        model = apply_lora(
            model, r=r, alpha=alpha if alpha is not None else 2 * r, dropout=dropout, target_modules=target_modules
        )
    model.train()
    counts = trainable_share(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = int(model.config.vocab_size)
    batch = torch.randint(0, vocab, (batch_size, seq_len), generator=torch.Generator().manual_seed(0)).to(device)
    rss_model = _status_kib("VmRSS") * 1024
    peak_reset = _reset_peak_rss()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if on_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer_state = sum(
        t.numel() * t.element_size() for state in optimizer.state.values() for t in state.values() if t.dim() > 0
    )
    if on_cuda:
        peak = torch.cuda.max_memory_allocated() - cuda_before
        method = "torch.cuda.max_memory_allocated"
    else:
        peak = _status_kib("VmHWM") * 1024 - rss_before
        method = "VmHWM - VmRSS before loading" if peak_reset else "VmHWM (not reset) - VmRSS before loading"
    return {
        "mode": "lora" if lora else "full",
        "device": device,
        "trainable": counts.trainable,
        "total": counts.total,
        "share": counts.share,
        "peak_training_bytes": int(peak),
        # what the tensors themselves hold (exact, independent of the allocator): weights, gradients of
        # the trainable parameters (kept until zero_grad; freed here, so counted as their size), AdamW state
        "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "gradient_bytes": sum(p.numel() * p.element_size() for p in trainable),
        "optimizer_state_bytes": int(optimizer_state),
        "model_loaded_bytes": int(rss_model - rss_before) if not on_cuda else None,
        # the first step also allocates the optimizer state: time the steady state
        "step_seconds": statistics.median(times[1:] if len(times) > 1 else times),
        "steps": steps,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "memory_method": method,
        "gradient_checkpointing": gradient_checkpointing,
        "lora_settings": {
            "r": r,
            "alpha": alpha if alpha is not None else 2 * r,
            "dropout": dropout,
            "target_modules": list(target_modules),
        }
        if lora
        else None,
        "threads": threads,
    }


def measure_training(
    model_dir: Path | None,
    *,
    lora: bool,
    config: dict[str, Any] | None = None,
    steps: int = 4,
    batch_size: int = 8,
    seq_len: int = 256,
    r: int = 16,
    alpha: int | None = None,
    dropout: float = 0.0,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
    device: str = "cpu",
    threads: int = 2,
    timeout_s: float = 600,
    gradient_checkpointing: bool = False,
) -> dict[str, Any]:
    """Train ``steps`` steps of LoRA (``lora=True``) or full fine-tuning in a fresh process and
    return its trainable share, peak training memory and median step time. The model is loaded
    from ``model_dir``, or (``model_dir=None``) built randomly from ``config`` (LlamaConfig keywords).
    LoRA: rank ``r``, scaling ``alpha`` (default 2·r), ``dropout`` on ``target_modules``; gradient
    checkpointing if asked."""
    if model_dir is None and not config:
        raise ValueError("measure_training needs a model directory or a config")
    if steps < 1 or batch_size < 1 or seq_len < 2 or r < 1 or threads < 1:
        raise ValueError(
            f"measure_training needs steps, batch_size, r, threads ≥ 1 and seq_len ≥ 2; got steps={steps}, "
            f"batch_size={batch_size}, seq_len={seq_len}, r={r}, threads={threads}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    args = {
        "model_dir": str(model_dir) if model_dir is not None else None,
        "config": config,
        "lora": lora,
        "steps": steps,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "r": r,
        "alpha": alpha,
        "dropout": dropout,
        "target_modules": list(target_modules),
        "device": device,
        "threads": threads,
        "gradient_checkpointing": gradient_checkpointing,
    }
    code = (
        "import json, sys; from training.efficiency import _measure_in_this_process as m; "
        "print('RESULT ' + json.dumps(m(**json.loads(sys.argv[1]))))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(  # our own interpreter running our own module
        [sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, timeout=timeout_s, env=env
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise RuntimeError(f"training measurement failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def compare_lora_vs_full(
    model_dir: Path | None,
    *,
    config: dict[str, Any] | None = None,
    steps: int = 4,
    batch_size: int = 8,
    seq_len: int = 256,
    r: int = 16,
    alpha: int | None = None,
    dropout: float = 0.0,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
    device: str = "cpu",
    threads: int = 2,
) -> dict[str, Any]:
    """LoRA and full fine-tuning of the same model on the same batch with the same optimizer (AdamW):
    both measurements and the ratios (LoRA ÷ full) of peak training memory and step time."""
    common = {
        "config": config,
        "steps": steps,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "r": r,
        "alpha": alpha,
        "dropout": dropout,
        "target_modules": target_modules,
        "device": device,
        "threads": threads,
    }
    full = measure_training(model_dir, lora=False, **common)  # type: ignore[arg-type]
    lora = measure_training(model_dir, lora=True, **common)  # type: ignore[arg-type]
    return {
        "lora": lora,
        "full": full,
        "memory_ratio": lora["peak_training_bytes"] / full["peak_training_bytes"],
        "step_time_ratio": lora["step_seconds"] / full["step_seconds"],
        "lora_share": lora["share"],
        "expected_state_ratio": expected_state_bytes(lora["total"], lora["trainable"])
        / expected_state_bytes(full["total"], full["trainable"]),
    }


# The parameter-dominated measurement: 2 × 64 tokens, 3 steps (the step time is the median of the
# last two). About 1.9 GiB peak for full fine-tuning, and 1–2 minutes for both runs on two loaded cores.
PARAMETER_DOMINATED_STEPS = 3
PARAMETER_DOMINATED_BATCH = 2
PARAMETER_DOMINATED_SEQ_LEN = 64


def compare_at_parameter_dominated_shape(*, device: str = "cpu", threads: int = 2) -> dict[str, Any]:
    """``compare_lora_vs_full`` on the randomly initialised ~106M Llama of ``parameter_dominated_config``
    with the recipe's LoRA settings (r, alpha, dropout, target modules) and AdamW for both."""
    return compare_lora_vs_full(
        None,
        config=parameter_dominated_config(),
        steps=PARAMETER_DOMINATED_STEPS,
        batch_size=PARAMETER_DOMINATED_BATCH,
        seq_len=PARAMETER_DOMINATED_SEQ_LEN,
        device=device,
        threads=threads,
        **recipe_lora_settings(),
    )
