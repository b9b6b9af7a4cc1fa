"""Efficiency figures: the parameter-dominated shape counted by hand, the recipe's LoRA settings, and a
small measured LoRA-vs-full comparison whose tensor bytes are checked exactly."""

from __future__ import annotations

import pytest
import torch
import yaml

from training import efficiency
from training.config import DEFAULT_CONFIG_PATH

torch.set_num_threads(2)


def test_parameter_dominated_shape_is_counted_by_hand() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**efficiency.parameter_dominated_config())
    # embeddings and untied head: 2 · 32000 · 768; per layer: q/k/v/o 4 · 768² + gate/up/down 3 · 768 · 2048
    # + two norms 2 · 768; 8 layers; final norm 768
    by_hand = 2 * 32000 * 768 + 8 * (4 * 768 * 768 + 3 * 768 * 2048 + 2 * 768) + 768
    assert by_hand == 105_788_160
    assert efficiency.llama_parameter_count(config) == by_hand
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == by_hand
    # the recipe's LoRA (r=16 on q/k/v/o): 8 layers · 4 projections · 16 · (768 + 768)
    figures = efficiency.lora_share_for_config(config, r=16)
    assert figures["lora_parameters"] == 8 * 4 * 16 * (768 + 768) == 786_432
    assert figures["share"] == pytest.approx(786_432 / (105_788_160 + 786_432))
    assert figures["share"] < 0.01


def test_recipe_lora_settings_are_the_packaged_config() -> None:
    packaged = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())["lora"]
    assert efficiency.recipe_lora_settings() == {
        "r": packaged["r"],
        "alpha": packaged["alpha"],
        "dropout": packaged["dropout"],
        # auto, as it resolves on the Llama shapes measured
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    }
    assert packaged["target_modules"] == "auto"


def test_expected_state_bytes_counts_weights_gradients_and_two_adamw_moments() -> None:
    # full fine-tuning of 1,000 fp32 parameters: 4 kB weights + 4 kB gradients + 8 kB moments
    assert efficiency.expected_state_bytes(1000, 1000) == 16_000
    # LoRA: 1,000 frozen + 10 trainable parameters: 4,040 B weights + 40 B gradients + 80 B moments
    assert efficiency.expected_state_bytes(1010, 10) == 4_160
    assert efficiency.expected_state_bytes(1000, 1000, bytes_per_value=2) == 8_000


# weights dominate (4.85M parameters, 78 MB of full fine-tuning state) beside 16-token activations
SMALL_PARAMETER_DOMINATED = dict(
    vocab_size=8192,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=1,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=64,
    tie_word_embeddings=False,
)


def test_lora_vs_full_at_a_small_parameter_dominated_shape() -> None:
    settings = efficiency.recipe_lora_settings()
    result = efficiency.compare_lora_vs_full(
        None, config=SMALL_PARAMETER_DOMINATED, steps=2, batch_size=1, seq_len=16, **settings
    )
    full, lora = result["full"], result["lora"]
    total = 2 * 8192 * 256 + (4 * 256 * 256 + 3 * 256 * 512 + 2 * 256) + 256
    adapters = 4 * settings["r"] * (256 + 256)  # one layer, four projections
    assert (full["total"], full["trainable"]) == (total, total)
    assert (lora["total"], lora["trainable"]) == (total + adapters, adapters)
    assert lora["lora_settings"] == settings and full["lora_settings"] is None
    # exact tensor bytes (fp32): weights, gradients of the trainable parameters, AdamW's two moments
    for run in (full, lora):
        assert run["weight_bytes"] == 4 * run["total"]
        assert run["gradient_bytes"] == 4 * run["trainable"]
        assert run["optimizer_state_bytes"] == 8 * run["trainable"]
    # the measured peak holds at least those tensors (full fine-tuning holds all of them at the step)
    assert full["peak_training_bytes"] >= 0.9 * efficiency.expected_state_bytes(total, total)
    assert result["expected_state_ratio"] == pytest.approx(
        efficiency.expected_state_bytes(total + adapters, adapters) / efficiency.expected_state_bytes(total, total)
    )
    assert result["expected_state_ratio"] < 0.27
    assert result["memory_ratio"] <= 0.5
    assert full["step_seconds"] > 0 and lora["step_seconds"] > 0


def test_bad_measurement_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="model directory or a config"):
        efficiency.measure_training(None, lora=True)
    with pytest.raises(ValueError, match="steps"):
        efficiency.measure_training(None, lora=True, config=SMALL_PARAMETER_DOMINATED, steps=0)
    with pytest.raises(ValueError, match="seq_len"):
        efficiency.measure_training(None, lora=False, config=SMALL_PARAMETER_DOMINATED, seq_len=1)
    with pytest.raises(ValueError, match="dropout"):
        efficiency.measure_training(None, lora=True, config=SMALL_PARAMETER_DOMINATED, dropout=1.0)
