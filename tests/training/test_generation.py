"""Generation backends: batching does not change greedy output; confidence is the real mean log-prob."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from audit.demo.corpus import build_corpus
from training.generation import Generation, choose_backend, measure_generation_throughput, vllm_available
from training.generation.transformers_backend import (
    TRIMMED_SDPA,
    TransformersBackend,
    _TrimmedSDPA,
    keep_freed_memory,
)
from training.models import load_model_dir
from training.prompts import build_prompt
from training.retrieval import Retriever


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> TransformersBackend:
    model, tokenizer = load_model_dir(tiny_model_dir)
    return TransformersBackend(model, tokenizer, "cpu")


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    corpus = build_corpus(7)
    retriever = Retriever.from_documents(corpus.documents)
    questions = [g.question for g in corpus.gold[::25]]  # six questions of different lengths
    return [build_prompt(q, hits) for q, hits in zip(questions, retriever.search_many(questions, 2), strict=True)]


def test_batched_greedy_generation_equals_one_by_one(backend: TransformersBackend, prompts: list[str]) -> None:
    tokenizer = backend.tokenizer
    assert len({len(tokenizer(p)["input_ids"]) for p in prompts}) > 1  # left padding is really exercised
    batched = backend.generate(prompts, max_new_tokens=12, batch_size=4)
    one_by_one = [backend.generate([p], max_new_tokens=12, batch_size=1)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in one_by_one]
    assert [g.new_tokens for g in batched] == [g.new_tokens for g in one_by_one]
    for a, b in zip(batched, one_by_one, strict=True):
        assert a.mean_logprob == pytest.approx(b.mean_logprob, abs=1e-4)


def test_the_cpu_backend_uses_a_static_cache_with_the_same_greedy_output(
    backend: TransformersBackend, prompts: list[str]
) -> None:
    assert backend.cache_implementation == "static"  # CPU: pre-allocated, no per-step concatenation
    dynamic = TransformersBackend(backend.model, backend.tokenizer, "cpu", cache_implementation="dynamic")
    static_out = backend.generate(prompts, max_new_tokens=12, batch_size=4)
    dynamic_out = dynamic.generate(prompts, max_new_tokens=12, batch_size=4)
    assert [g.text for g in static_out] == [g.text for g in dynamic_out]
    assert [g.new_tokens for g in static_out] == [g.new_tokens for g in dynamic_out]
    for a, b in zip(static_out, dynamic_out, strict=True):
        assert a.mean_logprob == pytest.approx(b.mean_logprob, abs=1e-4)
    with pytest.raises(ValueError, match="cache_implementation"):
        TransformersBackend(backend.model, backend.tokenizer, "cpu", cache_implementation="paged")


def test_chunked_prefill_gives_the_same_output_as_the_whole_batch_at_once(
    backend: TransformersBackend, prompts: list[str]
) -> None:
    """A short prompt beside long ones: its first chunks are all padding, and it must still come out
    as it does alone and as it does with the whole batch through the model at once."""
    assert backend.prefill_chunk_tokens is not None  # on by default on CPU
    mixed = ["How long are signed contracts kept?", *prompts[:3]]
    lengths = [len(backend.tokenizer(p)["input_ids"]) for p in mixed]
    assert max(lengths) - min(lengths) > 64  # whole chunks of padding for the short one
    chunked = TransformersBackend(backend.model, backend.tokenizer, "cpu", prefill_chunk_tokens=64)  # 16 per row
    whole = TransformersBackend(backend.model, backend.tokenizer, "cpu", prefill_chunk_tokens=None)
    by_chunks = chunked.generate(mixed, max_new_tokens=12, batch_size=4)
    at_once = whole.generate(mixed, max_new_tokens=12, batch_size=4)
    alone = [whole.generate([p], max_new_tokens=12, batch_size=1)[0] for p in mixed]
    for reference in (at_once, alone):
        assert [g.text for g in by_chunks] == [g.text for g in reference]
        assert [g.new_tokens for g in by_chunks] == [g.new_tokens for g in reference]
        for a, b in zip(by_chunks, reference, strict=True):
            assert a.mean_logprob == pytest.approx(b.mean_logprob, abs=1e-4)
    for bad in (0, -5, 2.5, "many"):
        with pytest.raises(ValueError, match="prefill_chunk_tokens"):
            TransformersBackend(backend.model, backend.tokenizer, "cpu", prefill_chunk_tokens=bad)  # type: ignore[arg-type]


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (malloc.h): the allocator's own accounting, in bytes."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd")
        + ("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
    ]


def _glibc_mallinfo2() -> Any:
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = _MallInfo2
    return function


@pytest.mark.skipif(not sys.platform.startswith("linux") or _glibc_mallinfo2() is None, reason="needs glibc ≥ 2.33")
def test_on_cpu_freed_tensor_memory_stays_with_the_process_for_the_next_tensors(backend: TransformersBackend) -> None:
    """The backend tells glibc to serve blocks up to 32 MiB from its heap and to keep freed heap, so a
    forward pass's activations reuse the last one's pages (checked in glibc's own accounting: a
    mapped block would show in ``hblkhd``, heap given back would leave ``fordblks`` small)."""
    mallinfo2 = _glibc_mallinfo2()
    assert backend.keeps_freed_memory and keep_freed_memory()  # in effect, and once for the process
    mapped_before = mallinfo2().hblkhd
    activations = torch.ones(16, 64, 704)  # one of a batch's MLP activations: 2.75 MiB
    assert mallinfo2().hblkhd == mapped_before  # from the heap, not a fresh mapping
    size = activations.numel() * activations.element_size()
    del activations
    assert mallinfo2().fordblks >= size  # freed, and still the process's for the next tensor
    again = torch.ones(16, 64, 704)
    assert mallinfo2().hblkhd == mapped_before
    del again


def test_trimmed_attention_equals_sdpa_on_the_positions_a_query_can_see() -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    generator = torch.Generator().manual_seed(0)
    query = torch.randn(2, 2, 3, 8, generator=generator)
    key, value = torch.randn(2, 2, 9, 8, generator=generator), torch.randn(2, 2, 9, 8, generator=generator)
    # a static cache of 9 positions: 6 written (row 0 left-padded by 2), 3 not written yet
    columns, rows = torch.arange(9), torch.arange(3) + 3
    mask = (columns[None, :] <= rows[:, None]).expand(2, 1, 3, 9).clone()
    mask[0, :, :, :2] = False
    module = torch.nn.Module()
    trimmed = _TrimmedSDPA()
    out, _ = trimmed(module, query, key, value, mask, scaling=0.5)
    reference, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.5)
    assert trimmed._last is not None and trimmed._last[1] == 6  # the 3 unwritten positions are cut
    torch.testing.assert_close(out, reference)
    # garbage in the positions no query sees changes nothing
    key[:, :, 6:], value[:, :, 6:] = 1e6, float("nan")
    torch.testing.assert_close(trimmed(module, query, key, value, mask, scaling=0.5)[0], reference)


def test_static_cache_generation_with_trimmed_attention_equals_plain_sdpa(
    tiny_model_dir: Path, prompts: list[str]
) -> None:
    model, tokenizer = load_model_dir(tiny_model_dir)
    assert model.config._attn_implementation == "sdpa"
    backend = TransformersBackend(model, tokenizer, "cpu")
    assert backend.trimmed_attention and model.config._attn_implementation == TRIMMED_SDPA
    trimmed = backend.generate(prompts, max_new_tokens=12, batch_size=4)
    model.set_attn_implementation("sdpa")
    plain = backend.generate(prompts, max_new_tokens=12, batch_size=4)
    assert [g.text for g in trimmed] == [g.text for g in plain]
    assert [g.new_tokens for g in trimmed] == [g.new_tokens for g in plain]
    for a, b in zip(trimmed, plain, strict=True):
        assert a.mean_logprob == pytest.approx(b.mean_logprob, abs=1e-5)
    eager, _ = load_model_dir(tiny_model_dir)
    eager.set_attn_implementation("eager")
    assert not TransformersBackend(eager, tokenizer, "cpu").trimmed_attention  # other attentions stay


def test_confidence_is_the_mean_log_probability_of_the_generated_tokens(
    backend: TransformersBackend, prompts: list[str]
) -> None:
    generation = backend.generate(prompts[:1], max_new_tokens=10)[0]
    assert isinstance(generation, Generation)
    assert math.isfinite(generation.mean_logprob) and generation.mean_logprob < 0
    assert 1 <= generation.new_tokens <= 10
    assert generation.latency_ms > 0
    # reference: score prompt + generated tokens in one forward pass and average the log-probs
    tokenizer, model = backend.tokenizer, backend.model
    prompt_ids = tokenizer(prompts[0], return_tensors="pt")["input_ids"]
    greedy = model.generate(
        prompt_ids,
        attention_mask=torch.ones_like(prompt_ids),
        max_new_tokens=10,
        do_sample=False,
        top_k=None,
        top_p=None,
    )
    new_ids = greedy[0, prompt_ids.shape[1] :]
    if tokenizer.eos_token_id in new_ids.tolist():
        new_ids = new_ids[: new_ids.tolist().index(tokenizer.eos_token_id) + 1]
    full = torch.cat([prompt_ids[0], new_ids]).unsqueeze(0)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(full).logits[0, :-1].float(), dim=-1)
    targets = full[0, 1:]
    token_logprobs = logprobs[torch.arange(len(targets)), targets][prompt_ids.shape[1] - 1 :]
    assert generation.new_tokens == len(new_ids)
    assert generation.mean_logprob == pytest.approx(float(token_logprobs.mean()), abs=1e-4)


def test_sampling_is_reproducible_with_a_seed(backend: TransformersBackend, prompts: list[str]) -> None:
    first = backend.generate(prompts[:2], max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    second = backend.generate(prompts[:2], max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    greedy = backend.generate(prompts[:2], max_new_tokens=8)
    assert [g.text for g in first] == [g.text for g in second]
    assert all(math.isfinite(g.mean_logprob) and g.mean_logprob < 0 for g in first)
    # the sampled tokens are on average less likely than the greedy (most likely) ones
    assert sum(g.mean_logprob for g in first) < sum(g.mean_logprob for g in greedy)


def test_bad_generation_arguments_are_refused(backend: TransformersBackend, prompts: list[str]) -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        backend.generate(prompts[:1], max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        backend.generate(prompts[:1], max_new_tokens=4, do_sample=True, temperature=0.0)
    assert backend.generate([], max_new_tokens=4) == []


def test_choose_backend_uses_transformers_without_vllm_and_cuda(tiny_model_dir: Path) -> None:
    chosen = choose_backend(tiny_model_dir, prefer="auto", device="cpu")
    if not vllm_available():
        assert isinstance(chosen, TransformersBackend)
    with pytest.raises(ValueError, match="prefer"):
        choose_backend(tiny_model_dir, prefer="tensorrt")


def test_throughput_measure_compares_batched_with_one_by_one(backend: TransformersBackend) -> None:
    prompts = [f"Question: Who approves change number {i}?\nAnswer:" for i in range(8)]
    result = measure_generation_throughput(backend, prompts, max_new_tokens=8, batch_size=8)
    assert result["prompts"] == 8
    assert result["same_text"] == 1.0
    assert result["speedup"] == pytest.approx(result["sequential_seconds"] / result["batched_seconds"], rel=0.02)
    assert result["speedup"] > 1.0  # eight short prompts in one batch beat eight separate calls


class _RecordingBackend:
    """Answers every prompt with its own text reversed and records each call's prompts."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def generate(
        self, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int = 16, **_: Any
    ) -> list[Generation]:
        self.calls.append(list(prompts))
        return [Generation(text=p[::-1], mean_logprob=-1.0, latency_ms=1.0, new_tokens=max_new_tokens) for p in prompts]


