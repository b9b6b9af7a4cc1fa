"""Generation with vLLM on a GPU: the base model served once, a LoRA adapter applied per request.

vLLM is imported only when this backend is built, so the rest of auditloop runs where it is not
installed. Adapters must be plain LoRA (no ``modules_to_save``, no DoRA) for vLLM to serve them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit.errors import ConfigurationError
from training.generation import Generation


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ConfigurationError(
            "the vLLM backend needs the vllm package and a CUDA GPU (pip install 'auditloop[vllm]')"
        ) from exc
    return vllm


def adapter_rank(adapter_dir: Path) -> int:
    """The LoRA rank recorded in the adapter's ``adapter_config.json`` (vLLM must be told the maximum)."""
    config_path = adapter_dir / "adapter_config.json"
    try:
        return int(json.loads(config_path.read_text())["r"])
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigurationError(f"{config_path}: not a readable LoRA adapter config ({exc})") from exc


class VLLMBackend:
    def __init__(
        self,
        model_dir: Path,
        *,
        adapter_dir: Path | None = None,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        seed: int = 0,
    ) -> None:
        vllm = _import_vllm()
        from vllm.lora.request import LoRARequest

        self._vllm = vllm
        options: dict[str, Any] = {
            "model": str(model_dir),
            "tokenizer": str(model_dir),
            "seed": seed,
            "gpu_memory_utilization": gpu_memory_utilization,
        }
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        self._lora = None
        if adapter_dir is not None:
            rank = adapter_rank(adapter_dir)
            # vLLM supports ranks in powers of two from 8; round the adapter's rank up to one of them
            options.update(enable_lora=True, max_loras=1, max_lora_rank=max(8, 1 << (rank - 1).bit_length()))
            self._lora = LoRARequest("adapter", 1, str(adapter_dir))
        self._llm = vllm.LLM(**options)

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        batch_size: int = 16,
    ) -> list[Generation]:
        """vLLM schedules its own batches (continuous batching), so ``batch_size`` is not used."""
        params = self._vllm.SamplingParams(
            max_tokens=max_new_tokens,
            temperature=temperature if do_sample else 0.0,
            logprobs=0,  # the chosen token's log-probability only
        )
        started = time.perf_counter()
        outputs = self._llm.generate(list(prompts), params, lora_request=self._lora, use_tqdm=False)
        latency_ms = (time.perf_counter() - started) * 1000 / max(len(prompts), 1)
        generations = []
        for output in outputs:
            completion = output.outputs[0]
            n = len(completion.token_ids)
            total = completion.cumulative_logprob
            if total is None and completion.logprobs:
                steps = zip(completion.logprobs, completion.token_ids, strict=True)
                total = sum(step[token].logprob for step, token in steps)
            generations.append(
                Generation(
                    text=completion.text.strip(),
                    mean_logprob=float(total) / n if n and total is not None else math.nan,
                    latency_ms=latency_ms,
                    new_tokens=n,
                )
            )
        return generations
