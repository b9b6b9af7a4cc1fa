"""The one prompt format: retrieved context, then the question, then "Answer:".

Pretraining of the built-in tiny model, LoRA fine-tuning and generation all use these functions, so
the model always sees the same layout. Context is cut to the sentences that share the most words
with the question, so the fact an answer needs usually survives the length budget, and they come
most related first, so the sentence the answer copies usually opens the document's passage.

A model whose tokenizer carries a chat template (an instruct model) gets the same context and
question as one user message rendered through its template, with the assistant's turn opened
(:func:`chat_prompt`); the answer it is trained on ends with the template's end-of-turn text. The
context goes in the user message, not a system message: some templates (Gemma's) refuse a system
role, and the context belongs to this question. Whether a tokenizer has a template decides it, in
training, evaluation, ``auditloop answer`` and vLLM alike, because all of them build prompts with
:func:`fit_prompt` and tokenize them with :func:`prompt_token_ids`. A rendered template already holds
its special tokens (e.g. a BOS), so it is tokenized without adding them again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

# About 300 tokens of a BPE vocabulary trained on English policy text: with a question and a
# 64-token answer this stays inside the tiny model's 512-token window.
DEFAULT_CONTEXT_CHARS = 1200
ANSWER_CUE = "Answer:"
# How a document's selected sentences are laid out in the context: "relevance" (the sentence most
# related to the question first; what the model is built, trained and served with) or "document" (their
# order in the document). With relevance order the seed-7 base model states the gold value for 0.53 of
# its 150 gold questions, against 0.19 in document order (python -m training.models.probe --seed 7
# [--passage-order document]). Changing it changes the pretraining corpus, so base models rebuild.
PASSAGE_ORDER: Literal["relevance", "document"] = "relevance"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
# Words that say nothing about which sentence holds the fact.
_STOPWORD_TEXT = (
    "a an and are as at be by can do does for from has have how i in is it its may must of on or our the their there "
    "this to was we what when where which who why will with within you your"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class ContextDocument(Protocol):
    """What a prompt needs of a retrieved document (``training.retrieval.Hit`` is one)."""

    @property
    def document_id(self) -> str: ...
    @property
    def department(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...


def _words(text: str) -> set[str]:
    """Content words, with a plural or third-person "s" cut so "documents" meets "document"."""
    words = set()
    for word in _WORD.findall(text.lower()):
        if word not in _STOPWORDS:
            words.add(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return words


def select_passage(question: str, text: str, max_chars: int) -> str:
    """The sentences of ``text`` most related to ``question`` (word overlap), most related first,
    within ``max_chars``. Ties keep the earlier sentence, so the result is deterministic."""
    text = " ".join(text.split())
    if len(text) <= max_chars and PASSAGE_ORDER == "document":
        return text
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    sentence_words = [_words(s) for s in sentences]
    # a word found in few of this document's sentences points at the fact more than the title words,
    # which appear everywhere: weigh each shared word by its inverse sentence frequency
    frequency: dict[str, int] = {}
    for words in sentence_words:
        for word in words:
            frequency[word] = frequency.get(word, 0) + 1
    question_words = _words(question)

    def relevance(i: int) -> float:
        # summed in sorted order: set order changes with the process's hash seed, and a float sum in
        # another order can break a tie the other way (the pretraining corpus must not change)
        shared = sorted(question_words & sentence_words[i])
        return sum(math.log(1 + len(sentences) / frequency[w]) for w in shared)

    ranked = sorted(range(len(sentences)), key=lambda i: (-relevance(i), i))
    chosen: list[int] = []
    used = 0
    for index in ranked:
        cost = len(sentences[index]) + (1 if chosen else 0)
        if used + cost <= max_chars:
            chosen.append(index)
            used += cost
    if not chosen:  # a single sentence longer than the budget: keep its beginning
        return sentences[ranked[0]][: max(max_chars - 3, 0)].rstrip() + "..."
    return " ".join(sentences[i] for i in (sorted(chosen) if PASSAGE_ORDER == "document" else chosen))


def _budgets(total: int, n: int) -> list[int]:
    """The best-ranked document gets half the budget (it usually holds the answer); the rest share."""
    if n == 1:
        return [total]
    rest = total // 2 // (n - 1)
    return [total - rest * (n - 1)] + [rest] * (n - 1)


def _context_and_question(question: str, context_docs: Sequence[ContextDocument], max_context_chars: int) -> list[str]:
    lines = ["Context:"]
    if not context_docs:
        lines.append("(no documents found)")
    for doc, budget in zip(context_docs, _budgets(max_context_chars, max(len(context_docs), 1)), strict=False):
        passage = select_passage(question, doc.text, budget)
        lines.append(f"[{doc.document_id}] {doc.title} ({doc.department}): {passage}")
    return [*lines, "", f"Question: {' '.join(question.split())}"]


def build_prompt(
    question: str, context_docs: Sequence[ContextDocument], *, max_context_chars: int = DEFAULT_CONTEXT_CHARS
) -> str:
    """The prompt for ``question`` with the retrieved documents (best first) as context.

    Layout::

        Context:
        [LEG-004@v2] Data Retention Policy (Legal): <the most relevant sentences>
        ...

        Question: <question>
        Answer:
    """
    return "\n".join([*_context_and_question(question, context_docs, max_context_chars), ANSWER_CUE])


def uses_chat_template(tokenizer: Any) -> bool:
    """Prompts go through the tokenizer's chat template when it has one (instruct models)."""
    return bool(getattr(tokenizer, "chat_template", None))


