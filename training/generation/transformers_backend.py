"""Generation with a transformers causal LM on CPU or CUDA: batched with left padding, greedy or sampled."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import torch

from training.generation import Generation, end_token_ids
from training.prompts import uses_chat_template

CACHE_IMPLEMENTATIONS = ("auto", "static", "dynamic")
TRIMMED_SDPA = "auditloop_trimmed_sdpa"
# On CPU a batch's prompts go through the model this many tokens (all rows together) at a time
PREFILL_CHUNK_TOKENS = 1024


class _TrimmedSDPA:
    """transformers' SDPA attention, given only the key/value positions some query may attend to.

    A static cache holds prompt + all new tokens from the start, and the attention mask shuts the
    positions not written yet. Plain SDPA still reads them: a left-padded batch's prefill runs its
    masked flash kernel over all 264 + 32 key positions (with a mask, no causal block skipping), and
    every decoding step reads the whole cache. Here the key/value positions after the last one any
    query sees are cut off first. Exact: those columns are masked for every query of a causal decoder,
    so they add nothing to any softmax. Measured on one thread for a 16-prompt batch of 264-token
    prompts: a layer's prefill attention 25.6 → 19.0 ms, a layer's attention in a decoding step 0.43 → 0.32 ms. A single
    unpadded prompt's prefill already skips them (no mask, ``is_causal`` on the sliced keys).

    The cut is found once per forward pass (every layer gets the same mask tensor) from the last query
    row, which sees the most positions in a causal mask.
    """

    def __init__(self) -> None:
        # (mask, length) in one attribute: read and replaced whole, so threads never mix two passes'
        self._last: tuple[torch.Tensor, int] | None = None

    def _visible_length(self, mask: torch.Tensor) -> int:
        last = self._last
        if last is not None and last[0] is mask:
            return last[1]
        columns = mask[..., -1, :].reshape(-1, mask.shape[-1]).any(dim=0)
        length = mask.shape[-1] - int(columns.flip(0).int().argmax())
        self._last = (mask, length)
        return length

    def __call__(
        self,
        module: Any,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: Any,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, Any]:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        if isinstance(attention_mask, torch.Tensor) and attention_mask.dtype == torch.bool:
            length = self._visible_length(attention_mask)
            if 0 < length < key.shape[2]:
                key, value, attention_mask = key[:, :, :length], value[:, :, :length], attention_mask[..., :length]
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest on 64-bit
TRIM_THRESHOLD_BYTES = 256 << 20
_allocator_lock = threading.Lock()
_allocator_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed memory for tensors instead of returning it to the system each time.

    By default glibc maps every large block afresh (and unmaps it on free) until its adaptive threshold
    catches up, and gives the top of the heap back whenever more than ~2× that threshold is free. A
    forward pass frees its activations (megabytes each: 16 prompts × 64 tokens × 704 channels is
    2.9 MiB) and the next one allocates them again, so the kernel hands out and zeroes the same pages
    over and over, a page fault per 4 KiB; a batch's static KV cache (4 × 2 × 5.4 MiB) too. Here blocks
    below 32 MiB come from the heap, and up to 256 MiB of freed heap stays with the process (what
    PyTorch's CPU tuning guide gets from jemalloc or tcmalloc, without preloading a library).
    Measured on one thread, 16 demo prompts of ~255 tokens: a batch's prefill 512–656 → 443–474 ms
    of CPU. Process-wide and once; only where the C library has ``mallopt`` (glibc). Returns whether
    it is in effect.
    """
    global _allocator_tuned
    with _allocator_lock:
        if _allocator_tuned is None:
            _allocator_tuned = False
            if sys.platform.startswith("linux"):
                try:
                    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                    mallopt = libc.mallopt
                except (OSError, AttributeError):  # not glibc (musl has no mallopt)
                    return False
                mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
                mallopt.restype = ctypes.c_int
                _allocator_tuned = bool(
                    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                    and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
                )
        return _allocator_tuned


def _base_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT model's base


def _attention_implementation(model: Any) -> str | None:
    return getattr(getattr(_base_model(model), "config", None), "_attn_implementation", None)


def _use_trimmed_sdpa(model: Any) -> None:
    """Switch a model on transformers' SDPA attention to :class:`_TrimmedSDPA`; any other attention stays
    (as does every attention on a transformers without pluggable attention functions and masks)."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:
        return
    base = _base_model(model)
    if _attention_implementation(base) != "sdpa" or not hasattr(base, "set_attn_implementation"):
        return
    if TRIMMED_SDPA not in AttentionInterface._global_mapping:
        AttentionInterface.register(TRIMMED_SDPA, _TrimmedSDPA())
        AttentionMaskInterface.register(TRIMMED_SDPA, sdpa_mask)  # the same boolean masks as SDPA
    base.set_attn_implementation(TRIMMED_SDPA)


def _supports_static_cache(model: Any) -> bool:
    """transformers < 5 marks the architectures whose attention can use a pre-allocated cache; from 5 on
    every architecture that takes a ``Cache`` can (and generate falls back to its own cache otherwise)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT model's base
    return bool(getattr(base, "_supports_static_cache", True))