def test_throughput_measure_takes_turns_batch_by_batch() -> None:
    fake = _RecordingBackend()
    prompts = [f"p{i}" for i in range(5)]
    result = measure_generation_throughput(fake, prompts, max_new_tokens=3, batch_size=2)
    # warm-up, then batched/one-by-one, one-by-one/batched, batched/one-by-one over the three batches
    assert fake.calls == [
        ["p0"],
        ["p0", "p1"], ["p0"], ["p1"],
        ["p2"], ["p3"], ["p2", "p3"],
        ["p4"], ["p4"],
    ]  # fmt: skip
    assert result["rounds"] == 3 and result["prompts"] == 5
    assert result["same_text"] == 1.0 and result["new_tokens_per_prompt"] == 3
    with pytest.raises(ValueError, match="at least one prompt"):
        measure_generation_throughput(fake, [], max_new_tokens=3)
    with pytest.raises(ValueError, match="batch_size"):
        measure_generation_throughput(fake, prompts, max_new_tokens=3, batch_size=0)


@pytest.mark.gpu
def test_vllm_backend_serves_the_tiny_model_with_greedy_output(tiny_model_dir: Path) -> None:
    if not vllm_available():
        pytest.skip("vLLM needs the vllm package and a CUDA GPU")
    from training.generation.vllm_backend import VLLMBackend

    vllm_backend = VLLMBackend(tiny_model_dir, gpu_memory_utilization=0.3)
    prompts = ["Question: Who approves changes?\nAnswer:", "Question: Where are documents stored?\nAnswer:"]
    generations = vllm_backend.generate(prompts, max_new_tokens=8)
    assert len(generations) == 2
    assert all(math.isfinite(g.mean_logprob) and g.mean_logprob <= 0 for g in generations)
    model, tokenizer = load_model_dir(tiny_model_dir, device="cuda")
    reference = TransformersBackend(model, tokenizer, "cuda").generate(prompts, max_new_tokens=8)
    assert [g.text for g in generations] == [g.text for g in reference]


