"""Text generation behind one small Protocol: transformers (CPU or CUDA) or vLLM (GPU, imported lazily).

Every backend returns, per prompt, the text, the mean log-probability of the generated tokens (the
answer's confidence), the latency and the number of new tokens.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Generation:
    text: str
    mean_logprob: float  # mean natural-log probability of the generated tokens (≤ 0); NaN if none
    latency_ms: float  # the prompt's share of its batch's wall time
    new_tokens: int  # generated tokens, the end-of-sequence token included


class GenerationBackend(Protocol):
    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        batch_size: int = 16,
    ) -> list[Generation]: ...


def end_token_ids(generation_config: Any, tokenizer: Any) -> list[int]:
    """Every token that ends an answer: each ``eos_token_id`` of the model's generation config (instruct
    models list several, e.g. Llama 3's ``<|end_of_text|>`` and ``<|eot_id|>``, Qwen2's ``<|im_end|>``
    and ``<|endoftext|>``), then the tokenizer's EOS. Stopping on the tokenizer's alone lets a model run
    on past its end of turn to the token cap."""
    configured = getattr(generation_config, "eos_token_id", None)
    candidates = [*(configured if isinstance(configured, (list, tuple)) else [configured]), tokenizer.eos_token_id]
    ids: list[int] = []
    for token_id in candidates:
        if token_id is not None and int(token_id) not in ids:
            ids.append(int(token_id))
    return ids


def vllm_available() -> bool:
    """vLLM is used only where it is installed and a CUDA device is present."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_backend(
    model_dir: Path,
    *,
    adapter_dir: Path | None = None,
    prefer: str = "auto",
    device: str | None = None,
    copy_bias: float | None = None,
) -> GenerationBackend:
    """A backend for the model in ``model_dir`` (plus an optional LoRA adapter).

    ``prefer``: "auto" (vLLM when importable and CUDA is present, else transformers),
    "transformers" or "vllm" (which fails clearly when vLLM cannot run here). ``copy_bias``: the
    transformers backend's push to copy from the context (default ``training.choices.COPY_BIAS``);
    the vLLM path decodes without it.
    """
    if prefer not in {"auto", "transformers", "vllm"}:
        raise ValueError(f"prefer must be auto, transformers or vllm, got {prefer!r}")
    if prefer == "vllm" or (prefer == "auto" and vllm_available()):
        from training.generation.vllm_backend import VLLMBackend

        return VLLMBackend(model_dir, adapter_dir=adapter_dir)

    import torch

    from training.generation.transformers_backend import TransformersBackend
    from training.models import load_model_dir

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    from training.choices import COPY_BIAS

    model, tokenizer = load_model_dir(model_dir, device=device, adapter_dir=adapter_dir)
    return TransformersBackend(model, tokenizer, device, copy_bias=COPY_BIAS if copy_bias is None else copy_bias)


def measure_generation_throughput(
    backend: GenerationBackend, prompts: Sequence[str], *, max_new_tokens: int = 32, batch_size: int = 16
) -> dict[str, Any]:
    """Greedy generation of ``prompts`` batched vs one prompt at a time (same backend, same prompts).

    Returns prompts/s and tokens/s of both runs, ``speedup`` = batched prompts/s ÷ sequential, and
    ``cpu_speedup``, the same ratio in CPU seconds of this process.
    A warm-up call first, so neither run pays for one-time initialisation. The two ways take turns,
    one batch of prompts at a time, in the order batched/one-by-one, then one-by-one/batched, and so
    on: on a machine shared with other work, a change of load in the middle of the measurement then
    weighs on both instead of on whichever ran second.
    """
    if not prompts:
        raise ValueError("measure_generation_throughput needs at least one prompt")
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"max_new_tokens and batch_size must be at least 1, got {max_new_tokens}, {batch_size}")
    backend.generate(list(prompts[:1]), max_new_tokens=2, batch_size=1)

    batched: list[Generation] = []
    sequential: list[Generation] = []
    batched_s = sequential_s = batched_cpu = sequential_cpu = 0.0
    chunks = [list(prompts[i : i + batch_size]) for i in range(0, len(prompts), batch_size)]
    for round_number, chunk in enumerate(chunks):
        for way in ("batched", "sequential") if round_number % 2 == 0 else ("sequential", "batched"):
            started, cpu_started = time.perf_counter(), time.process_time()
            if way == "batched":
                batched += backend.generate(chunk, max_new_tokens=max_new_tokens, batch_size=batch_size)
                batched_s += time.perf_counter() - started
                batched_cpu += time.process_time() - cpu_started
            else:
                sequential += [backend.generate([p], max_new_tokens=max_new_tokens, batch_size=1)[0] for p in chunk]
                sequential_s += time.perf_counter() - started
                sequential_cpu += time.process_time() - cpu_started

    n = len(prompts)
    return {
        "prompts": n,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "rounds": len(chunks),
        "batched_seconds": round(batched_s, 6),
        "sequential_seconds": round(sequential_s, 6),
        "batched_prompts_per_s": round(n / batched_s, 2),
        "sequential_prompts_per_s": round(n / sequential_s, 2),
        "batched_tokens_per_s": round(sum(g.new_tokens for g in batched) / batched_s, 1),
        "sequential_tokens_per_s": round(sum(g.new_tokens for g in sequential) / sequential_s, 1),
        "speedup": round(sequential_s / batched_s, 2),
        # CPU seconds of this process: on a machine shared with other work, a steadier comparison
        "cpu_speedup": round(sequential_cpu / batched_cpu, 2) if batched_cpu > 0 else None,
        "same_text": sum(a.text == b.text for a, b in zip(batched, sequential, strict=True)) / n,
        "new_tokens_per_prompt": round(sum(g.new_tokens for g in batched) / n, 2),
    }
