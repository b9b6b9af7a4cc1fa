"""The built-in tiny model: corpus, tokenizer, packing, deterministic build, caching, loading."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from audit.demo.corpus import build_corpus
from audit.errors import ConfigurationError
from audit.knowledge.hashing import normalise_text
from audit.settings import load_settings
from tests.training.conftest import SMALL_TINY_CONFIG
from training import models
from training.models import ensure_base_model, ensure_tiny_model, load_base_model, resolve_model_dir, tiny
from training.models.tiny import BUILD_INFO_FILE, TinyModelConfig, build_tiny_model, pack_texts, pretraining_texts
from training.prompts import ANSWER_CUE


def weights_digest(model_dir: Path) -> str:
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


FAST = dataclasses.replace(SMALL_TINY_CONFIG, train_steps=3)


def test_pretraining_corpus_is_documents_examples_and_drills_never_gold(tiny_corpus_texts: list[str]) -> None:
    corpus = build_corpus(7)
    active = [e for e in corpus.examples if e.status == "active"]
    regular = [e for e in active if e.planted is None]
    drills = tiny_corpus_texts[len(corpus.documents) + len(active) :]
    # two drills per regular example, less those whose source document is not retrieved first (one in ten
    # on seed 7 with 60 gold items per department)
    assert 0.85 * 2 * len(regular) <= len(drills) <= 2 * len(regular)
    everything = "\n".join(tiny_corpus_texts)
    assert not [g.question for g in corpus.gold if g.question in everything]
    example = corpus.examples[0]
    formatted = next(t for t in tiny_corpus_texts if f"Question: {example.question}\n" in t)
    assert formatted.startswith("Context:\n[")
    assert formatted.endswith(f"{ANSWER_CUE} {' '.join(example.answer.split())}")
    assert pretraining_texts(7) == tiny_corpus_texts  # deterministic


def test_copy_drills_state_the_value_their_context_states(tiny_corpus_texts: list[str]) -> None:
    """A drill's answer states the value its top document states, which is not the document's real
    value: only copying from the context fits it. No drill asks a gold question or gives a gold answer."""
    corpus = build_corpus(7)
    documents = {d.external_id: d for d in corpus.documents}
    active = [e for e in corpus.examples if e.status == "active"]
    regular = {e.question: e for e in active if e.planted is None}
    drills = tiny_corpus_texts[len(corpus.documents) + len(active) :]
    gold_answers = {normalise_text(g.reference_answer) for g in corpus.gold}
    gold_questions = {g.question for g in corpus.gold}
    for drill in drills:
        prompt, answer = drill.rsplit(f"{ANSWER_CUE} ", 1)
        question = prompt.rsplit("Question: ", 1)[1].strip()
        assert question in regular and question not in gold_questions
        example = regular[question]
        assert answer != " ".join(example.answer.split())  # another value than the real one
        assert normalise_text(answer) not in gold_answers
        top_line = prompt.split("\n")[1]
        source = documents[example.source_document_ids[0]]
        assert top_line.startswith(f"[{source.external_id}]")
        # the answer's sentence (without the citation) is in the top document's passage, with the new value
        sentence = answer.rsplit(" (source:", 1)[0]
        assert sentence in top_line
        assert sentence not in source.body


def test_question_drills_ask_in_unseen_forms_and_answer_from_a_counterfactual_context() -> None:
    """A question drill asks about a non-gold fact sentence of a current document in a generic form;
    its context (as retrieved for that question) states another value than the document's, and the
    answer states that value and cites the document: only finding and copying the sentence fits it."""
    from audit.demo.corpus import fact_kind, statement
    from training.retrieval import Retriever

    corpus = build_corpus(7)
    documents = {d.external_id: d for d in corpus.documents}
    drills = tiny.question_drills(corpus, Retriever.from_documents(corpus.documents), variants=2, seed=7)
    facts = sum(len(d.facts) for d in corpus.documents if d.superseded_by is None)
    assert 0.5 * facts <= len(drills) <= 2 * facts  # up to two per fact, less those not retrieved
    gold_sentences = {normalise_text(g.reference_answer.rsplit(" (source:", 1)[0]) for g in corpus.gold}
    gold_answers = {normalise_text(g.reference_answer) for g in corpus.gold}
    gold_questions = {g.question for g in corpus.gold}
    forms = set()
    for drill in drills:
        prompt, answer = drill.rsplit(f"{ANSWER_CUE} ", 1)
        question = prompt.rsplit("Question: ", 1)[1].strip()
        forms.add("cloze" if question.endswith(" what?") or " what " in question else "keywords")
        assert question not in gold_questions and normalise_text(answer) not in gold_answers
        sentence, cited = answer.rsplit(" (source: ", 1)
        source = documents[cited.rstrip(")")]
        assert source.superseded_by is None
        assert f"[{source.external_id}]" in prompt and sentence in prompt  # the context states it
        assert sentence not in source.body  # ... with another value than the document's
        subject = source.title.rsplit(" ", 1)[0]
        asked = [
            (kind, value)
            for key, value in source.facts.items()
            for kind in [fact_kind(source.department, key)]
            if any(statement(kind, title=source.title, subject=subject, value=v) == sentence for v in kind.values)
        ]
        assert len(asked) == 1  # the sentence is one fact's template with one of its kind's values
        kind, value = asked[0]
        real = statement(kind, title=source.title, subject=subject, value=value)
        assert real in source.body and normalise_text(real) not in gold_sentences  # never a gold fact
    assert forms == {"cloze", "keywords"}
    assert tiny.question_drills(corpus, Retriever.from_documents(corpus.documents), variants=2, seed=7) == drills
    assert tiny.question_drills(corpus, Retriever.from_documents(corpus.documents), variants=0, seed=7) == []
    assert pretraining_texts(7, question_variants=2)[-len(drills) :] == drills


def test_pretraining_corpus_does_not_depend_on_the_hash_seed(tiny_corpus_texts: list[str]) -> None:
    """A process with another hash seed (so other set orders; this one's is random) builds the same
    corpus, so the cached model's key is stable across runs."""
    script = (
        "from training.models.tiny import corpus_fingerprint, pretraining_texts\n"
        "print(corpus_fingerprint(pretraining_texts(7)))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == tiny.corpus_fingerprint(tiny_corpus_texts)


def test_pack_texts_keeps_each_text_whole_in_one_row() -> None:
    packed = pack_texts([[5, 6, 7], [8, 9], [10, 11, 12, 13, 14, 15, 16]], sequence_length=6, eos_id=1, pad_id=0)
    assert packed.input_ids.tolist() == [[5, 6, 7, 1, 0, 0], [8, 9, 1, 0, 0, 0], [12, 13, 14, 15, 16, 1]]
    assert packed.attention_mask.tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0], [1] * 6]
    assert packed.labels.tolist()[0] == [5, 6, 7, 1, -100, -100]
    assert packed.tokens == 4 + 3 + 6


