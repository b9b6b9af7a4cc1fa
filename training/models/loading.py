"""Loading a base model for training on the device at hand: its dtype, optional 4-bit weights
(QLoRA) and gradient checkpointing.

    dtype = resolve_dtype("auto", "cuda")     # "bfloat16" where the GPU has bf16, else "float32"
    model = load_for_training(model_dir, dtype=dtype, quantization="none", gradient_checkpointing=True)

bitsandbytes (the ``qlora`` extra) is imported only for ``quantization="nf4"``, which needs CUDA.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from audit.errors import ConfigurationError, ValidationError

BYTES_PER_VALUE = {"float32": 4, "bfloat16": 2, "float16": 2}


def cuda_supports_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_dtype(setting: str, device: str) -> str:
    """The weights' dtype: ``auto`` is bfloat16 on a CUDA device that has it, float32 elsewhere
    (on CPU bf16 matrix products are slow and the built-in model's figures were made in float32)."""
    if setting != "auto":
        return setting
    return "bfloat16" if str(device).startswith("cuda") and cuda_supports_bf16() else "float32"


def check_quantization(quantization: str, device: str) -> None:
    """Refuse 4-bit loading where it cannot run: bitsandbytes' 4-bit kernels need a CUDA GPU."""
    if quantization == "none":
        return
    if device != "cuda":
        raise ValidationError(
            f"model.quantization: {quantization} needs a CUDA GPU (bitsandbytes' 4-bit kernels); this run is on "
            f"{device}: set model.quantization=none, or run on a GPU"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigurationError(
            f"model.quantization: {quantization} needs the bitsandbytes package: pip install 'auditloop[qlora]'"
        )


def load_for_training(
    model_dir: Path,
    *,
    dtype: str,
    quantization: str = "none",
    gradient_checkpointing: bool = False,
    device_index: int | None = None,
) -> Any:
    """The base model from ``model_dir`` with frozen weights in ``dtype`` (or 4-bit NF4 with ``dtype``
    as the compute dtype), gradient checkpointing switched on if asked.

    ``device_index``: the GPU a 4-bit model is loaded onto (the process's own under
    ``accelerate launch``); unquantized models are placed by the caller.

    PEFT's ``prepare_model_for_kbit_training`` is not used: it casts every non-4-bit weight to float32,
    embeddings and output head included (+2 GB on an 8B model with a 128k vocabulary); gradient
    checkpointing without re-entrant autograd needs none of what it adds.
    """
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    options: dict[str, Any] = {"local_files_only": True, "dtype": torch_dtype}
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,  # the block scales quantized too: ~0.4 bits per weight less
            bnb_4bit_compute_dtype=torch_dtype,
        )
        options["device_map"] = {"": device_index if device_index is not None else 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), **options)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{model_dir}: cannot load the model ({exc})") from exc
    if gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise ValidationError(
                f"train.gradient_checkpointing: {type(model).__name__} does not support it; set it to false"
            )
        set_gradient_checkpointing(model, True)
    return model


def set_gradient_checkpointing(model: Any, enabled: bool) -> None:
    """Switch gradient (activation) checkpointing on or off; off gives generation its KV cache back.

    Non-reentrant checkpointing: it works with frozen inputs (no ``enable_input_require_grads``) and
    under PEFT. transformers 5 renamed the methods (``activation_checkpointing_*``); 4.x has the old.
    """
    if enabled:
        options = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
    elif hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()
    model.config.use_cache = not enabled


def is_gradient_checkpointing(model: Any) -> bool:
    return any(getattr(module, "gradient_checkpointing", False) for module in model.modules())
