"""Generation with vLLM on a GPU: the base model served once, a LoRA adapter applied per request.

vLLM is imported only when this backend is built, so the rest of auditloop runs where it is not
installed. Adapters must be plain LoRA (no ``modules_to_save``, no DoRA) for vLLM to serve them.

What is sent to vLLM is built by plain functions (:func:`engine_options`, :func:`lora_request_args`,
:func:`sampling_options`, :func:`prompt_inputs`), testable where vLLM is not installed: prompts go as
token ids, tokenized as the transformers backend tokenizes them (a rendered chat template is not given
a second BOS), and generation stops on every end token of the model's generation config.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit.errors import ConfigurationError
from training.generation import Generation, end_token_ids
from training.prompts import prompt_token_ids

ADAPTER_NAME = "adapter"
ADAPTER_ID = 1


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


def engine_options(
    model_dir: Path,
    *,
    adapter_dir: Path | None = None,
    gpu_memory_utilization: float = 0.85,
    max_model_len: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM`` for the base model, with LoRA enabled for an adapter."""
    options: dict[str, Any] = {
        "model": str(model_dir),
        "tokenizer": str(model_dir),
        "seed": seed,
        "gpu_memory_utilization": gpu_memory_utilization,
    }
    if max_model_len is not None:
        options["max_model_len"] = max_model_len
    if adapter_dir is not None:
        rank = adapter_rank(adapter_dir)
        # vLLM supports ranks in powers of two from 8; round the adapter's rank up to one of them
        options.update(enable_lora=True, max_loras=1, max_lora_rank=max(8, 1 << (rank - 1).bit_length()))
    return options


def lora_request_args(adapter_dir: Path) -> tuple[str, int, str]:
    """``vllm.lora.request.LoRARequest(name, id, path)`` for the adapter."""
    return ADAPTER_NAME, ADAPTER_ID, str(adapter_dir)


def sampling_options(
    *, max_new_tokens: int, do_sample: bool, temperature: float, stop_token_ids: Sequence[int]
) -> dict[str, Any]:
    """The keyword arguments of ``vllm.SamplingParams``: greedy unless sampling, the chosen token's
    log-probability returned, and every end token of the model a stop."""
    return {
        "max_tokens": max_new_tokens,
        "temperature": temperature if do_sample else 0.0,
        "logprobs": 0,  # the chosen token's log-probability only
        "stop_token_ids": list(stop_token_ids),
    }


def prompt_inputs(tokenizer: Any, prompts: Sequence[str]) -> list[dict[str, list[int]]]:
    """vLLM token prompts (``TokensPrompt``), tokenized as the transformers backend does."""
    return [{"prompt_token_ids": prompt_token_ids(tokenizer, p)} for p in prompts]


def load_tokenizer_and_end_tokens(model_dir: Path) -> tuple[Any, list[int], int]:
    """The model's tokenizer, its end tokens (generation config + tokenizer) and its context length."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{model_dir}: cannot load the tokenizer or config ({exc})") from exc
    try:
        generation_config = GenerationConfig.from_pretrained(str(model_dir), local_files_only=True)
    except OSError:  # no generation_config.json: the tokenizer's EOS alone
        generation_config = None
    context_length = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048
    return tokenizer, end_token_ids(generation_config, tokenizer), int(context_length)


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
        self.tokenizer, self.end_token_ids, context_length = load_tokenizer_and_end_tokens(model_dir)
        self.context_length = max_model_len or context_length
        options = engine_options(
            model_dir,
            adapter_dir=adapter_dir,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            seed=seed,
        )
        self._lora = LoRARequest(*lora_request_args(adapter_dir)) if adapter_dir is not None else None
        self._llm = vllm.LLM(**options)

    def max_prompt_tokens(self, max_new_tokens: int) -> int:
        return max(self.context_length - max_new_tokens, 1)

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
            **sampling_options(
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature,
                stop_token_ids=self.end_token_ids,
            )
        )
        started = time.perf_counter()
        outputs = self._llm.generate(
            prompt_inputs(self.tokenizer, prompts), params, lora_request=self._lora, use_tqdm=False
        )
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
