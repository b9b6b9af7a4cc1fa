"""Base models: ``builtin:tiny`` (built locally once, cached in the data dir) or any local HF model directory.

    ensure_base_model(settings)             -> the model directory (building the tiny model if needed)
    load_base_model(spec, data_dir)         -> (model, tokenizer), ready for generation
    load_model_dir(path, adapter_dir=...)   -> (model, tokenizer) with a LoRA adapter applied

Nothing is ever downloaded: models load with ``local_files_only=True``.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from audit.errors import ConfigurationError
from audit.settings import BUILTIN_TINY, Settings

# The demo company's seed: the tiny model learns the same text `auditloop demo seed` writes.
DEFAULT_TINY_SEED = 7


def tiny_model_dir(data_dir: Path, fingerprint: str) -> Path:
    return data_dir / "models" / f"tiny-{fingerprint[:12]}"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One builder at a time (several workers or a worker and the CLI may start together)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tiny_fingerprint(seed: int, config: Any = None) -> str:
    """The cache key of the tiny model built for ``seed`` with ``config`` (default: TinyModelConfig())."""
    from training.models.tiny import TinyModelConfig, build_fingerprint, pretraining_texts

    config = config or TinyModelConfig()
    return build_fingerprint(config, seed, pretraining_texts(seed, question_variants=config.question_drills))


def ensure_tiny_model(
    data_dir: Path,
    *,
    seed: int = DEFAULT_TINY_SEED,
    config: Any = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The cached tiny model for (seed, config, demo corpus); built on first use.

    The cache key covers the corpus text, so a change to the demo generator builds a new model
    instead of silently reusing a stale one. The build goes to a temporary directory that is
    renamed into place, so a crash never leaves a half-written model behind.
    """
    from training.models.tiny import TinyModelConfig, build_fingerprint, build_tiny_model, pretraining_texts

    config = config or TinyModelConfig()
    texts = pretraining_texts(seed, question_variants=config.question_drills)
    target = tiny_model_dir(Path(data_dir), build_fingerprint(config, seed, texts))
    if (target / "config.json").is_file():
        return target
    with _exclusive(target.parent / ".build.lock"):
        if (target / "config.json").is_file():  # another process built it while we waited
            return target
        (progress or (lambda _m: None))(
            f"building the built-in tiny model into {target} (once, about 4 minutes on 2 cores)"
        )
        staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
        try:
            build_tiny_model(staging, seed=seed, corpus_texts=texts, config=config, progress=progress)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def tiny_spec(seed: int) -> str:
    """The built-in tiny model pretrained on demo company ``seed``'s corpus: ``builtin:tiny`` for the
    default seed, ``builtin:tiny@SEED`` for another (each cached on its own)."""
    return BUILTIN_TINY if seed == DEFAULT_TINY_SEED else f"{BUILTIN_TINY}@{seed}"


def resolve_model_dir(spec: str, data_dir: Path, *, progress: Callable[[str], None] | None = None) -> Path:
    """The directory of base model ``spec`` ("builtin:tiny", "builtin:tiny@SEED" or a local HF model
    directory)."""
    if spec == BUILTIN_TINY:
        return ensure_tiny_model(data_dir, progress=progress)
    if spec.startswith(f"{BUILTIN_TINY}@") and spec.removeprefix(f"{BUILTIN_TINY}@").isdigit():
        return ensure_tiny_model(data_dir, seed=int(spec.removeprefix(f"{BUILTIN_TINY}@")), progress=progress)
    if spec.startswith("builtin:"):
        raise ConfigurationError(f"base model {spec!r}: the only built-in model is {BUILTIN_TINY!r}")
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigurationError(
            f"base model {spec!r}: not a Hugging Face model directory (no config.json); "
            f"set AUDITLOOP_BASE_MODEL to {BUILTIN_TINY!r} or a local model directory"
        )
    return path


def ensure_base_model(settings: Settings, *, progress: Callable[[str], None] | None = None) -> Path:
    """The directory of the configured base model (``AUDITLOOP_BASE_MODEL``), building it if built-in."""
    return resolve_model_dir(settings.base_model, settings.data_dir, progress=progress)


def load_model_dir(
    model_dir: Path, *, device: str = "cpu", adapter_dir: Path | None = None, dtype: Any = None
) -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory, optionally with a PEFT LoRA adapter on top.

    The tokenizer pads and truncates on the left (generation continues from the prompt's end) and
    gets a pad token (the EOS) if the model has none. ``dtype`` None: the recipe's ``model.dtype: auto``
    for ``device`` (bfloat16 on a GPU that has it, float32 elsewhere), so a model is evaluated in the
    dtype it was trained in.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.models.loading import resolve_dtype

    model: Any
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(model_dir), local_files_only=True, dtype=dtype or getattr(torch, resolve_dtype("auto", device))
        )
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{model_dir}: cannot load the model ({exc})") from exc
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if adapter_dir is not None:
        from peft import PeftModel

        if not (Path(adapter_dir) / "adapter_config.json").is_file():
            raise ConfigurationError(f"{adapter_dir}: not a LoRA adapter directory (no adapter_config.json)")
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    model.to(device)
    model.eval()
    return model, tokenizer


def load_base_model(spec: str, data_dir: Path, *, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) for base model ``spec`` ("builtin:tiny" or a local HF model directory)."""
    return load_model_dir(resolve_model_dir(spec, Path(data_dir)), device=device)
