"""The built-in tiny base model: a small Llama with a byte-level BPE tokenizer, both trained here.

Built from the demo company's text (documents, curated Q/A in the prompt format, counterfactual
*copy drills* that teach it to take a value from its context, and *question drills* that teach it to
find the sentence a question in an unseen phrasing is about; never the gold questions, which are the
evaluation set), deterministic for a seed, saved as a normal Hugging Face directory. Nothing is
downloaded. The default build takes about four minutes on two CPU cores.

Measured with ``python -m training.models.probe`` (the seed's 150 gold questions, base model, no
adapter, greedy; each share ±0.05–0.08 at 150 items):

| build (seed 7 / seed 13) | fact accuracy | citation accuracy | ROUGE-L |
|---|---:|---:|---:|
| no drills, 240 steps (seed 7) | 0.027 | | |
| copy drills, 240 steps (the default until 2026-12-05) | 0.087 / – | 0.027 / – | 0.31 / – |
| copy drills, 480 steps | 0.120 / 0.100 | 0.640 / 0.667 | 0.47 / 0.44 |
| copy + question drills, 480 steps (the default) | 0.133 / 0.120 | 0.733 / 0.867 | 0.54 / 0.55 |
| best-sentence baseline (no model) | 0.533 / 0.500 | = retrieval@1 | |

The 240-step build had seen 0.6 of its corpus once: twice the steps taught it to cite the document it
answers from. Question drills add 0.1–0.2 citation accuracy and ~0.1 ROUGE-L on both seeds, and
fact accuracy within the noise: the answers now name the right fact and source, with a value of
the right kind that is often not the document's (wrong value 0.3–0.37). Copying the value is the
limit now, far below the best-sentence baseline.

    from training.models.tiny import TinyModelConfig, build_tiny_model, pretraining_texts
    build_tiny_model(Path("out"), seed=7, corpus_texts=pretraining_texts(seed=7))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from training.prompts import build_prompt
from training.retrieval import Hit, Retriever

# Bump when the build procedure changes in a way that changes the weights: cached builds are keyed on it.
BUILD_FORMAT = 1
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
BUILD_INFO_FILE = "auditloop_build.json"
# Counterfactual copy drills per regular example in the pretraining corpus (see copy_drills).
COPY_VARIANTS = 2


@dataclass(frozen=True)
class TinyModelConfig:
    vocab_size: int = 4096  # BPE vocabulary trained on the corpus (specials included)
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4  # head size 64: a size every attention kernel (vLLM included) supports
    intermediate_size: int = 704  # SwiGLU width, ~2.75 × hidden as in Llama
    context_length: int = 512  # max_position_embeddings
    train_steps: int = 480  # 0.8 of the corpus's ~4,800 rows: 240 steps left it citing one document for
    # everything (gold citation accuracy 0.03 vs 0.64–0.73 at 480; the table above)
    batch_size: int = 8  # sequences per optimizer step
    sequence_length: int = 320  # row length: one prompt-formatted example (~280 tokens) fits whole
    learning_rate: float = 2e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    threads: int = 2  # torch CPU threads during the build
    # Question drills per fact in the corpus (question_drills): +0.1–0.2 gold citation accuracy at 480
    # steps on seeds 7 and 13 (the table above); 0 leaves them out.
    question_drills: int = 2

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.sequence_length > self.context_length:
            raise ValueError("sequence_length cannot exceed context_length")
        if self.vocab_size < 300:
            raise ValueError("vocab_size must exceed the 256 byte symbols plus the special tokens")


# --------------------------------------------------------------------------- corpus


def pretraining_texts(
    seed: int = 7, *, context_k: int = 2, copy_variants: int = COPY_VARIANTS, question_variants: int = 0
) -> list[str]:
    """The pretraining corpus from the demo company: every document as "title (department)" + body,
    every active curated example as prompt + completion in the fine-tuning format, its context
    retrieved from the current documents exactly as at inference, ``copy_variants`` *copy drills*
    per regular example (:func:`copy_drills`) and ``question_variants`` *question drills* per fact
    (:func:`question_drills`). Gold questions are left out."""
    from audit.demo.corpus import build_corpus

    corpus = build_corpus(seed)
    texts = [f"{d.title} ({d.department})\n{d.body}" for d in corpus.documents]
    retriever = Retriever.from_documents(corpus.documents)
    examples = [e for e in corpus.examples if getattr(e, "status", "active") == "active"]
    hits = retriever.search_many([e.question for e in examples], context_k)
    for example, context in zip(examples, hits, strict=True):
        texts.append(build_prompt(example.question, context) + " " + " ".join(example.answer.split()))
    texts += copy_drills(corpus, examples, hits, variants=copy_variants, seed=seed)
    texts += question_drills(corpus, retriever, variants=question_variants, seed=seed, context_k=context_k)
    return texts


def copy_drills(
    corpus: Any, examples: Sequence[Any], hits: Sequence[Sequence[Hit]], *, variants: int, seed: int
) -> list[str]:
    """Counterfactual copies of the regular examples, which teach the model to take the value from
    its context instead of recalling it.

    In the demo company every fact has one value, so a model can fit every example by remembering
    each document's values and ignore its context; it then has nothing to say about a fact it was
    never asked about, and it keeps repeating an old value after a document changes. A drill is an
    example whose source document states *another* valid value of the same kind, in the document
    text of the context and in the answer alike (the sentence is the same template with another
    value), so the only way to fit the drills is to copy from the context. Planted (conflicting or
    outdated) examples get no drills, nor does an example whose context passage leaves the sentence
    out (it would teach guessing); the held-out gold facts are never asked about (their slots
    have no examples), and a drill whose answer equals a gold reference answer is dropped.
    Deterministic for ``seed``.
    """
    from audit.demo.corpus import fact_kind, statement
    from audit.knowledge.hashing import normalise_text

    if variants <= 0:
        return []
    rng = random.Random(f"copy-drills-{seed}")
    documents = {d.external_id: d for d in corpus.documents}
    gold_answers = {normalise_text(g.reference_answer) for g in corpus.gold}
    drills: list[str] = []
    for example, context in zip(examples, hits, strict=True):
        if getattr(example, "planted", None) or len(example.source_document_ids) != 1:
            continue
        doc = documents.get(example.source_document_ids[0])
        if doc is None or not context or context[0].document_id != doc.external_id:
            continue  # the drill swaps the value in the top document: it must be the source
        subject = doc.title.rsplit(" ", 1)[0]
        for key, value in doc.facts.items():
            kind = fact_kind(doc.department, key)
            sentence = statement(kind, title=doc.title, subject=subject, value=value)
            if sentence in example.answer:
                break
        else:
            continue
        others = [v for v in kind.values if v != value]
        for other in rng.sample(others, min(variants, len(others))):
            swapped = statement(kind, title=doc.title, subject=subject, value=other)
            answer = " ".join(example.answer.replace(sentence, swapped).split())
            if normalise_text(answer) in gold_answers:
                continue
            top = dataclasses.replace(context[0], text=context[0].text.replace(sentence, swapped))
            prompt = build_prompt(example.question, [top, *context[1:]])
            if swapped not in prompt:
                continue  # the passage chosen for the question left the sentence out: nothing to copy
            drills.append(prompt + " " + answer)
    return drills


_QUESTION_WORD = re.compile(r"[A-Za-z][A-Za-z-]+")
_QUESTION_STOPWORD_TEXT = (
    "a an and are as at be by can do does for from has have how in is it its may must of on or our the their this "
    "to was we what when where which who with within"
)
_QUESTION_STOPWORDS = frozenset(_QUESTION_STOPWORD_TEXT.split())


def question_drills(corpus: Any, retriever: Retriever, *, variants: int, seed: int, context_k: int = 2) -> list[str]:
    """Questions written from the documents' own sentences, each answered from a counterfactual
    context: they teach the model to *find* the sentence a question is about and copy it, value and
    citation included, for phrasings it has never seen.

    The curated examples ask about each kind of fact in a few fixed phrasings, and a model fitted to
    them maps those phrasings to a sentence template; the gold questions use another phrasing, so it
    picks the wrong sentence or none (a tiny model answered 0.03 of seed 7's gold questions with the
    right citation). A question drill takes a fact sentence of a current document and asks about it
    in one of two generic forms: the sentence with its value replaced by "what" ("Documents under the
    X Policy are stored in what?"), or "What does the X Policy say about <two thirds of the sentence's
    content words>?". The context is what the retriever returns for that question, with the
    sentence's value changed to another valid value of its kind in the source document, and the
    answer is the sentence with that value and the source's citation: only reading the context fits
    it. A drill whose source document is not retrieved, or whose passage leaves the sentence out, is
    dropped. The held-out gold facts are never asked about (their sentences are skipped, and so is a
    drill whose answer equals a gold reference answer). Deterministic for ``seed``.
    """
    from audit.demo.corpus import fact_kind, grounded_answer, statement
    from audit.knowledge.hashing import normalise_text

    if variants <= 0:
        return []
    rng = random.Random(f"question-drills-{seed}")
    gold_answers = {normalise_text(g.reference_answer) for g in corpus.gold}
    gold_sentences = {normalise_text(g.reference_answer.rsplit(" (source:", 1)[0]) for g in corpus.gold}
    asked: list[tuple[str, str, str, str, str]] = []  # question, answer, source id, sentence, swapped
    for doc in corpus.documents:
        if doc.superseded_by is not None:
            continue
        subject = doc.title.rsplit(" ", 1)[0]
        for key, value in doc.facts.items():
            kind = fact_kind(doc.department, key)
            sentence = statement(kind, title=doc.title, subject=subject, value=value)
            if normalise_text(sentence) in gold_sentences or sentence not in doc.body:
                continue
            others = [v for v in kind.values if v != value]
            for other in rng.sample(others, min(variants, len(others))):
                swapped = statement(kind, title=doc.title, subject=subject, value=other)
                if rng.random() < 0.5:
                    question = swapped.replace(other, "what").rstrip(".") + "?"
                else:
                    words = [
                        w
                        for w in _QUESTION_WORD.findall(sentence)
                        if w.lower() not in _QUESTION_STOPWORDS and w not in value
                    ]
                    if len(words) > 2:  # two thirds of them, in order: the question never quotes the sentence
                        words = [words[i] for i in sorted(rng.sample(range(len(words)), max(2, len(words) * 2 // 3)))]
                    question = f"What does the {doc.title} say about {' '.join(w.lower() for w in words)}?"
                answer = grounded_answer(
                    kind, title=doc.title, subject=subject, value=other, document_id=doc.external_id
                )
                if normalise_text(answer) not in gold_answers:
                    asked.append((question, answer, doc.external_id, sentence, swapped))
    drills: list[str] = []
    contexts = retriever.search_many([question for question, *_ in asked], context_k)  # one batch
    for (question, answer, source, sentence, swapped), hits in zip(asked, contexts, strict=True):
        if source not in [h.document_id for h in hits]:
            continue
        context = [
            dataclasses.replace(h, text=h.text.replace(sentence, swapped)) if h.document_id == source else h
            for h in hits
        ]
        prompt = build_prompt(question, context)
        if swapped in prompt:  # else the passage chosen for the question left the sentence out: nothing to copy
            drills.append(prompt + " " + answer)
    return drills


def corpus_fingerprint(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def build_fingerprint(config: TinyModelConfig, seed: int, corpus_texts: Sequence[str]) -> str:
    """What a build depends on: the config, the seed, the corpus and the build procedure."""
    key = json.dumps(
        {
            "format": BUILD_FORMAT,
            "seed": seed,
            "config": dataclasses.asdict(config),
            "corpus": corpus_fingerprint(corpus_texts),
        },
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()


# --------------------------------------------------------------------------- tokenizer


def train_tokenizer(texts: Sequence[str], *, vocab_size: int, context_length: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (any input encodes; no unknown characters) trained on ``texts``."""
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=context_length,
        padding_side="left",
        truncation_side="left",
        **SPECIAL_TOKENS,
    )


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class PackedCorpus:
    input_ids: torch.Tensor  # (rows, sequence_length)
    labels: torch.Tensor  # -100 on padding
    attention_mask: torch.Tensor

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


