"""Training fixtures: a small variant of the built-in tiny model, built once per test session.

Same builder, same corpus and format as the real ``builtin:tiny``, only narrower and trained for a
few steps, so it builds in seconds. Its text is not meaningful; its mechanics are the real ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.models.tiny import TinyModelConfig, build_tiny_model, pretraining_texts

torch.set_num_threads(2)

# A few seconds on two cores. Head size 32 and context 512 as the real model's shape allows.
SMALL_TINY_CONFIG = TinyModelConfig(
    vocab_size=600,
    hidden_size=64,
    num_layers=2,
    num_heads=2,
    intermediate_size=128,
    context_length=512,
    train_steps=20,
    batch_size=4,
    sequence_length=320,
    learning_rate=3e-3,
    warmup_steps=4,
    question_drills=0,  # the corpus as the conftest's fixtures build it (pretraining_texts(7))
)


@pytest.fixture(scope="session")
def tiny_corpus_texts() -> list[str]:
    """The real pretraining corpus (demo documents + curated examples in the prompt format)."""
    return pretraining_texts(7)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_corpus_texts: list[str]) -> Path:
    """A Hugging Face model directory (model + tokenizer) of a small tiny-model variant."""
    return build_tiny_model(
        tmp_path_factory.mktemp("tiny-model") / "model",
        seed=7,
        corpus_texts=tiny_corpus_texts,
        config=SMALL_TINY_CONFIG,
    )
