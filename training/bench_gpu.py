"""LoRA at real shapes on one GPU, random weights: tokens/s and peak memory, beside the estimate.

    python -m training.bench_gpu                 # all runs, JSON lines on stdout (about 5 minutes on one H100/H200)
    python -m training.bench_gpu --runs lora-1b  # one run

Runs (bf16 weights, sequence 2,048, batch 1, AdamW; LoRA r=16 on q/k/v/o with gradient checkpointing):
``lora-1b`` and ``lora-8b`` (Llama 3.2 1B and Llama 3 8B shapes), and ``full-1b``, full fine-tuning of
the 1B (every weight trained in bf16, AdamW's moments in bf16 too, checkpointing on) for comparison. Each run:
two warm-up steps, then ``--steps`` timed steps; peak memory is ``torch.cuda.max_memory_allocated``
over the whole run, next to ``training.memory.estimate_training_memory`` for the same setting (LoRA
runs only: the estimate covers LoRA). Weights are random (memory and speed do not depend on their
values), so nothing is downloaded. Needs CUDA; exits with a message where there is none.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

SHAPES: dict[str, dict[str, Any]] = {
    "1b": {
        "vocab_size": 128256,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 8192,
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
    },
    "8b": {
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 8192,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
    },
}
RUNS = {"lora-1b": ("1b", True), "lora-8b": ("8b", True), "full-1b": ("1b", False)}
SEQ_LEN = 2048
LORA_R = 16
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def run(name: str, *, steps: int, seq_len: int) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from training.memory import estimate_training_memory
    from training.models.loading import set_gradient_checkpointing
    from training.recipes.lora_finetune import apply_lora

    shape, lora = RUNS[name]
    config = LlamaConfig(**SHAPES[shape])
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with torch.device("cuda"):  # built on the GPU in bf16 directly: no float32 copy of 8B weights
        model: Any = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    set_gradient_checkpointing(model, True)
    if lora:
        model = apply_lora(model, r=LORA_R, alpha=2 * LORA_R, dropout=0.05, target_modules=TARGETS)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4 if lora else 1e-5)
    batch = torch.randint(0, config.vocab_size, (1, seq_len), device="cuda")
    model.train()
    times = []
    for step in range(steps + 2):
        torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= 2:
            times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() - before
    result: dict[str, Any] = {
        "run": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "seq_len": seq_len,
        "steps": steps,
        "tokens_per_s": round(seq_len * len(times) / sum(times), 1),
        "step_seconds": round(sum(times) / len(times), 3),
        "peak_bytes": int(peak),
        "peak_gib": round(peak / 2**30, 2),
        "device": torch.cuda.get_device_name(),
    }
    if lora:
        estimate = estimate_training_memory(
            config,
            dtype="bfloat16",
            quantization="none",
            gradient_checkpointing=True,
            r=LORA_R,
            target_modules=TARGETS,
            lora_dropout=0.05,
            batch_size=1,
            seq_len=seq_len,
            device="cuda",
        )
        # the estimate's CUDA overhead (context, workspaces) is not in max_memory_allocated
        tensors = estimate.peak_bytes - estimate.overhead_bytes
        result["estimated_peak_bytes"] = tensors
        result["estimate_over_measured"] = round(tensors / peak, 3)
    del model, optimizer, batch
    torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, from {', '.join(RUNS)}")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per run (after two warm-up steps)")
    parser.add_argument("--seq-len", type=int, default=SEQ_LEN)
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("training.bench_gpu needs a CUDA GPU; none is available here", file=sys.stderr)
        return 2
    for name in args.runs.split(","):
        if name not in RUNS:
            parser.error(f"unknown run {name!r} (known: {', '.join(RUNS)})")
        print(json.dumps(run(name, steps=args.steps, seq_len=args.seq_len)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