def pack_texts(token_streams: Sequence[list[int]], *, sequence_length: int, eos_id: int, pad_id: int) -> PackedCorpus:
    """Whole texts (each ended by EOS) packed greedily into rows of ``sequence_length``; the rest of a
    row is padding. Unlike cutting one long stream, a Q/A example never straddles two rows, so the
    answer is always trained together with the context it copies from. A text longer than a row
    keeps its end (where an example's answer is)."""
    rows: list[list[int]] = []
    current: list[int] = []
    for ids in token_streams:
        text = [*ids, eos_id][-sequence_length:]
        if len(current) + len(text) > sequence_length:
            rows.append(current)
            current = []
        current = current + text
    if current:
        rows.append(current)
    input_ids = torch.full((len(rows), sequence_length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), sequence_length), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return PackedCorpus(input_ids, labels, attention_mask)


def _learning_rate(step: int, config: TinyModelConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(config.train_steps - config.warmup_steps, 1)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def build_tiny_model(
    out_dir: Path,
    *,
    seed: int = 7,
    corpus_texts: Sequence[str],
    config: TinyModelConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Train the tokenizer and pretrain the model on ``corpus_texts``; save both into ``out_dir``.

    Deterministic for (seed, config, corpus): the corpus order comes from ``random.Random(seed)``,
    the initial weights and batch order from ``torch.manual_seed(seed)``.
    """
    config = config or TinyModelConfig()
    say = progress or (lambda _message: None)
    if not corpus_texts:
        raise ValueError("build_tiny_model needs a non-empty corpus")
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        texts = list(corpus_texts)
        random.Random(seed).shuffle(texts)

        # ---- tokenizer
        tokenizer = train_tokenizer(texts, vocab_size=config.vocab_size, context_length=config.context_length)
        streams = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]  # long texts are cut below
        data = pack_texts(
            streams,
            sequence_length=config.sequence_length,
            eos_id=tokenizer.eos_token_id,
            pad_id=tokenizer.pad_token_id,
        )
        rows = len(data.input_ids)
        say(f"tokenizer: {len(tokenizer)} tokens; corpus: {data.tokens:,} tokens in {rows} sequences")

        # ---- model
        torch.manual_seed(seed)
        model_config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_heads,
            max_position_embeddings=config.context_length,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = LlamaForCausalLM(model_config)
        model.train()
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.learning_rate, betas=(0.9, 0.95), weight_decay=config.weight_decay
        )
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(rows, generator=generator)
        position = 0
        loss_value = math.nan
        for step in range(config.train_steps):
            if position + config.batch_size > rows:  # next epoch, a new order
                order, position = torch.randperm(rows, generator=generator), 0
            batch = order[position : position + config.batch_size]
            position += config.batch_size
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(step, config)
            loss = model(
                input_ids=data.input_ids[batch], attention_mask=data.attention_mask[batch], labels=data.labels[batch]
            ).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_value = float(loss.detach())
            if (step + 1) % 25 == 0 or step + 1 == config.train_steps:
                elapsed = time.perf_counter() - started
                say(f"step {step + 1}/{config.train_steps} loss {loss_value:.3f} ({elapsed:.0f} s)")

        # ---- save
        model.eval()
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            do_sample=False,
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        info: dict[str, Any] = {
            "builder": "auditloop builtin:tiny",
            "format": BUILD_FORMAT,
            "seed": seed,
            "config": dataclasses.asdict(config),
            "fingerprint": build_fingerprint(config, seed, corpus_texts),
            "corpus_texts": len(texts),
            "corpus_tokens": data.tokens,
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": round(loss_value, 4),
            "build_seconds": round(time.perf_counter() - started, 1),
        }
        (out_dir / BUILD_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        say(f"saved to {out_dir} ({info['parameters']:,} parameters, loss {loss_value:.3f}, {info['build_seconds']} s)")
        return out_dir
    finally:
        torch.set_num_threads(previous_threads)