# --------------------------------------------------------------------------- copying from the context


class _WordTokenizer:
    """One token per word: enough for ContextCopy, which reads the vocabulary's texts."""

    words = ["<pad>", "The", "policy", "is", "reviewed", "every", "6", "24", "months", ".", "(source:", ")"]

    def __len__(self) -> int:
        return len(self.words)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.words[i] for i in ids]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens)


def _ids(text: str) -> list[int]:
    return [_WordTokenizer.words.index(w) for w in text.split()]


def test_context_copy_pushes_the_token_that_continues_the_context() -> None:
    from training.generation.transformers_backend import ContextCopy

    copy = ContextCopy(_WordTokenizer(), bias=5.0, min_match=3)
    prompt = torch.tensor([[0] + _ids("The policy is reviewed every 6 months .")])
    copy.start(prompt, torch.tensor([[0] + [1] * 8]))
    scores = torch.zeros(1, len(_WordTokenizer.words))
    width = prompt.shape[1]
    sequence = prompt
    assert torch.equal(copy(sequence, scores.clone()), scores)  # the first step: nothing generated yet
    for word in ["The", "policy", "is", "reviewed", "every"]:
        sequence = torch.cat([sequence, torch.tensor([_ids(word)])], dim=1)
        out = copy(sequence, scores.clone())
    # after "... reviewed every" the context goes on with "6", not the remembered "24"
    assert out[0, _ids("6")[0]] == 5.0 and out[0, _ids("24")[0]] == 0.0
    assert int((out != 0).sum()) == 1
    assert sequence.shape[1] == width + 5
    # below min_match nothing is pushed; a sentence end resets the match
    short = ContextCopy(_WordTokenizer(), bias=5.0, min_match=3)
    short.start(prompt, torch.tensor([[0] + [1] * 8]))
    short(prompt, scores.clone())
    two = torch.cat([prompt, torch.tensor([_ids("reviewed every")])], dim=1)
    short(two[:, :-1], scores.clone())
    assert torch.equal(short(two, scores.clone()), scores)
    ended = torch.cat([sequence, torch.tensor([_ids("6 months .")])], dim=1)
    for end in range(sequence.shape[1] + 1, ended.shape[1] + 1):
        result = copy(ended[:, :end], scores.clone())
    assert torch.equal(result, scores)