class ContextCopy:
    """A logits processor that makes the model copy from its prompt while it is following it.

    At each step it finds the longest suffix of the tokens generated so far (since the last sentence
    end) that also occurs in the prompt, and where that suffix is at least ``min_match`` tokens long
    adds ``bias`` to the logit of each token that follows an occurrence of it in the prompt. A model
    that writes "The Travel Policy is reviewed every" after a retrieved document that says "The Travel
    Policy is reviewed every 6 months" is pushed to write "6", whatever value it remembers; a model
    writing something the context does not say is left alone, and nothing carries over a sentence end.
    The longest match wins, so the document whose sentence the answer follows (title included) decides
    over others that share only its template. Match lengths are kept per prompt position and
    advanced with one vectorised comparison per step (O(prompt length)).
    """

    def __init__(self, tokenizer: Any, *, bias: float, min_match: int = 3) -> None:
        self.bias = float(bias)
        self.min_match = int(min_match)
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        texts = [tokenizer.convert_tokens_to_string([p]) if p is not None else "" for p in pieces]
        self.sentence_end = torch.tensor([t.rstrip().endswith((".", "?", "!")) for t in texts], dtype=torch.bool)
        self._prompt: torch.Tensor | None = None
        self._valid: torch.Tensor | None = None
        self._match: torch.Tensor | None = None

    def start(self, prompt_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        self._prompt = prompt_ids
        self._valid = attention_mask.bool()
        self._match = None
        self.sentence_end = self.sentence_end.to(prompt_ids.device)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        prompt, valid = self._prompt, self._valid
        if prompt is None or valid is None or self.bias == 0.0:
            return scores
        width = prompt.shape[1]
        if input_ids.shape[1] == width:  # the first step: nothing generated yet
            self._match = torch.zeros_like(prompt, dtype=torch.long)
            return scores
        assert self._match is not None
        last = input_ids[:, -1:]
        # match[j]: length of the generated suffix equal to prompt[.., j - 1] (so prompt[j] continues it)
        grown = torch.zeros_like(self._match)
        grown[:, 1:] = (self._match[:, :-1] + 1) * ((prompt[:, :-1] == last) & valid[:, :-1])
        grown[self.sentence_end[last.squeeze(1)]] = 0
        self._match = grown
        best = grown.max(dim=1).values
        rows = torch.nonzero(best >= self.min_match).flatten()
        for row in rows.tolist():
            followers = prompt[row][(grown[row] == best[row]) & valid[row]].unique()
            scores[row, followers] += self.bias
        return scores


class TransformersBackend:
    """Wraps a loaded model (optionally a PEFT model with its adapter) and its tokenizer.

    The tokenizer is switched to left padding and left truncation: generation continues from the
    end of the prompt, so padding and any cut must be at the start.

    The KV cache: on CPU a static cache, allocated once per batch for prompt + new tokens
    (``cache_implementation="static"``). transformers' default dynamic cache concatenates every
    layer's keys and values with the new token's at each step, re-copying the whole cache: at batch
    16 with ~250-token prompts on the tiny model that copy took a fifth of a batched call's CPU time
    and made a batched decoding step cost 2.6× a single prompt's (static: 1.6×). On CUDA the dynamic
    cache stays: there transformers compiles the model for a static cache, which pays off only for
    long-lived fixed shapes (serving on GPU is vLLM's job). ``cache_implementation``: "auto" (that
    choice), "static" or "dynamic".

    With a static cache, a model on transformers' SDPA attention is switched to :class:`_TrimmedSDPA`
    (the same attention without the cache positions no query sees yet); ``trimmed_attention`` says
    whether it was.

    Chunked prefill (CPU): a batch's prompts go through the model ``prefill_chunk_tokens`` tokens at a
    time, counted over all rows (transformers' ``prefill_chunk_size``: the same positions, in order,
    through the same cache, so the same output). A whole batch at once makes every activation a
    several-megabyte tensor (16 prompts × 264 tokens × 704 MLP channels: 12 MiB) that the many
    element-wise operations (norms, rotary embedding, SiLU, products) each read and write from main
    memory; in chunks of ~1,024 tokens they stay in the processor's cache. Measured on one thread, 32
    demo prompts of 242–264 tokens in batches of 16, 32 new tokens, three alternating runs: 11.7 → 14.0
    prompts/s (512 tokens: 13.5, 2,048: 12.3); one prompt at a time unchanged. A single prompt of up
    to that many tokens is not cut. ``None`` turns it off; it is off on CUDA.

    On CPU, glibc's malloc is told to keep freed memory for the next tensors (:func:`keep_freed_memory`;
    ``keeps_freed_memory`` says whether it is in effect).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: str | torch.device = "cpu",
        *,
        cache_implementation: str = "auto",
        prefill_chunk_tokens: int | None | str = "auto",
        copy_bias: float = 0.0,
    ) -> None:
        if cache_implementation not in CACHE_IMPLEMENTATIONS:
            raise ValueError(
                f"cache_implementation must be one of {', '.join(CACHE_IMPLEMENTATIONS)}, got {cache_implementation!r}"
            )
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        if cache_implementation == "auto":
            static = self.device.type == "cpu" and _supports_static_cache(model)
            cache_implementation = "static" if static else "dynamic"
        self.cache_implementation = cache_implementation
        if cache_implementation == "static":
            _use_trimmed_sdpa(self.model)
        self.trimmed_attention = _attention_implementation(self.model) == TRIMMED_SDPA
        if prefill_chunk_tokens == "auto":
            prefill_chunk_tokens = PREFILL_CHUNK_TOKENS if self.device.type == "cpu" else None
        if prefill_chunk_tokens is not None and (not isinstance(prefill_chunk_tokens, int) or prefill_chunk_tokens < 1):
            raise ValueError(
                f"prefill_chunk_tokens must be a positive whole number, None or 'auto', got {prefill_chunk_tokens!r}"
            )
        self.prefill_chunk_tokens: int | None = prefill_chunk_tokens
        self.keeps_freed_memory = self.device.type == "cpu" and keep_freed_memory()
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        # generation stops on any of these; a rendered chat template already holds its special tokens
        self.end_token_ids = end_token_ids(getattr(_base_model(model), "generation_config", None), tokenizer)
        self.add_special_tokens = not uses_chat_template(tokenizer)
        self.context_length = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        # copying from the context while following it (ContextCopy); 0 = the model's own choice alone
        self.copy = ContextCopy(tokenizer, bias=copy_bias) if copy_bias else None

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
        seed: int | None = None,
    ) -> list[Generation]:
        """Generate for every prompt, in batches of similar length (less padding); results keep the
        order of ``prompts``. ``seed`` makes sampling reproducible."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if do_sample and temperature <= 0:
            raise ValueError(f"temperature must be positive when sampling, got {temperature}")
        if not prompts:
            return []
        if seed is not None:
            torch.manual_seed(seed)
        encoded = self.tokenizer(list(prompts), add_special_tokens=self.add_special_tokens)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
        results: list[Generation | None] = [None] * len(prompts)
        for start in range(0, len(order), max(batch_size, 1)):
            indices = order[start : start + max(batch_size, 1)]
            batch = self._generate_batch([prompts[i] for i in indices], max_new_tokens, do_sample, temperature)
            for index, generation in zip(indices, batch, strict=True):
                results[index] = generation
        return [r for r in results if r is not None]

    def _generate_batch(
        self, prompts: list[str], max_new_tokens: int, do_sample: bool, temperature: float
    ) -> list[Generation]:
        started = time.perf_counter()
        encoded = self.tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_prompt_tokens(max_new_tokens),
            add_special_tokens=self.add_special_tokens,
        ).to(self.device)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_k": None, "top_p": None}
            if do_sample
            else {"do_sample": False, "temperature": None, "top_k": None, "top_p": None}
        )
        # the KV cache and how the prompts go through it
        caching: dict[str, Any] = {"cache_implementation": "static"} if self.cache_implementation == "static" else {}
        rows, length = encoded["input_ids"].shape
        if self.prefill_chunk_tokens is not None and rows * length > self.prefill_chunk_tokens:
            caching["prefill_chunk_size"] = max(self.prefill_chunk_tokens // rows, 1)
        processors: dict[str, Any] = {}
        if self.copy is not None:
            from transformers import LogitsProcessorList

            self.copy.start(encoded["input_ids"], encoded["attention_mask"])
            processors["logits_processor"] = LogitsProcessorList([self.copy])
        with torch.inference_mode():
            out = self.model.generate(
                **encoded,
                **caching,
                **processors,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.end_token_ids or None,
                return_dict_in_generate=True,
                output_logits=True,
                **sampling,
            )
        new_ids = out.sequences[:, encoded["input_ids"].shape[1] :]
        # raw logits (before temperature or other processors): the model's own probability
        logits = torch.stack(out.logits, dim=1).float()
        token_logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new_ids.unsqueeze(-1)).squeeze(-1)
        is_eos = torch.isin(new_ids, torch.tensor(self.end_token_ids, dtype=new_ids.dtype, device=new_ids.device))
        # a sequence's tokens run up to and including its first end token; later positions are padding
        generated = (torch.cumsum(is_eos.long(), dim=1) - is_eos.long()) == 0
        counts = generated.sum(dim=1)
        sums = (token_logprobs * generated).sum(dim=1)
        latency_ms = (time.perf_counter() - started) * 1000 / len(prompts)
        generations = []
        for row in range(len(prompts)):
            n = int(counts[row])
            text_ids = [t for t in new_ids[row, :n].tolist() if t not in self.end_token_ids]
            generations.append(
                Generation(
                    text=self.tokenizer.decode(text_ids, skip_special_tokens=True).strip(),
                    mean_logprob=float(sums[row]) / n if n else math.nan,
                    latency_ms=latency_ms,
                    new_tokens=n,
                )
            )
        return generations