def chat_prompt(
    tokenizer: Any,
    question: str,
    context_docs: Sequence[ContextDocument],
    *,
    max_context_chars: int = DEFAULT_CONTEXT_CHARS,
) -> str:
    """The context and question (the layout of :func:`build_prompt` without "Answer:") as one user
    message through the tokenizer's chat template, ending where the assistant's answer begins."""
    content = "\n".join(_context_and_question(question, context_docs, max_context_chars))
    return str(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
    )


_ANSWER_MARK = "AUDITLOOP-ANSWER-MARK"


def end_of_turn_text(tokenizer: Any) -> str:
    """What the chat template writes after an assistant message (e.g. ``<|im_end|>``), trailing
    newlines dropped; the tokenizer's EOS where the template writes nothing."""
    rendered = str(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "?"}, {"role": "assistant", "content": _ANSWER_MARK}], tokenize=False
        )
    )
    suffix = rendered[rendered.rindex(_ANSWER_MARK) + len(_ANSWER_MARK) :].rstrip()
    return suffix or str(tokenizer.eos_token or "")


def prompt_token_ids(tokenizer: Any, prompt: str) -> list[int]:
    """A prompt's token ids as generation sees them: the tokenizer adds its special tokens (e.g. a
    BOS) to a raw prompt; a rendered chat template already holds them."""
    return list(tokenizer(prompt, add_special_tokens=not uses_chat_template(tokenizer))["input_ids"])


def format_training_example(question: str, answer: str, context: Sequence[ContextDocument]) -> tuple[str, str]:
    """(prompt, completion) for supervised training: the completion is what follows "Answer:".

    The completion carries no end-of-sequence token; :func:`encode_example` appends the tokenizer's.
    """
    return build_prompt(question, context), " " + " ".join(answer.split())


@dataclass(frozen=True)
class EncodedExample:
    input_ids: list[int]
    labels: list[int]  # -100 on prompt tokens: the loss is computed on the completion only


def encode_example(tokenizer: Any, prompt: str, completion: str, *, max_length: int) -> EncodedExample:
    """Token ids for prompt + completion + EOS, with labels masking the prompt.

    The prompt is tokenized as generation tokenizes it (:func:`prompt_token_ids`), so training and
    inference see identical prefixes. With a chat template the completion ends with the template's
    end-of-turn text instead of the EOS, as the model's own answers do. Too long: the prompt loses
    tokens from its start (the context), never the question or the answer.
    """
    prompt_ids = prompt_token_ids(tokenizer, prompt)
    if uses_chat_template(tokenizer):
        text = completion.strip() + end_of_turn_text(tokenizer)
        completion_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    else:
        completion_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
        if tokenizer.eos_token_id is not None:
            completion_ids.append(int(tokenizer.eos_token_id))
    # the prompt gives way first, but keeps at least half the window (a runaway answer is cut instead)
    keep_prompt = min(len(prompt_ids), max(max_length - len(completion_ids), max_length // 2))
    prompt_ids = prompt_ids[len(prompt_ids) - keep_prompt :]
    completion_ids = completion_ids[: max_length - keep_prompt]
    return EncodedExample(prompt_ids + completion_ids, [-100] * len(prompt_ids) + completion_ids)


def fit_prompt(
    tokenizer: Any,
    question: str,
    context_docs: Sequence[ContextDocument],
    *,
    max_prompt_tokens: int,
    max_context_chars: int = DEFAULT_CONTEXT_CHARS,
) -> str:
    """The prompt for ``tokenizer``'s model (:func:`chat_prompt` when it has a chat template, else
    :func:`build_prompt`), shrinking the context budget until it fits ``max_prompt_tokens``."""
    budget = max_context_chars
    while True:
        if uses_chat_template(tokenizer):
            prompt = chat_prompt(tokenizer, question, context_docs, max_context_chars=budget)
        else:
            prompt = build_prompt(question, context_docs, max_context_chars=budget)
        if len(prompt_token_ids(tokenizer, prompt)) <= max_prompt_tokens or budget <= 100:
            return prompt
        budget = int(budget * 0.75)