@pytest.mark.slow  # three builds: about 10 s
def test_build_is_deterministic_for_a_seed(tmp_path: Path, tiny_corpus_texts: list[str]) -> None:
    texts = tiny_corpus_texts[:150]
    first = build_tiny_model(tmp_path / "a", seed=11, corpus_texts=texts, config=FAST)
    second = build_tiny_model(tmp_path / "b", seed=11, corpus_texts=texts, config=FAST)
    other_seed = build_tiny_model(tmp_path / "c", seed=12, corpus_texts=texts, config=FAST)
    assert weights_digest(first) == weights_digest(second)
    assert (first / "tokenizer.json").read_bytes() == (second / "tokenizer.json").read_bytes()
    assert weights_digest(first) != weights_digest(other_seed)
    info = json.loads((first / BUILD_INFO_FILE).read_text())
    assert info["seed"] == 11 and info["config"]["train_steps"] == 3
    assert info["fingerprint"] == tiny.build_fingerprint(FAST, 11, texts)


def test_built_directory_is_a_normal_llama_model(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)
    assert isinstance(model, LlamaForCausalLM)
    assert model.config.model_type == "llama"
    assert model.config.num_hidden_layers == SMALL_TINY_CONFIG.num_layers
    assert model.config.max_position_embeddings == 512
    assert model.config.vocab_size == len(tokenizer) <= SMALL_TINY_CONFIG.vocab_size
    assert tokenizer.eos_token == "</s>" and tokenizer.pad_token == "<pad>" and tokenizer.bos_token == "<s>"
    assert tokenizer.padding_side == "left"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    # it learned something from the corpus: loss on corpus text is far below uniform guessing
    ids = tokenizer("Records are kept for 7 years after closure.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = float(model(input_ids=ids, labels=ids).loss)
    assert loss < 0.9 * torch.log(torch.tensor(float(len(tokenizer)))).item()


@pytest.mark.parametrize(
    "text",
    [
        "Expenses above EUR 25,000 need CFO approval. (source: FIN-003@v2)",
        "Zürich office – 5 € per day ✓ 日本語\n\ttabs and  double  spaces",
    ],
)
def test_tokenizer_round_trips_any_text(tiny_model_dir: Path, text: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids  # byte level: nothing is unknown
    assert tokenizer.decode(ids) == text


def test_ensure_tiny_model_builds_once_then_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = ensure_tiny_model(tmp_path, config=FAST)
    assert built.parent == tmp_path / "models" and built.name.startswith("tiny-")
    assert (built / "config.json").is_file()
    assert [p.name for p in built.parent.iterdir() if p.name.startswith(".building")] == []

    def must_not_build(*args: object, **kwargs: object) -> Path:
        raise AssertionError("the cached model should have been reused")

    monkeypatch.setattr(tiny, "build_tiny_model", must_not_build)
    assert ensure_tiny_model(tmp_path, config=FAST) == built
    # another config or seed is another model, in another directory
    texts = pretraining_texts(7)
    other_config = dataclasses.replace(FAST, train_steps=4)
    assert models.tiny_model_dir(tmp_path, tiny.build_fingerprint(FAST, 7, texts)) == built
    assert models.tiny_model_dir(tmp_path, tiny.build_fingerprint(other_config, 7, texts)) != built
    assert models.tiny_model_dir(tmp_path, tiny.build_fingerprint(FAST, 8, texts)) != built


def test_local_model_directories_are_used_as_they_are(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert resolve_model_dir(str(tiny_model_dir), tmp_path) == tiny_model_dir
    settings = load_settings({"AUDITLOOP_DATA_DIR": str(tmp_path), "AUDITLOOP_BASE_MODEL": str(tiny_model_dir)})
    assert ensure_base_model(settings) == tiny_model_dir
    model, tokenizer = load_base_model(str(tiny_model_dir), tmp_path)
    assert not model.training and tokenizer.truncation_side == "left"
    assert not (tmp_path / "models").exists()  # nothing was built


def test_bad_base_model_specs_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no config.json"):
        resolve_model_dir(str(tmp_path / "missing"), tmp_path)
    with pytest.raises(ConfigurationError, match="only built-in model"):
        resolve_model_dir("builtin:huge", tmp_path)


def test_config_rejects_impossible_shapes() -> None:
    with pytest.raises(ValueError, match="divisible"):
        TinyModelConfig(hidden_size=100, num_heads=3)
    with pytest.raises(ValueError, match="sequence_length"):
        TinyModelConfig(sequence_length=1024, context_length=512)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~4 min on 2 idle cores; generous for a loaded CI machine
def test_default_build_writes_domain_shaped_answers(tmp_path: Path) -> None:
    """The real default build (about four minutes on two cores): its greedy answer to a held-out gold
    question has the curated answers' shape and cites a document."""
    from audit.measures.text_metrics import rouge_l
    from training.generation.transformers_backend import TransformersBackend
    from training.prompts import build_prompt
    from training.retrieval import Retriever

    model_dir = ensure_tiny_model(tmp_path)
    assert json.loads((model_dir / BUILD_INFO_FILE).read_text())["config"] == dataclasses.asdict(TinyModelConfig())
    corpus = build_corpus(models.DEFAULT_TINY_SEED)
    retriever = Retriever.from_documents(corpus.documents)
    gold = corpus.gold[::15]
    prompts = [build_prompt(g.question, retriever.search(g.question, 3)) for g in gold]
    model, tokenizer = models.load_model_dir(model_dir)
    answers = TransformersBackend(model, tokenizer).generate(prompts, max_new_tokens=48)
    assert sum("(source:" in a.text for a in answers) >= 4
    # measured on this build: mean ROUGE-L about 0.33 (HR lowest, about 0.22: the weak department)
    assert sum(rouge_l(a.text, g.reference_answer) for a, g in zip(answers, gold, strict=True)) / len(gold) > 0.2
